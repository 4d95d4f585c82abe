"""DecisionLogger and PolicyClient used from several application threads at once.

Both claim thread safety. Each thread owns its episodes (as a web server's request threads do)
and interleaves them; the threads run together, with a short GIL switch interval so that they
interleave inside the SDK's calls, not only between them.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from services.kafka_settings import KafkaSettings
from services.registry import Registry, load_policy
from services.sdk import DecisionLogger, PolicyAct, PolicyClient
from tests.rollout.factory import publish
from tests.sdk.conftest import read_events

THREADS = 8
ACTIONS = ["left", "stay", "right"]


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    """Let the interpreter switch threads every 10 µs (Python's default is 5 ms)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _run_together(work: Callable[[int], None]) -> None:
    """Run ``work(thread_index)`` on THREADS threads started together; re-raise any failure."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def _state(thread: int, episode: int, step: int) -> dict[str, float]:
    """A state of its own for every (thread, episode, step): probabilities differ per call."""
    return {
        "cart_position": thread / 4 - 1,
        "cart_velocity": episode / 10 - 1,
        "pole_angle": step / 20 - 0.25,
        "pole_angular_velocity": (thread - episode) / 8,
    }


# -- DecisionLogger --------------------------------------------------------------------------
EPISODES_PER_THREAD = 50
DECISIONS = 20  # per episode, each with its reward, then the episode's end: 41 events


def _log_episodes(logger: DecisionLogger, thread: int, out: dict[str, list[str]]) -> None:
    """Log this thread's episodes, interleaved; record each event id the logger returns."""
    episodes = [f"t{thread}-ep{e}" for e in range(EPISODES_PER_THREAD)]
    for step in range(DECISIONS):
        for e, episode in enumerate(episodes):
            state = _state(thread, e, step)
            out[episode].append(logger.decision(episode, step, state, "stay", ACTIONS, 0.5, "v1"))
            out[episode].append(logger.reward(episode, step, 1.0))
    for episode in episodes:
        out[episode].append(logger.end_episode(episode, True))


@pytest.mark.integration
def test_events_logged_from_many_threads_arrive_exactly_once_in_episode_order(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    logged: list[dict[str, list[str]]] = [defaultdict(list) for _ in range(THREADS)]
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
        _run_together(lambda t: _log_episodes(logger, t, logged[t]))
        logger.flush(timeout=30)
    expected = {episode: ids for per_thread in logged for episode, ids in per_thread.items()}
    total = THREADS * EPISODES_PER_THREAD * (2 * DECISIONS + 1)
    assert sum(map(len, expected.values())) == total

    read = read_events(kafka, total, timeout_s=60)
    got: dict[str, list[str]] = defaultdict(list)
    for _, event in read:
        got[event["episode_id"]].append(event["event_id"])
    duplicates = [i for i, n in Counter(e["event_id"] for _, e in read).items() if n > 1]
    assert duplicates == []
    assert len(read) == total
    assert got == expected  # every event once, each episode's in the order it was logged
    assert len({i for ids in expected.values() for i in ids}) == total  # generated ids unique
    accepted = sum(
        registry.get_sample_value("policyloop_sdk_events_accepted_total", {"type": kind})
        for kind in ("decision", "reward", "episode_end")
    )
    assert accepted == total


# -- PolicyClient ----------------------------------------------------------------------------
EPISODES_PER_CLIENT_THREAD = 20
STEPS = 10


@pytest.fixture
def registry_with_policy(tmp_path) -> tuple[Registry, str]:
    """A registry whose CURRENT is a small random MLP: its probabilities depend on the state."""
    registry = Registry(str(tmp_path / "registry"), "cartpole")
    version = publish(registry, promote=True, actions=ACTIONS, seed=3, hidden_sizes=(8,))
    return registry, version


def _act_episodes(client: PolicyClient, thread: int, out: list) -> None:
    episodes = [f"t{thread}-ep{e}" for e in range(EPISODES_PER_CLIENT_THREAD)]
    for step in range(STEPS):
        for e, episode in enumerate(episodes):
            state = _state(thread, e, step)
            out.append((episode, state, client.act(episode, state, ACTIONS)))


def _acts_by_episode(
    per_thread: list[list[tuple[str, dict, PolicyAct]]],
) -> dict[str, list[tuple[dict, PolicyAct]]]:
    by_episode: dict[str, list[tuple[dict, PolicyAct]]] = defaultdict(list)
    for acts in per_thread:
        for episode, state, act in acts:
            by_episode[episode].append((state, act))
    return by_episode


def test_acts_from_many_threads_count_steps_per_episode_and_serve_each_states_probabilities(
    registry_with_policy,
) -> None:
    registry, version = registry_with_policy
    served = load_policy(registry.load_bytes(version)[0])
    metrics = CollectorRegistry()
    per_thread: list[list] = [[] for _ in range(THREADS)]
    with PolicyClient(
        registry.uri, "cartpole", seed=0, poll_interval_s=3600, metrics_registry=metrics
    ) as client:
        _run_together(lambda t: _act_episodes(client, t, per_thread[t]))
        labels = {"policy": "cartpole", "policy_version": version}
        decisions = metrics.get_sample_value("policyloop_policy_decisions_total", labels)
        episodes = metrics.get_sample_value("policyloop_policy_episodes_total", labels)

    by_episode = _acts_by_episode(per_thread)
    assert len(by_episode) == THREADS * EPISODES_PER_CLIENT_THREAD
    decision_ids = {act.decision_id for acts in per_thread for _, _, act in acts}
    assert len(decision_ids) == THREADS * EPISODES_PER_CLIENT_THREAD * STEPS
    for episode, acts in by_episode.items():
        assert [act.step for _, act in acts] == list(range(STEPS)), episode
        for state, act in acts:
            assert act.action_probs == pytest.approx(served(state, [True] * 3), abs=1e-6)
            assert act.propensity == act.action_probs[ACTIONS.index(act.action)]
            assert act.policy_version == version
    assert decisions == THREADS * EPISODES_PER_CLIENT_THREAD * STEPS
    assert episodes == THREADS * EPISODES_PER_CLIENT_THREAD


@pytest.mark.integration
def test_acts_from_many_threads_are_logged_in_step_order_with_their_propensities(
    registry_with_policy, kafka: KafkaSettings, sdk_settings
) -> None:
    registry, _ = registry_with_policy
    per_thread: list[list] = [[] for _ in range(THREADS)]
    with DecisionLogger(
        kafka=kafka, settings=sdk_settings(), registry=CollectorRegistry()
    ) as logger:
        with PolicyClient(
            registry.uri, "cartpole", seed=0, poll_interval_s=3600, logger=logger,
            metrics_registry=CollectorRegistry(),
        ) as client:  # fmt: skip
            _run_together(lambda t: _act_episodes(client, t, per_thread[t]))
        logger.flush(timeout=60)
    by_episode = _acts_by_episode(per_thread)
    total = THREADS * EPISODES_PER_CLIENT_THREAD * STEPS

    logged: dict[str, list[dict]] = defaultdict(list)
    for _, event in read_events(kafka, total, timeout_s=60):
        logged[event["episode_id"]].append(event)
    assert sum(map(len, logged.values())) == total
    for episode, acts in by_episode.items():
        events = logged[episode]
        assert [e["step"] for e in events] == list(range(STEPS)), episode
        assert [e["event_id"] for e in events] == [act.decision_id for _, act in acts]
        for event, (state, act) in zip(events, acts, strict=True):
            assert event["state"] == state and event["action"] == act.action
            assert event["propensity"] == act.propensity
            assert event["action_probs"] == act.action_probs
