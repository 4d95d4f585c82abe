"""Spool leftovers are re-sent first and in order; metrics count what happened."""

from __future__ import annotations

from collections import defaultdict

import pytest
from prometheus_client import CollectorRegistry

from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger
from services.sdk.spool import DiskSpool
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration


def test_spool_leftovers_from_a_previous_logger_are_sent_first_in_order(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    settings = sdk_settings()
    nowhere = kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{find_free_port()}"})
    first = DecisionLogger(kafka=nowhere, settings=settings, registry=registry)
    for step in range(300):
        for episode in ("a", "b", "c"):
            first.reward(episode, step, float(step), event_id=f"old-{episode}-{step}")
    first.close(timeout=0.2)
    assert DiskSpool(settings.spool_dir, settings.spool_max_bytes).unread_events == 900

    with DecisionLogger(kafka=kafka, settings=settings, registry=registry) as second:
        for step in range(300, 400):
            for episode in ("a", "b", "c"):
                second.reward(episode, step, float(step), event_id=f"new-{episode}-{step}")
        second.flush(timeout=30)

    per_episode: dict[str, list[int]] = defaultdict(list)
    for _, event in read_events(kafka, expected=1_200):
        per_episode[event["episode_id"]].append(event["step"])
    assert per_episode == {e: list(range(400)) for e in ("a", "b", "c")}
    assert DiskSpool(settings.spool_dir, settings.spool_max_bytes).is_empty()


def test_metrics_count_accepted_sent_and_records(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
        for i in range(300):
            logger.decision(f"ep{i % 3}", i, {"x": 1.0}, 0, [0, 1], 0.5, "v1")
            logger.reward(f"ep{i % 3}", i, 1.0)
        for e in range(3):
            logger.end_episode(f"ep{e}", terminal=True)
        logger.flush(timeout=30)

        def value(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, labels)

        assert value("policyloop_sdk_events_accepted_total", type="decision") == 300
        assert value("policyloop_sdk_events_accepted_total", type="reward") == 300
        assert value("policyloop_sdk_events_accepted_total", type="episode_end") == 3
        assert value("policyloop_sdk_events_sent_total") == 603
        assert value("policyloop_sdk_events_spooled_total") == 0
        assert value("policyloop_sdk_events_dropped_total", reason="queue_full") == 0
        assert value("policyloop_sdk_send_errors_total") == 0
        records = value("policyloop_sdk_records_sent_total")
        assert records is not None and 1 <= records < 603
        assert value("policyloop_sdk_send_latency_seconds_count") == records
        assert value("policyloop_sdk_queue_depth") == 0
