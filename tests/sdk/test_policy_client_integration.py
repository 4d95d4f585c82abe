"""PolicyClient with the real embedded broker: logged decisions, announced versions."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from services.registry import Registry
from services.sdk import DecisionLogger, PolicyClient
from tests.rollout.factory import publish
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration

STATE = {"cart_position": 0.1, "cart_velocity": 0.0, "pole_angle": -0.02,
         "pole_angular_velocity": 0.3}  # fmt: skip


def test_an_attached_logger_logs_every_act_with_its_true_propensity(tmp_path, kafka, sdk_settings):
    registry = Registry(str(tmp_path / "registry"), "cartpole")
    version = publish(registry, promote=True, logits=[1.5, 0.0])
    acts = []
    with DecisionLogger(
        kafka=kafka, settings=sdk_settings(), registry=CollectorRegistry()
    ) as logger:
        client = PolicyClient(
            registry.uri,
            "cartpole",
            seed=4,
            logger=logger,
            metrics_registry=CollectorRegistry(),
            poll_interval_s=3600,
        )
        with client:
            for episode in ("ep-1", "ep-2"):
                for _ in range(3):
                    acts.append((episode, client.act(episode, STATE, [0, 1])))
                    client.reward(episode, 1.0)
                client.end_episode(episode, terminal=True)
        logger.flush(timeout=20)
    events = [e for _, e in read_events(kafka, expected=2 * (3 + 3 + 1))]
    decisions = {e["event_id"]: e for e in events if e["type"] == "decision"}
    assert len(decisions) == len(acts)
    for episode, act in acts:
        logged = decisions[act.decision_id]
        assert logged["episode_id"] == episode and logged["step"] == act.step
        assert logged["action"] == act.action and logged["policy_version"] == version
        assert logged["propensity"] == act.propensity
        assert logged["action_probs"] == act.action_probs
    rewards = sorted((e["episode_id"], e["step"]) for e in events if e["type"] == "reward")
    assert rewards == [(ep, s) for ep in ("ep-1", "ep-2") for s in range(3)]
    ends = {e["episode_id"]: e for e in events if e["type"] == "episode_end"}
    assert ends["ep-1"]["terminal"] is True and ends["ep-1"]["last_step"] == 2


def test_an_announced_version_is_served_without_waiting_for_the_poll(tmp_path, kafka):
    registry = Registry(str(tmp_path / "registry"), "cartpole", kafka=kafka)
    first = publish(registry, promote=True)
    with PolicyClient(registry.uri, "cartpole", kafka=kafka, poll_interval_s=3600,
                      metrics_registry=CollectorRegistry()) as client:  # fmt: skip
        assert client.wait_listening(20), "listener did not reach the topic's end"
        assert client.serving.current_version == first
        second = publish(registry, promote=True)  # writes CURRENT, then announces
        deadline = time.monotonic() + 15
        while client.serving.current_version != second:
            assert time.monotonic() < deadline, "the announcement did not trigger a reload"
            time.sleep(0.02)
