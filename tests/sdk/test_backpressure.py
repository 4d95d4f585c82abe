"""A full queue blocks then raises, spills to disk, or drops with a count: never silently."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger, QueueFullError
from services.sdk.spool import DiskSpool

pytestmark = pytest.mark.integration


def _unreachable() -> KafkaSettings:
    """Kafka settings pointing at a loopback port where nothing listens."""
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{find_free_port()}", topic_prefix="nowhere")


def test_block_waits_block_timeout_then_raises_naming_the_setting(
    sdk_settings, registry: CollectorRegistry
) -> None:
    # Broker unreachable and a spool too small for any batch: the queue can only fill up.
    settings = sdk_settings(
        queue_max_events=100, when_full="block", block_timeout_s=0.3, spool_max_bytes=1
    )
    logger = DecisionLogger(kafka=_unreachable(), settings=settings, registry=registry)
    try:
        depth_seen = []
        with pytest.raises(QueueFullError) as info:
            for i in range(10_000):
                logger.reward("ep", i, 1.0)
                depth_seen.append(logger.queue_depth)
        started = time.monotonic()
        with pytest.raises(QueueFullError):
            logger.reward("ep", 10_001, 1.0)
        waited = time.monotonic() - started
    finally:
        logger.close(timeout=0.1)
    assert max(depth_seen) <= 100
    assert 0.3 <= waited < 2.0
    message = str(info.value)
    assert "queue_max_events=100" in message
    assert "block_timeout_s=0.3s" in message


def test_spill_moves_a_full_queue_to_the_disk_spool_and_memory_stays_bounded(
    sdk_settings, registry: CollectorRegistry
) -> None:
    settings = sdk_settings(queue_max_events=200, when_full="spill", block_timeout_s=10)
    logger = DecisionLogger(kafka=_unreachable(), settings=settings, registry=registry)
    depth_seen = []
    for i in range(20_000):
        logger.reward(f"ep-{i % 7}", i, float(i))
        depth_seen.append(logger.queue_depth)
    logger.close(timeout=0.2)

    assert max(depth_seen) <= 200
    spool = DiskSpool(settings.spool_dir, settings.spool_max_bytes)
    assert spool.unread_events == 20_000
    assert registry.get_sample_value("policyloop_sdk_events_spooled_total") == 20_000


def test_drop_counts_and_logs_every_dropped_event(
    sdk_settings, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    settings = sdk_settings(queue_max_events=50, when_full="drop", spool_max_bytes=1)
    logger = DecisionLogger(kafka=_unreachable(), settings=settings, registry=registry)
    with caplog.at_level(logging.WARNING, logger="services.sdk.logger"):
        for i in range(500):
            logger.reward("ep", i, 1.0)
            assert logger.queue_depth <= 50
    logger.close(timeout=0.1)

    drops = [r for r in caplog.records if "dropped a reward event" in r.getMessage()]
    dropped = registry.get_sample_value(
        "policyloop_sdk_events_dropped_total", {"reason": "queue_full"}
    )
    accepted = registry.get_sample_value("policyloop_sdk_events_accepted_total", {"type": "reward"})
    assert dropped is not None and dropped > 0
    assert len(drops) == dropped
    assert accepted + dropped == 500
