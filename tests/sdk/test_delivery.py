"""Events logged through DecisionLogger reach Kafka exactly once, in episode order, intact."""

from __future__ import annotations

from collections import defaultdict

import pytest
from prometheus_client import CollectorRegistry

from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger
from services.sdk.partitioning import kafka_default_partition
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration

EPISODES = 1_000
DECISIONS_PER_EPISODE = 50  # + 49 rewards + 1 end = 100 events per episode


def _log_interleaved(logger: DecisionLogger) -> dict[str, list[dict]]:
    """Log 100 events for each of 1,000 episodes, round-robin; return them per episode."""
    expected: dict[str, list[dict]] = defaultdict(list)
    ts = 1_700_000_000_000
    for step in range(DECISIONS_PER_EPISODE):
        for e in range(EPISODES):
            episode = f"ep-{e:04d}"
            ts += 1
            state = {"x": e / 7, "y": -step * 0.25, "z": float(step), "w": 1e-300}
            probs = [0.2, 0.3, 0.5]
            action = ["left", "stay", "right"][(e + step) % 3]
            decision = {
                "type": "decision",
                "event_id": f"d-{episode}-{step}",
                "episode_id": episode,
                "step": step,
                "ts": ts,
                "state": state,
                "action": action,
                "possible_actions": ["left", "stay", "right"],
                "propensity": probs[(e + step) % 3],
                "policy_version": "v7",
                "action_probs": probs,
                "context": {"user": f"u{e}"},
            }
            logger.decision(
                episode,
                step,
                state,
                action,
                ["left", "stay", "right"],
                decision["propensity"],
                "v7",
                action_probs=probs,
                context={"user": f"u{e}"},
                event_id=decision["event_id"],
                ts=ts,
            )
            expected[episode].append(decision)
            if step < DECISIONS_PER_EPISODE - 1:
                reward = {
                    "type": "reward",
                    "event_id": f"r-{episode}-{step}",
                    "episode_id": episode,
                    "step": step,
                    "ts": ts,
                    "reward": (e % 5) - 2.5,
                    "metrics": {"clicks": float(step % 2)},
                }
                logger.reward(
                    episode,
                    step,
                    reward["reward"],
                    metrics=reward["metrics"],
                    event_id=reward["event_id"],
                    ts=ts,
                )
                expected[episode].append(reward)
            else:
                end = {
                    "type": "episode_end",
                    "event_id": f"e-{episode}",
                    "episode_id": episode,
                    "ts": ts,
                    "terminal": e % 2 == 0,
                    "last_step": step,
                }
                logger.end_episode(
                    episode, e % 2 == 0, last_step=step, event_id=end["event_id"], ts=ts
                )
                expected[episode].append(end)
    return expected


def test_100k_interleaved_events_arrive_exactly_once_in_episode_order_intact(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
        expected = _log_interleaved(logger)
        logger.flush(timeout=60)

    total = sum(len(v) for v in expected.values())
    assert total == 100_000
    read = read_events(kafka, total, timeout_s=60)
    got: dict[str, list[dict]] = defaultdict(list)
    for partition, event in read:
        assert partition == kafka_default_partition(
            event["episode_id"].encode(), kafka.partitions
        ), f"{event['episode_id']} is not in the partition Kafka's default partitioner picks"
        got[event["episode_id"]].append(event)
    assert len(read) == total
    assert got == expected


def test_events_travel_in_batches_not_one_record_each(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
        for i in range(5_000):
            logger.reward(f"ep-{i % 10}", i, 1.0)
        logger.flush(timeout=30)
    records = registry.get_sample_value("policyloop_sdk_records_sent_total")
    assert records is not None and records <= 5_000 / 10


def test_generated_event_ids_are_unique_across_loggers(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    ids = set()
    for _ in range(2):
        with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
            ids.update(logger.reward("ep", i, 0.0) for i in range(1_000))
    assert len(ids) == 2_000
