"""The fleet plays episodes reproducibly and logs events that obey the contract."""

from __future__ import annotations

import pytest

from services.simulator.fleet import UniformPolicy, play_episodes
from services.simulator.recommendation_env import ENV_ID
from tests.simulator.contract import ContractRecorder


def test_uniform_cartpole_returns_about_22():
    stats = play_episodes("CartPole-v1", 300, UniformPolicy(seed=1), seed=0)
    assert 17 < stats.mean_return() < 28


def test_same_seeds_replay_the_same_episodes():
    first = play_episodes("CartPole-v1", 20, UniformPolicy(seed=5), seed=100)
    second = play_episodes("CartPole-v1", 20, UniformPolicy(seed=5), seed=100)
    assert first.returns == second.returns


@pytest.mark.parametrize("env_id", ["CartPole-v1", ENV_ID])
def test_logged_events_obey_the_contract(env_id):
    recorder = ContractRecorder()
    stats = play_episodes(env_id, 25, UniformPolicy(), logger=recorder, episode_prefix="x")
    decisions = [e for e in recorder.events if e["type"] == "decision"]
    ends = [e for e in recorder.events if e["type"] == "episode_end"]
    assert len(decisions) == sum(stats.lengths)
    assert len(ends) == 25
    assert all(e["propensity"] == 1 / len(e["possible_actions"]) for e in decisions)


def test_cartpole_time_limit_is_logged_as_truncated_not_terminal():
    class AlwaysBalance:
        # Pushes toward the pole's lean: balances CartPole until the 500-step limit.
        def act(self, episode_id, state, possible):
            from services.simulator.fleet import Decision

            push = 1 if state["pole_angle"] + 0.5 * state["pole_angular_velocity"] > 0 else 0
            return Decision(push, 1.0, [1.0 - push, float(push)], "balance")

    recorder = ContractRecorder()
    stats = play_episodes("CartPole-v1", 1, AlwaysBalance(), logger=recorder)
    assert stats.returns == [500.0]
    assert recorder.events[-1]["terminal"] is False


def test_unknown_environment_is_refused_saying_how_to_give_ones_own():
    with pytest.raises(ValueError, match=r"env 'Pong' is not registered.*'module:Class'"):
        play_episodes("Pong", 1, UniformPolicy())
