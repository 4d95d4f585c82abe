"""Sequential estimators on a small MDP whose true discounted value is solved exactly."""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe.config import CpeSettings, FqeSettings
from learner.cpe.evaluate import evaluate_policy
from learner.cpe.inputs import SequentialInput
from learner.cpe.sequential import MAGIC
from tests.learner.cpe.synthetic import ChainMdp, softmax

GAMMA = 0.9


@pytest.fixture(scope="module")
def result_and_truth():
    mdp = ChainMdp.make(seed=0)
    target = softmax(3.0 * mdp.r)  # prefers the immediately better action, still stochastic
    truth = mdp.value(target, GAMMA)
    data, state = mdp.logged(3000, seed=1)
    settings = CpeSettings(
        gamma=GAMMA,
        n_bootstrap=200,
        fqe=FqeSettings(n_steps=1500, target_update_every=50, hidden_sizes=[32]),
    )
    return evaluate_policy(data, target[state], settings), truth, mdp.value(mdp.logger, GAMMA)


def test_the_data_is_sequential_and_the_target_differs_from_the_logger(result_and_truth):
    result, truth, logged_truth = result_and_truth
    assert result.kind == "sequential"
    assert truth - logged_truth > 0.05


@pytest.mark.parametrize("name", ["pdis", "wpdis", "seq_dr", "wdr", "magic", "fqe"])
def test_estimate_lands_within_5_percent_of_the_true_value(result_and_truth, name):
    result, truth, _ = result_and_truth
    assert result.estimates[name].value == pytest.approx(truth, rel=0.05)


@pytest.mark.parametrize("name", ["pdis", "wpdis", "seq_dr", "wdr"])
def test_importance_sampled_interval_contains_the_true_value(result_and_truth, name):
    result, truth, _ = result_and_truth
    e = result.estimates[name]
    assert e.ci_low <= truth <= e.ci_high


def test_logged_value_matches_the_loggers_true_value(result_and_truth):
    result, _, logged_truth = result_and_truth
    lv = result.logged_value
    assert lv.ci_low <= logged_truth <= lv.ci_high


def test_magic_ignores_a_biased_model_that_importance_sampling_contradicts():
    # The exact Q-function of the target, shifted by +5: the model-only partial estimate is far
    # outside weighted DR's interval, so MAGIC puts (almost) no weight on it.
    mdp = ChainMdp.make(seed=0)
    target = softmax(3.0 * mdp.r)
    data, state = mdp.logged(2000, seed=2)
    r_pi = (target * mdp.r).sum(axis=1)
    p_pi = np.einsum("sa,sat->st", target, mdp.p)
    v = np.linalg.solve(np.eye(len(r_pi)) - GAMMA * (1 - mdp.p_end) * p_pi, r_pi)
    q = mdp.r + GAMMA * (1 - mdp.p_end) * np.einsum("sat,t->sa", mdp.p, v)
    seq = SequentialInput.from_logged(data, target[state], GAMMA, q_hat=q[state] + 5.0)
    magic = MAGIC()
    value = magic.estimate(seq, n_bootstrap=200).value
    assert magic.last_blend[-1] < 0.01
    assert value == pytest.approx(mdp.value(target, GAMMA), rel=0.05)
