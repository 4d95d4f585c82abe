"""The events topic grows while a DecisionLogger runs: new episodes use the new partition count,
and no episode is ever split across partitions (the sessionizer keys episodes per partition).

Tansu 0.6.0, the embedded broker, does not implement CreatePartitions: it does not advertise the
API in ApiVersions, and a forced request makes it drop the connection. So these tests grow the
topic the two ways that broker allows, both real answers of the broker to the SDK's metadata
requests for the *same* topic name:

* while the logger stays connected: the topic is deleted and re-created with 8 partitions
  instead of 4 (what was written before is read back first; a sessionizer of a really grown
  topic would see both parts on the same partition numbers);
* across a reconnection: the broker restarts (Tansu keeps data in memory) and the topic comes
  back with 8 partitions.

The last tests pin down the partitioner's memory bounds without a broker.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from services.broker.embedded import BrokerHandle, start_broker, stop_broker
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from services.sdk import DecisionLogger
from services.sdk.partitioning import EpisodePartitioner, kafka_default_partition
from services.sdk.settings import SdkSettings
from tests.sdk.conftest import read_events

OLD_PARTITIONS = 4
NEW_PARTITIONS = 8
OPEN_EPISODES = [f"open-{i:02d}" for i in range(32)]
ENDED_EPISODES = [f"ended-{i:02d}" for i in range(16)]
NEW_EPISODES = [f"new-{i:02d}" for i in range(64)]
#: How long the tests wait for the logger to see the grown topic (it re-reads every 0.2 s).
PICK_UP_TIMEOUT_S = 15.0


class LoggedEvent(NamedTuple):
    """One event read back from the events topic, with the partition it was found in."""

    partition: int
    episode_id: str
    type: str


class GrowthScenario(NamedTuple):
    """What the topic held before it grew (4 partitions) and after (8 partitions)."""

    before: list[LoggedEvent]
    after: list[LoggedEvent]
    logged: int


def _settings(spool_dir: Path) -> SdkSettings:
    return SdkSettings(
        spool_dir=str(spool_dir),
        linger_ms=5,
        outage_after_s=0.5,
        reconnect_backoff_s=0.2,
        max_block_ms=500,
        close_timeout_s=5.0,
        partition_refresh_s=0.2,
    )


def _read_back(kafka: KafkaSettings, expected: int) -> list[LoggedEvent]:
    return [
        LoggedEvent(partition, event["episode_id"], event["type"])
        for partition, event in read_events(kafka, expected, timeout_s=60)
    ]


def _partitions_by_episode(events: list[LoggedEvent]) -> dict[str, set[int]]:
    found: dict[str, set[int]] = defaultdict(set)
    for event in events:
        found[event.episode_id].add(event.partition)
    return found


def _moves_when_grown(episode_id: str) -> bool:
    """Kafka's default partitioner puts the episode elsewhere among 8 partitions than among 4."""
    key = episode_id.encode()
    return kafka_default_partition(key, OLD_PARTITIONS) != kafka_default_partition(
        key, NEW_PARTITIONS
    )


class _Messages(logging.Handler):
    """Collects the SDK's log lines, so a test can wait until the logger saw the new count."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _wait_for_new_count(messages: _Messages) -> None:
    """Wait (at most PICK_UP_TIMEOUT_S) for the logger to say it uses 8 partitions.

    Not an assertion: the tests below assert on what reached the topic, which is the contract.
    """
    deadline = time.monotonic() + PICK_UP_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(f"{NEW_PARTITIONS} partitions" in line for line in messages.lines):
            return
        time.sleep(0.05)


@contextmanager
def _sdk_messages() -> Iterator[_Messages]:
    """The SDK's log lines (INFO and up) while the block runs."""
    handler = _Messages()
    sdk_log = logging.getLogger("services.sdk")
    level = sdk_log.level
    sdk_log.setLevel(logging.INFO)
    sdk_log.addHandler(handler)
    try:
        yield handler
    finally:
        sdk_log.removeHandler(handler)
        sdk_log.setLevel(level)


def _open(logger: DecisionLogger, episodes: list[str], step: int) -> int:
    """One decision and its reward for each episode; returns the number of events."""
    for episode in episodes:
        logger.decision(episode, step, {"x": float(step)}, 1, [0, 1], 0.5, "v1")
        logger.reward(episode, step, 1.0)
    return 2 * len(episodes)


