"""The coverage benchmark's exact yardstick (``tests/benchmarks/cpe_coverage_exact.py``).

Taxi's true values are solved from the model gymnasium publishes instead of simulated; these
tests hold the solve to what a served policy actually earns when played.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from services.simulator.environments import open_environment
from tests.benchmarks.cpe_coverage_exact import tabular_model
from tests.benchmarks.cpe_coverage_policies import Uniform
from tests.benchmarks.cpe_coverage_truth import ServedSimulator

TAXI = "Taxi-v4"
ACTIONS = [str(a) for a in range(6)]
GAMMA = 0.99


def _taxi_features() -> list[str]:
    with open_environment(TAXI) as opened:
        return list(opened.adapter.feature_names)


class NearOptimal:
    """Softly greedy (about 92%) on the optimal action of each state, found by value
    iteration on gymnasium's own transition table: a policy worth far more than a random one,
    whose value collapses if a state's features or an action land in the wrong place."""

    def __init__(self, features: list[str]) -> None:
        inner: Any = gym.make(TAXI).unwrapped
        n = len(inner.P)
        q = np.zeros((n, len(ACTIONS)))
        for _ in range(300):
            v = np.where([inner.action_mask(s) for s in range(n)], q, -np.inf).max(axis=1)
            for s in range(n):
                for a, outcomes in inner.P[s].items():
                    q[s, a] = sum(p * (r + GAMMA * (not d) * v[s2]) for p, s2, r, d in outcomes)
        self.weights = np.zeros((len(features), len(ACTIONS)))
        with open_environment(TAXI) as opened:
            for s in range(n):
                state = opened.adapter.state(s)
                hot = next(i for i, f in enumerate(features) if state.get(f) == 1.0)
                masked = np.where(inner.action_mask(s), q[s], -np.inf)
                self.weights[hot, int(np.argmax(masked))] = 4.0

    def __call__(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        logits = np.nan_to_num(states) @ self.weights
        p = np.exp(logits - logits.max(axis=1, keepdims=True)) * mask
        out: np.ndarray = p / p.sum(axis=1, keepdims=True)
        return out


class MostlyImpossible:
    """Puts 90% on the first action whether or not it is possible, the rest uniformly."""

    def __call__(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        p = np.full(mask.shape, 0.1 / (mask.shape[1] - 1))
        p[:, 0] = 0.9
        return p


@pytest.mark.parametrize("policy_name", ["uniform", "near_optimal"])
def test_the_exact_taxi_value_agrees_with_playing_the_policy(policy_name):
    features = _taxi_features()
    policy = Uniform() if policy_name == "uniform" else NearOptimal(features)
    model = tabular_model(TAXI)
    assert model is not None
    exact = model.true_value(policy, features, ACTIONS, gamma=GAMMA)
    played = ServedSimulator(TAXI).value(
        policy, features, ACTIONS, episodes=1000, gamma=GAMMA, seed=7
    )
    assert exact.exact and exact.se == 0.0
    assert abs(exact.value - played.value) <= 4.0 * played.se
    assert abs(exact.mean_return - played.mean_return) <= 4.0 * played.se / (1 - GAMMA) ** 0.5


def test_the_first_steps_of_a_taxi_episode_cost_one_each():
    """No episode can end by delivery in its first two steps (the passenger is not aboard at
    the start), and a uniform policy over the possible actions never pays an illegal move."""
    model = tabular_model(TAXI)
    assert model is not None
    served = model.served_probs(Uniform(), _taxi_features(), ACTIONS)
    assert model.value(served, GAMMA, horizon=1) == pytest.approx(-1.0)
    assert model.value(served, GAMMA, horizon=2) == pytest.approx(-1.0 - GAMMA)


def test_probability_on_an_impossible_action_is_served_as_the_most_probable_possible_one():
    model = tabular_model(TAXI)
    assert model is not None
    served = model.served_probs(MostlyImpossible(), _taxi_features(), ACTIONS)
    asked = MostlyImpossible()(np.zeros((1, 1)), np.ones((1, 6), bool))[0]
    for s, possible in enumerate(model.possible):
        expected = np.zeros(6)
        expected[possible] = asked[possible]
        best = 0 if 0 in possible else min(possible)  # ties go to the first possible action
        expected[best] += 1.0 - expected.sum()
        assert served[s] == pytest.approx(expected)


def test_the_time_limit_is_the_registered_one_or_the_one_asked_for():
    default, longer = tabular_model(TAXI), tabular_model(TAXI, {"max_episode_steps": 1000})
    assert default is not None and longer is not None
    assert (default.horizon, longer.horizon) == (200, 1000)


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("CartPole-v1", {}), (TAXI, {"fickle_passenger": True})],
    ids=["no published model", "steps outside the model"],
)
def test_an_environment_the_model_does_not_describe_is_simulated_instead(env_id, kwargs):
    assert tabular_model(env_id, kwargs) is None
