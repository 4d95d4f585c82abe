"""evaluate_policy: picks the problem shape, runs the configured estimators, never crashes on
a broken candidate."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from learner.cpe.config import CpeSettings, FqeSettings
from learner.cpe.evaluate import evaluate_policy
from tests.learner.cpe.synthetic import Bandit, ChainMdp, softmax

SMALL_FQE = FqeSettings(n_steps=300, target_update_every=50, hidden_sizes=[16])


def test_one_step_data_runs_the_one_step_estimators():
    bandit = Bandit.make(seed=2)
    data, ctx = bandit.logged(500, seed=0)
    result = evaluate_policy(data, bandit.logger[ctx], CpeSettings(n_bootstrap=50))
    assert result.kind == "one_step"
    assert list(result.estimates) == ["ips", "snips", "dm", "dr", "sndr", "switch_dr"]
    # Evaluating the logger itself: every weight is 1, IPS is the logged mean reward.
    assert result.estimates["ips"].value == pytest.approx(result.logged_value.value)
    assert result.estimates["ips"].normalized == pytest.approx(1.0)


def test_sequential_data_runs_the_sequential_estimators_deterministically():
    mdp = ChainMdp.make(seed=3)
    data, state = mdp.logged(300, seed=0)
    target = softmax(mdp.r)[state]
    settings = CpeSettings(n_bootstrap=50, fqe=SMALL_FQE)
    first = evaluate_policy(data, target, settings)
    again = evaluate_policy(data, target, settings)
    assert first.kind == "sequential"
    assert list(first.estimates) == ["pdis", "wpdis", "seq_dr", "wdr", "magic", "fqe"]
    assert {k: e.value for k, e in first.estimates.items()} == {
        k: e.value for k, e in again.estimates.items()
    }


def test_a_nan_candidate_gives_nan_estimates_with_warnings_not_an_exception():
    mdp = ChainMdp.make(seed=3)
    data, state = mdp.logged(100, seed=0)
    target = softmax(mdp.r)[state]
    target[5] = np.nan
    result = evaluate_policy(data, target, CpeSettings(n_bootstrap=20, fqe=SMALL_FQE))
    assert all(not e.is_finite for e in result.estimates.values())
    assert all(e.warnings for e in result.estimates.values())
    assert result.diagnostics.broken_share > 0


def test_target_probabilities_of_the_wrong_shape_are_refused():
    bandit = Bandit.make(seed=2)
    data, _ = bandit.logged(10, seed=0)
    with pytest.raises(ValueError, match=r"target_probs: shape \(10, 2\), expected \(10, 3\)"):
        evaluate_policy(data, np.full((10, 2), 0.5))


def test_settings_refuse_an_unknown_estimator_or_one_of_the_wrong_kind():
    with pytest.raises(ValidationError, match="unknown estimator 'xyz'"):
        CpeSettings(one_step_estimators=["xyz"])
    with pytest.raises(ValidationError, match="'wdr' is a sequential estimator"):
        CpeSettings(one_step_estimators=["wdr"])
