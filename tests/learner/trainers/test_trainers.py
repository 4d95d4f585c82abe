"""Trainers: determinism, divergence detection, learning the better action, masks, warm start."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner.trainers.config import ExplorationSettings, TrainerSettings
from learner.trainers.networks import EnsembleMLP
from learner.trainers.training import choose_algorithm, train
from tests.learner.trainers.synthetic import bandit_data, chain_mdp_data

FAST = {"hidden_sizes": [32, 32], "batch_size": 64, "log_every": 50, "num_threads": 1}


def _settings(**overrides) -> TrainerSettings:
    return TrainerSettings(**{**FAST, **overrides})


@pytest.fixture(scope="module")
def mdp():
    return chain_mdp_data()


@pytest.fixture(scope="module")
def bandit():
    return bandit_data()


def _weights(result) -> list[torch.Tensor]:
    return [p.detach().clone() for p in result.q_network.parameters()]


def test_same_seed_gives_identical_weights(mdp):
    settings = _settings(algorithm="cql", steps=150, seed=3)
    first = train(mdp, settings, progress=False)
    second = train(mdp, settings, progress=False)
    for a, b in zip(_weights(first), _weights(second), strict=True):
        assert torch.equal(a, b)
    assert first.history == [
        {**h, "elapsed_s": first.history[i]["elapsed_s"]} for i, h in enumerate(second.history)
    ]


def test_another_seed_gives_other_weights(mdp):
    first = train(mdp, _settings(algorithm="cql", steps=50, seed=1), progress=False)
    second = train(mdp, _settings(algorithm="cql", steps=50, seed=2), progress=False)
    assert not torch.equal(_weights(first)[0], _weights(second)[0])


def test_an_absurd_learning_rate_is_reported_as_divergence(mdp):
    result = train(mdp, _settings(algorithm="dqn", steps=2000, learning_rate=1e4), progress=False)
    assert result.diverged
    assert "Q-values" in result.divergence_reason or "loss" in result.divergence_reason
    assert result.steps < 2000  # stopped early


def test_a_stable_run_is_not_reported_as_diverged(mdp):
    result = train(mdp, _settings(algorithm="cql", steps=200), progress=False)
    assert not result.diverged and result.divergence_reason is None
    assert {"loss", "q_mean", "q_max", "q_min"} <= set(result.history[-1])


@pytest.mark.parametrize("algorithm", ["cql", "bcq"])
def test_sequential_trainer_learns_the_better_delayed_action(mdp, algorithm):
    settings = _settings(algorithm=algorithm, steps=1500, gamma=0.9, learning_rate=3e-3,
                         target_update_interval=50)  # fmt: skip
    result = train(mdp, settings, progress=False)
    start = np.array([[0.0]], dtype=np.float32)
    assert result.policy.greedy_actions(start).tolist() == [1]
    probs = result.policy.probs(start)[0]
    assert probs[1] > probs[0]


def test_an_ensemble_learns_the_better_delayed_action_and_acts_on_its_mean(mdp):
    settings = _settings(algorithm="cql", steps=1500, gamma=0.9, learning_rate=3e-3,
                         ensemble_size=3)  # fmt: skip
    result = train(mdp, settings, progress=False)
    assert isinstance(result.q_network, EnsembleMLP) and len(result.q_network.members) == 3
    start = np.array([[0.0]], dtype=np.float32)
    assert result.policy.greedy_actions(start).tolist() == [1]
    z = result.policy.module.normalizer(torch.from_numpy(start))
    with torch.no_grad():
        mean = torch.stack([m(z) for m in result.q_network.members]).mean(0)
    np.testing.assert_allclose(result.policy.q_values(start), mean.numpy(), rtol=1e-5)


def test_warm_start_of_an_ensemble_loads_every_member(mdp):
    incumbent = train(mdp, _settings(algorithm="cql", steps=50, ensemble_size=2), progress=False)
    warm = train(mdp, _settings(algorithm="cql", steps=1, learning_rate=1e-9, ensemble_size=2),
                 warm_start=incumbent.policy.module, progress=False)  # fmt: skip
    assert warm.warm_started
    for a, b in zip(_weights(warm), _weights(incumbent), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_bandit_trainer_learns_the_best_action_per_context(bandit):
    result = train(bandit, _settings(steps=800, learning_rate=3e-3), progress=False)
    assert result.algorithm == "bandit"
    states = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    assert result.policy.greedy_actions(states).tolist() == [1, 2]
    predicted = result.policy.q_values(states)
    assert abs(predicted[0, 1] - 0.9) < 0.15 and abs(predicted[1, 2] - 0.5) < 0.15


def test_auto_picks_bandit_for_one_step_data_and_cql_otherwise(bandit, mdp):
    assert choose_algorithm(bandit, TrainerSettings()) == "bandit"
    assert choose_algorithm(mdp, TrainerSettings()) == "cql"


def test_impossible_actions_get_zero_probability_and_rows_sum_to_one(bandit):
    exploration = ExplorationSettings(temperature=0.01, epsilon=0.0, min_propensity=0.05)
    result = train(bandit, _settings(steps=100, exploration=exploration), progress=False)
    mask = np.array([[True, False, True], [False, False, True], [True, True, True]])
    states = np.zeros((3, 2), dtype=np.float32)
    probs = result.policy.probs(states, mask)
    assert (probs[~mask] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert (probs[mask] >= 0.05 - 1e-6).all()  # the propensity floor holds
    assert probs[1, 2] == 1.0


def test_a_row_without_possible_actions_is_refused(bandit):
    result = train(bandit, _settings(steps=10), progress=False)
    with pytest.raises(ValueError, match="possible action"):
        result.policy.probs(np.zeros((1, 2), np.float32), np.zeros((1, 3), bool))


def test_warm_start_loads_the_incumbent_weights(mdp):
    incumbent = train(mdp, _settings(algorithm="cql", steps=100), progress=False)
    warm = train(mdp, _settings(algorithm="cql", steps=1, learning_rate=1e-9),
                 warm_start=incumbent.policy.module, progress=False)  # fmt: skip
    assert warm.warm_started
    assert torch.allclose(_weights(warm)[0], _weights(incumbent)[0], atol=1e-6)


def test_warm_start_from_a_different_network_is_skipped_with_a_note(mdp):
    incumbent = train(mdp, _settings(algorithm="cql", steps=10, hidden_sizes=[8]), progress=False)
    result = train(mdp, _settings(algorithm="cql", steps=10), warm_start=incumbent.q_network,
                   progress=False)  # fmt: skip
    assert not result.warm_started
    assert any("warm start skipped" in note for note in result.notes)
