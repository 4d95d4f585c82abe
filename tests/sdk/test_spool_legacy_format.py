"""Spool files of the previous format (CRC over the record only) after an upgrade.

They are still read and sent, in order. Format 1 marks no entry boundaries, so a damaged
format-1 entry takes the rest of its segment with it: to the quarantine file, with a log line
that names the format, and never silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger, SdkError
from services.sdk.settings import SdkSettings
from tests.sdk.test_spool_format import V1_HEADER, by_episode, quarantined, reward, v1_entry

pytestmark = pytest.mark.integration


def _rewards(episode: str, steps: range) -> list[dict]:
    return [reward(episode, step) for step in steps]


def _ids(events: list[dict]) -> list[str]:
    return [e["event_id"] for e in events]


def test_segments_of_the_previous_format_are_still_read_and_sent_in_order(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings], registry: CollectorRegistry
) -> None:
    settings = sdk_settings()
    root = Path(settings.spool_dir)
    root.mkdir(parents=True)
    a1, b1, a2 = _rewards("a", range(10)), _rewards("b", range(10)), _rewards("a", range(10, 20))
    (root / "seg-0000000000000001.spool").write_bytes(v1_entry(-1, a1) + v1_entry(-1, b1))
    (root / "seg-0000000000000002.spool").write_bytes(v1_entry(-1, a2))

    with DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger:
        logger.flush(timeout=30)

    assert by_episode(kafka, 30) == {"a": _ids(a1 + a2), "b": _ids(b1)}
    assert quarantined(root) == []


def test_a_damaged_previous_format_entry_quarantines_the_rest_of_its_segment_saying_why(
    kafka: KafkaSettings,
    sdk_settings: Callable[..., SdkSettings],
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = sdk_settings()
    root = Path(settings.spool_dir)
    root.mkdir(parents=True)
    first, second, third = (_rewards("a", range(k, k + 10)) for k in (0, 10, 20))
    damaged = bytearray(v1_entry(-1, second))
    damaged[V1_HEADER.size + 5] ^= 0x01
    rest = bytes(damaged) + v1_entry(-1, third)
    (root / "seg-0000000000000001.spool").write_bytes(v1_entry(-1, first) + rest)

    with (
        caplog.at_level(logging.ERROR, logger="services.sdk.spool"),
        DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger,
        pytest.raises(SdkError) as info,
    ):
        logger.flush(timeout=15)

    assert str(info.value).startswith("20 events can no longer be delivered")
    assert by_episode(kafka, 10) == {"a": _ids(first)}
    (item,) = quarantined(root)
    assert (item.meta["reason"], item.data) == ("corrupt", rest)
    assert any(
        "format 1" in r.getMessage() and "quarantine" in r.getMessage() for r in caplog.records
    )
