"""The state caps through the real worker (``policyloop sessionize``), set by environment
variables, with their dead letters on the real DLQ topic and the rows in the real Delta table."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.sessionizer.workload import Episode, expected_rows, run_batch, table_rows

pytestmark = pytest.mark.integration


def _dead_letters(kafka: KafkaSettings) -> list[tuple[str, str]]:
    """(reason, event_type) of every dead letter, in order."""
    consumer = KafkaConsumer(
        kafka.dlq_topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    letters = [
        (dict(m.headers)["reason"].decode(), dict(m.headers)["event_type"].decode())
        for m in consumer
    ]
    consumer.close()
    return letters


def _decision(logger: DecisionLogger, episode: str, step: int) -> None:
    logger.decision(episode, step, {"x": float(step)}, step % 3, [0, 1, 2], 0.25, "v1")


def test_max_open_episodes_dead_letters_the_episode_over_the_cap(
    one_partition, tmp_path, monkeypatch
):
    monkeypatch.setenv("POLICYLOOP_SESSIONIZER__MAX_OPEN_EPISODES", "2")
    spool = SdkSettings(spool_dir=str(tmp_path / "spool"))
    with DecisionLogger(kafka=one_partition, settings=spool) as logger:
        _decision(logger, "e0", 0)
        _decision(logger, "e1", 0)
        _decision(logger, "e2", 0)  # a third open episode: over the cap
        logger.end_episode("e2", True)
        _decision(logger, "e0", 1)
        logger.end_episode("e0", True)
        logger.end_episode("e1", False)
        logger.flush(30)
    done = run_batch(one_partition, tmp_path / "timeline", timeout_s=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _dead_letters(one_partition) == [
        ("state_limit:open_episodes", "decision"),
        ("state_limit:open_episodes", "episode_end"),
    ]
    assert table_rows(tmp_path / "timeline") == expected_rows(
        [Episode("e0", 2, {}, True), Episode("e1", 1, {}, False)]
    )


def test_max_episode_events_dead_letters_what_an_episode_cannot_hold(
    one_partition, tmp_path, monkeypatch
):
    monkeypatch.setenv("POLICYLOOP_SESSIONIZER__MAX_EPISODE_EVENTS", "3")
    spool = SdkSettings(spool_dir=str(tmp_path / "spool"))
    with DecisionLogger(kafka=one_partition, settings=spool) as logger:
        _decision(logger, "e0", 0)
        logger.reward("e0", 0, 1.0)
        logger.reward("e0", 0, 2.0)
        logger.reward("e0", 0, 4.0)  # a fourth event held by the episode: over the cap
        logger.end_episode("e0", True)  # also held until the row is written: over the cap
        logger.flush(30)
    done = run_batch(one_partition, tmp_path / "timeline", "--close-open-episodes", timeout_s=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _dead_letters(one_partition) == [
        ("state_limit:episode_events", "reward"),
        ("state_limit:episode_events", "episode_end"),
    ]
    assert table_rows(tmp_path / "timeline") == expected_rows(
        [Episode("e0", 1, {0: [1.0, 2.0]}, False)]
    )
