"""Spooled entries the sender cannot send as they are (issue 13, cases 2 and 3).

A record that does not decode, or that Kafka refuses whatever the broker's state, is quarantined
and the sender goes on with what follows: it is never retried forever, never blocks the entries
after it, and never stops the sender thread. A record for a partition the topic no longer has is
split by episode over the current partitions instead.

The entries are written as spool files in the previous format (format 1), which a logger still
reads: the files an older version left behind, with the records in question.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger, SdkError
from services.sdk.partitioning import kafka_default_partition
from services.sdk.settings import SdkSettings
from tests.sdk.conftest import read_events
from tests.sdk.test_spool_format import by_episode, quarantined, reward, v1_entry

pytestmark = pytest.mark.integration


def _partition_of(episode: str) -> int:
    return kafka_default_partition(episode.encode(), 4)


def _ids(events: list[dict]) -> list[str]:
    return [e["event_id"] for e in events]


def _write_segment(settings: SdkSettings, *entries: bytes) -> Path:
    root = Path(settings.spool_dir)
    root.mkdir(parents=True)
    (root / "seg-0000000000000001.spool").write_bytes(b"".join(entries))
    return root


def test_a_record_kafka_refuses_for_good_is_quarantined_and_what_follows_is_delivered(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings], registry: CollectorRegistry
) -> None:
    settings = sdk_settings()
    before, after = [reward("a", s) for s in range(5)], [reward("a", s) for s in range(6, 11)]
    too_large = dict(reward("a", 5), metrics={f"metric-{i:04d}": float(i) for i in range(256)})
    p = _partition_of("a")
    root = _write_segment(
        settings, v1_entry(p, before), v1_entry(p, [too_large]), v1_entry(p, after)
    )

    # kafka-python refuses any record over max_request_size before it reaches the network.
    options = {"max_request_size": 2_000}
    with (
        DecisionLogger(
            kafka=kafka, settings=settings, producer_options=options, registry=registry
        ) as logger,
        pytest.raises(SdkError, match=r"^1 events can no longer be delivered"),
    ):
        logger.flush(timeout=15)

    assert by_episode(kafka, 10) == {"a": _ids(before + after)}
    (item,) = quarantined(root)
    assert (item.meta["reason"], item.meta["content"], item.meta["events"]) == (
        "undeliverable",
        "record",
        1,
    )
    assert "MessageSizeTooLargeError" in item.meta["detail"]


def test_a_spooled_record_that_does_not_decode_is_quarantined_and_the_sender_goes_on(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings], registry: CollectorRegistry
) -> None:
    settings = sdk_settings()
    garbage = b"\xc1 is never MessagePack"
    events = [reward("a", s) for s in range(5)]
    # Partition -1: spooled before the partition count was known, so it must be decoded.
    root = _write_segment(settings, v1_entry(-1, None, garbage), v1_entry(-1, events))

    with DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger:
        with pytest.raises(SdkError, match=r"^1 events can no longer be delivered"):
            logger.flush(timeout=15)
        logger.reward("a", 5, 1.0, event_id="a-5")
        logger.flush(timeout=15)  # the sender is still running

    assert by_episode(kafka, 6) == {"a": [*_ids(events), "a-5"]}
    (item,) = quarantined(root)
    assert (item.meta["reason"], item.data) == ("undecodable", garbage)
    assert (
        registry.get_sample_value(
            "policyloop_sdk_spool_quarantined_total", {"reason": "undecodable"}
        )
        == 1
    )


def test_a_record_for_a_partition_the_topic_no_longer_has_goes_to_its_episodes_partitions(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings], registry: CollectorRegistry
) -> None:
    settings = sdk_settings()
    events = [reward(episode, s) for s in range(5) for episode in ("a", "b", "c")]
    # Spooled when the topic had 12 partitions; it was re-created with 4.
    _write_segment(settings, v1_entry(9, events))

    with DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger:
        logger.flush(timeout=15)

    got = read_events(kafka, len(events))
    assert all(partition == _partition_of(e["episode_id"]) for partition, e in got)
    assert {
        episode: [e["event_id"] for _, e in got if e["episode_id"] == episode]
        for episode in ("a", "b", "c")
    } == {episode: [f"{episode}-{s}" for s in range(5)] for episode in ("a", "b", "c")}