def _end(logger: DecisionLogger, episodes: list[str], last_step: int) -> int:
    for episode in episodes:
        logger.end_episode(episode, terminal=True, last_step=last_step)
    return len(episodes)


def _re_create_with_more_partitions(kafka: KafkaSettings) -> None:
    """Grow the events topic to NEW_PARTITIONS the one way Tansu allows (see the top)."""
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        admin.delete_topics([kafka.events_topic])
        admin.create_topics([NewTopic(kafka.events_topic, NEW_PARTITIONS, replication_factor=1)])
    finally:
        admin.close()


@pytest.fixture(scope="module")
def grown_while_connected(
    broker: BrokerHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GrowthScenario]:
    """Episodes open and ended on 4 partitions, the topic grows to 8, then more traffic.

    Before: ``OPEN_EPISODES`` log a decision and a reward; ``ENDED_EPISODES`` log a decision, a
    reward and their end. After: the open episodes log another step and end; each ended episode
    logs one more reward for its step 0 (a reward may follow the end within its window);
    ``NEW_EPISODES`` start, log a step and end.
    """
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=f"g{uuid.uuid4().hex[:12]}",
        partitions=OLD_PARTITIONS,
    )
    ensure_topics(kafka)
    spool = tmp_path_factory.mktemp("growth-spool")
    with (
        _sdk_messages() as messages,
        DecisionLogger(
            kafka=kafka, settings=_settings(spool), registry=CollectorRegistry()
        ) as logger,
    ):
        # Connected first: events logged before the count is known are routed in bulk later.
        n_before = _open(logger, ["warm-up"], 0) + _end(logger, ["warm-up"], 0)
        logger.flush(timeout=30)
        n_before += _open(logger, OPEN_EPISODES + ENDED_EPISODES, 0)
        n_before += _end(logger, ENDED_EPISODES, 0)
        logger.flush(timeout=30)
        before = _read_back(kafka, n_before)

        _re_create_with_more_partitions(kafka)
        _wait_for_new_count(messages)

        n_after = _open(logger, OPEN_EPISODES, 1) + _end(logger, OPEN_EPISODES, 1)
        for episode in ENDED_EPISODES:
            logger.reward(episode, 0, 0.5)
        n_after += len(ENDED_EPISODES)
        n_after += _open(logger, NEW_EPISODES, 0) + _end(logger, NEW_EPISODES, 0)
        logger.flush(timeout=30)
    after = _read_back(kafka, n_after)
    yield GrowthScenario(before, after, n_before + n_after)


@pytest.mark.integration
@pytest.mark.slow
def test_the_scenario_delivers_every_event_once(grown_while_connected: GrowthScenario) -> None:
    scenario = grown_while_connected
    assert len(scenario.before) + len(scenario.after) == scenario.logged


@pytest.mark.integration
@pytest.mark.slow
def test_episodes_started_after_the_topic_grew_use_the_new_partition_count(
    grown_while_connected: GrowthScenario,
) -> None:
    found = _partitions_by_episode(grown_while_connected.after)
    expected = {
        episode: {kafka_default_partition(episode.encode(), NEW_PARTITIONS)}
        for episode in NEW_EPISODES
    }
    assert {episode: found[episode] for episode in NEW_EPISODES} == expected
    assert any(p >= OLD_PARTITIONS for e in NEW_EPISODES for p in found[e]), (
        "no episode started after the growth uses an added partition"
    )


@pytest.mark.integration
@pytest.mark.slow
def test_an_episode_open_while_the_topic_grew_keeps_its_partition_until_it_ends(
    grown_while_connected: GrowthScenario,
) -> None:
    assert any(_moves_when_grown(e) for e in OPEN_EPISODES), "the scenario moves no episode"
    scenario = grown_while_connected
    found = _partitions_by_episode(scenario.before + scenario.after)
    split = {e: sorted(found[e]) for e in OPEN_EPISODES if len(found[e]) != 1}
    assert not split, f"episodes split across partitions: {split}"


