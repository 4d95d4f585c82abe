"""Spool corruption (issue 13, case 3): a damaged entry costs only itself, and never silently.

The CRC covers each entry's header (partition, event count, length) as well as its record, so
one flipped bit anywhere is caught before the entry is trusted. The damaged entry is moved to
the quarantine file and counted (``policyloop_sdk_spool_quarantined_total{reason}``); the entries
after it are delivered in order, and ``flush()`` does not wait for events that can no longer be
sent: it returns once the rest is acknowledged and raises an ``SdkError`` saying what was lost.

The spools are real: a logger writes them while the broker is unreachable (or cut off by a
proxy), then bytes are flipped in the files, then a logger on the real broker sends them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger, SdkError
from services.sdk.settings import SdkSettings
from tests.sdk.tcp_proxy import TcpProxy
from tests.sdk.test_outage import proxied_broker  # noqa: F401  (fixture)
from tests.sdk.test_spool_format import (
    Entry,
    by_episode,
    entries_of,
    flip,
    per_episode,
    quarantined,
    segments,
    spool_rewards,
)

pytestmark = pytest.mark.integration

EPISODES = ["a", "b", "c"]
STEPS = 100


def _spooled(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings]
) -> tuple[SdkSettings, list[str], Path, list[Entry]]:
    """A closed logger's spool of 300 rewards in entries of at most 50 events, one segment."""
    settings = sdk_settings(close_timeout_s=0.2, batch_max_events=50)
    logged = spool_rewards(kafka, settings, EPISODES, STEPS)
    (segment,) = segments(Path(settings.spool_dir))
    entries = entries_of(segment)
    assert len(entries) >= 4
    return settings, logged, segment, entries


def _quarantined_total(registry: CollectorRegistry, reason: str) -> float | None:
    return registry.get_sample_value("policyloop_sdk_spool_quarantined_total", {"reason": reason})


def _without(logged: list[str], entry: Entry) -> list[str]:
    lost = set(entry.event_ids())
    return [event_id for event_id in logged if event_id not in lost]


@pytest.mark.parametrize("field", ["partition", "events", "length"])
def test_a_flipped_header_bit_quarantines_that_entry_and_every_other_event_is_delivered(
    kafka: KafkaSettings,
    sdk_settings: Callable[..., SdkSettings],
    registry: CollectorRegistry,
    field: str,
) -> None:
    settings, logged, segment, entries = _spooled(kafka, sdk_settings)
    damaged = entries[1]
    flip(segment, damaged.lowest_byte_of(field))
    on_disk = segment.read_bytes()[damaged.offset : damaged.end]

    with (
        DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger,
        pytest.raises(SdkError) as info,
    ):
        logger.flush(timeout=30)

    expected = _without(logged, damaged)
    assert by_episode(kafka, len(expected)) == per_episode(expected)
    assert "1 damaged spool entries whose event count is unreadable" in str(info.value)
    (item,) = quarantined(Path(settings.spool_dir))
    assert (item.meta["reason"], item.meta["content"], item.data) == ("corrupt", "entry", on_disk)
    assert _quarantined_total(registry, "corrupt") == 1


def test_a_corrupt_record_quarantines_its_entry_alone_and_flush_does_not_wait_for_it(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings], registry: CollectorRegistry
) -> None:
    settings, logged, segment, entries = _spooled(kafka, sdk_settings)
    damaged = entries[1]
    flip(segment, damaged.record_offset + 10)
    on_disk = segment.read_bytes()[damaged.offset : damaged.end]

    with (
        DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger,
        pytest.raises(SdkError) as info,
    ):
        logger.flush(timeout=30)

    n = damaged.events
    assert str(info.value).startswith(
        f"{n} events can no longer be delivered ({n} in spool entries moved to the quarantine "
        f"file {settings.spool_dir}/quarantine/"
    )
    expected = _without(logged, damaged)
    assert by_episode(kafka, len(expected)) == per_episode(expected)
    (item,) = quarantined(Path(settings.spool_dir))
    assert (item.meta["reason"], item.meta["events"], item.data) == ("corrupt", n, on_disk)
    dropped = registry.get_sample_value(
        "policyloop_sdk_events_dropped_total", {"reason": "quarantined"}
    )
    assert (dropped, _quarantined_total(registry, "corrupt")) == (n, 1)


def test_an_entry_torn_at_the_end_of_a_segment_is_quarantined_as_torn(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings], registry: CollectorRegistry
) -> None:
    settings, logged, segment, entries = _spooled(kafka, sdk_settings)
    torn = entries[-1]
    os.truncate(segment, torn.offset + 10)  # the process died 10 bytes into the entry

    with (
        DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger,
        pytest.raises(SdkError, match="1 damaged spool entries"),
    ):
        logger.flush(timeout=30)

    expected = _without(logged, torn)
    assert by_episode(kafka, len(expected)) == per_episode(expected)
    (item,) = quarantined(Path(settings.spool_dir))
    assert (item.meta["reason"], item.meta["bytes"]) == ("torn", 10)
    assert _quarantined_total(registry, "torn") == 1


def _wait_until_nothing_is_queued_in_memory(logger: DecisionLogger) -> None:
    deadline = time.monotonic() + 30
    while logger.queue_depth and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the sender writes what it drained within one loop


def test_an_entry_damaged_while_the_logger_runs_is_quarantined_and_not_waited_for(
    proxied_broker: tuple[TcpProxy, KafkaSettings],  # noqa: F811
    sdk_settings: Callable[..., SdkSettings],
    registry: CollectorRegistry,
) -> None:
    proxy, kafka = proxied_broker
    settings = sdk_settings(batch_max_events=50)
    logged: list[str] = []
    with DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger:
        logged.append(logger.reward("warm", 0, 1.0, event_id="warm-0"))
        logger.flush(timeout=30)  # connected: spooled entries carry real partitions
        proxy.cut()  # after outage_after_s without acknowledgement, records go to the spool
        for step in range(STEPS):
            for episode in EPISODES:
                logged.append(logger.reward(episode, step, 1.0, event_id=f"{episode}-{step}"))
            time.sleep(0.015)
        _wait_until_nothing_is_queued_in_memory(logger)
        (segment,) = segments(Path(settings.spool_dir))
        entries = entries_of(segment)
        damaged = entries[1]
        assert damaged.partition >= 0
        flip(segment, damaged.lowest_byte_of("partition"))  # a valid, wrong partition
        proxy.restore()
        with pytest.raises(SdkError) as info:
            logger.flush(timeout=60)

    n = damaged.events
    assert str(info.value).startswith(f"{n} events can no longer be delivered")
    expected = _without(logged, damaged)
    assert by_episode(kafka, len(expected)) == per_episode(expected)
    assert [item.meta["reason"] for item in quarantined(Path(settings.spool_dir))] == ["corrupt"]
