"""The recommendation bandit behaves as its known click probabilities say."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from services.simulator.recommendation_env import ENV_ID, RecommendationEnv, uniform_probs


def test_is_registered_with_gymnasium():
    env = gym.make(ENV_ID)
    obs, info = env.reset(seed=1)
    assert obs.shape == (4,)
    assert len(info["possible_actions"]) >= 2


def test_every_episode_is_one_step():
    env = RecommendationEnv()
    _, info = env.reset(seed=3)
    _, reward, terminated, truncated, _ = env.step(info["possible_actions"][0])
    assert terminated and not truncated
    assert reward in (0.0, 1.0)


def test_unavailable_item_is_refused_with_the_field_named():
    env = RecommendationEnv(unavailable_prob=0.9)
    _, info = env.reset(seed=0)
    missing = sorted(set(range(env.n_items)) - set(info["possible_actions"]))
    with pytest.raises(ValueError, match=f"action={missing[0]}"):
        env.step(missing[0])


def test_observed_click_rate_matches_the_true_value_of_the_uniform_policy():
    env = RecommendationEnv()
    rng = np.random.default_rng(0)
    clicks = []
    for episode in range(20_000):
        _, info = env.reset(seed=episode)
        clicks.append(env.step(int(rng.choice(info["possible_actions"])))[1])
    truth = env.true_policy_value(uniform_probs)
    standard_error = np.sqrt(truth * (1 - truth) / len(clicks))
    assert abs(np.mean(clicks) - truth) < 4 * standard_error


def test_greedy_policy_on_true_probabilities_beats_uniform():
    env = RecommendationEnv()

    def greedy(users, available):
        p = np.where(available, env.click_probabilities(users), -1.0)
        return np.eye(env.n_items)[np.argmax(p, axis=1)]

    assert env.true_policy_value(greedy) > env.true_policy_value(uniform_probs) + 0.05


def test_true_value_refuses_mass_on_unavailable_items():
    env = RecommendationEnv(unavailable_prob=0.5)
    with pytest.raises(ValueError, match="unavailable"):
        env.true_policy_value(lambda users, available: np.full(available.shape, 1 / env.n_items))