@pytest.mark.integration
@pytest.mark.slow
def test_a_reward_logged_after_its_episode_ended_follows_it_to_its_partition(
    grown_while_connected: GrowthScenario,
) -> None:
    assert any(_moves_when_grown(e) for e in ENDED_EPISODES), "the scenario moves no episode"
    scenario = grown_while_connected
    found = _partitions_by_episode(scenario.before + scenario.after)
    split = {e: sorted(found[e]) for e in ENDED_EPISODES if len(found[e]) != 1}
    assert not split, f"late rewards went to another partition than their episode: {split}"


@pytest.mark.integration
@pytest.mark.slow
def test_an_episode_open_when_the_logger_reconnects_to_a_grown_topic_keeps_its_partition(
    tmp_path: Path,
) -> None:
    home = tmp_path / "broker"
    handle = start_broker(home, port=0)
    kafka = KafkaSettings(
        bootstrap_servers=handle.bootstrap_servers,
        topic_prefix="regrown",
        partitions=OLD_PARTITIONS,
    )
    ensure_topics(kafka)
    assert any(_moves_when_grown(e) for e in OPEN_EPISODES), "the scenario moves no episode"
    try:
        with (
            _sdk_messages() as messages,
            DecisionLogger(
                kafka=kafka, settings=_settings(tmp_path / "spool"), registry=CollectorRegistry()
            ) as logger,
        ):
            n_before = _open(logger, OPEN_EPISODES, 0)
            logger.flush(timeout=30)
            before = _read_back(kafka, n_before)
            stop_broker(home)
            # Logged while the broker is away: these records fail once it is back, which makes
            # the logger drop its producer and connect a new one.
            n_after = _open(logger, OPEN_EPISODES, 1)
            time.sleep(1.0)
            start_broker(home, port=handle.port)
            ensure_topics(kafka.model_copy(update={"partitions": NEW_PARTITIONS}))
            _wait_for_new_count(messages)
            n_after += _end(logger, OPEN_EPISODES, 1)
            logger.flush(timeout=60)
        after = _read_back(kafka, n_after)
    finally:
        stop_broker(home)
    assert len(after) == n_after
    found = _partitions_by_episode(before + after)
    split = {e: sorted(found[e]) for e in OPEN_EPISODES if len(found[e]) != 1}
    assert not split, f"episodes split across partitions: {split}"


def _moving_episodes(n: int) -> list[str]:
    """``n`` episode ids that Kafka's default partitioner moves when 4 partitions become 8."""
    return [e for e in (f"m-{i}" for i in range(1_000)) if _moves_when_grown(e)][:n]


def test_open_episode_pins_are_bounded_oldest_first() -> None:
    first, second, third = _moving_episodes(3)
    partitioner = EpisodePartitioner(OLD_PARTITIONS, max_cached=2)
    for episode in (first, second, third):
        partitioner.partition(episode)
    assert list(partitioner.cache) == [second, third]


def test_a_pin_dropped_by_the_bound_after_the_topic_grew_is_counted() -> None:
    first, second, third = _moving_episodes(3)
    partitioner = EpisodePartitioner(OLD_PARTITIONS, max_cached=2)
    old = {e: partitioner.partition(e) for e in (first, second)}
    partitioner.resize(NEW_PARTITIONS)
    partitioner.partition(third)
    assert partitioner.dropped_pins == 1
    assert partitioner.partition(second) == old[second]


def test_ended_episode_pins_are_bounded_oldest_first() -> None:
    first, second, third = _moving_episodes(3)
    partitioner = EpisodePartitioner(OLD_PARTITIONS, max_ended=2)
    old = {e: partitioner.partition(e) for e in (first, second, third)}
    for episode in (first, second, third):
        partitioner.forget(episode)
    partitioner.resize(NEW_PARTITIONS)
    assert not partitioner.cache
    assert partitioner.partition(second) == old[second]
    assert partitioner.partition(third) == old[third]
    assert partitioner.partition(first) == kafka_default_partition(first.encode(), NEW_PARTITIONS)


def test_a_re_created_smaller_topic_re_hashes_episodes_pinned_past_its_last_partition() -> None:
    partitioner = EpisodePartitioner(NEW_PARTITIONS)
    pinned = {e: partitioner.partition(e) for e in _moving_episodes(16)}
    partitioner.resize(OLD_PARTITIONS)
    assert all(
        partitioner.partition(e) == kafka_default_partition(e.encode(), OLD_PARTITIONS)
        for e in pinned
    )
    assert any(p >= OLD_PARTITIONS for p in pinned.values())
