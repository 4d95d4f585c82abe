"""Diagnostics: effective sample size, largest weight, support, broken models, in words."""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe.config import CpeSettings
from learner.cpe.diagnostics import diagnose, effective_sample_size
from learner.cpe.inputs import BanditInput


def _bandit(target, actions, propensities, logged_probs=None, possible=None) -> BanditInput:
    target = np.asarray(target, float)
    return BanditInput(
        rewards=np.ones(len(target)),
        actions=np.asarray(actions),
        propensities=np.asarray(propensities, float),
        target_probs=target,
        possible_mask=np.ones(target.shape, bool) if possible is None else np.asarray(possible),
        logged_probs=None if logged_probs is None else np.asarray(logged_probs, float),
    )


def test_effective_sample_size_is_kish():
    # (0.5 + 1 + 0.5 + 1)^2 / (0.25 + 1 + 0.25 + 1) = 9 / 2.5
    assert effective_sample_size(np.array([0.5, 1.0, 0.5, 1.0])) == pytest.approx(3.6)


def test_equal_weights_give_the_full_sample_and_no_warnings():
    data = _bandit([[0.5, 0.5]] * 200, [0, 1] * 100, [0.5] * 200)
    d = diagnose(data)
    assert d.effective_sample_size == pytest.approx(200)
    assert d.max_importance_weight == pytest.approx(1.0)
    assert d.unsupported_share == 0.0
    assert d.warnings == []


def test_few_effective_samples_are_reported_in_words():
    # One decision with weight 100, the others with weight ~0.
    target = [[1.0, 0.0]] + [[0.0001, 0.9999]] * 499
    data = _bandit(target, [0] * 500, [0.01] + [0.5] * 499)
    d = diagnose(data)
    assert d.effective_sample_size < 2
    assert d.max_importance_weight == pytest.approx(100.0)
    assert any(w.startswith("Only 1") and "of 500 decisions" in w for w in d.warnings)
    assert any("carries" in w and "importance weight" in w for w in d.warnings)


def test_mass_on_an_action_the_logged_distribution_excludes_is_unsupported():
    # Decision 0: the logger's distribution is [1, 0] and the candidate puts 0.3 on action 1.
    data = _bandit(
        [[0.7, 0.3], [0.5, 0.5]],
        [0, 1],
        [1.0, 0.5],
        logged_probs=[[1.0, 0.0], [0.5, 0.5]],
    )
    d = diagnose(data)
    assert d.unsupported_share == pytest.approx(0.5)
    assert d.unsupported_mass == pytest.approx(0.15)


def test_without_logged_distribution_a_propensity_of_one_means_a_deterministic_logger():
    data = _bandit([[0.9, 0.1], [0.9, 0.1]], [0, 1], [1.0, 0.6])
    # Decision 0: logger surely took action 0 only -> 0.1 on action 1 is unsupported.
    # Decision 1: p = 0.6 < 1 with two actions: the other action had 0.4 -> supported.
    assert diagnose(data).unsupported_share == pytest.approx(0.5)


def test_an_action_the_logger_never_took_anywhere_is_unsupported():
    data = _bandit([[0.4, 0.3, 0.3]] * 4, [0, 1, 0, 1], [0.5] * 4)
    d = diagnose(data, CpeSettings(warn_unsupported_share=0.01))
    assert d.unsupported_share == 1.0
    assert any("never takes" in w for w in d.warnings)


def test_mass_on_an_impossible_action_is_unsupported():
    # Every action is logged somewhere; in decision 1 action 2 is not possible, yet the
    # candidate gives it 1/3.
    possible = [[True, True, True], [True, True, False], [True, True, True]]
    data = _bandit([[1 / 3] * 3] * 3, [1, 0, 2], [0.5] * 3, possible=possible)
    assert diagnose(data).unsupported_share == pytest.approx(1 / 3)


def test_nan_probabilities_are_reported_as_a_broken_candidate():
    data = _bandit([[np.nan, np.nan], [0.5, 0.5]], [0, 1], [0.5, 0.5])
    d = diagnose(data)
    assert d.broken_share == pytest.approx(0.5)
    assert any(w.startswith("The candidate is broken") and "NaN" in w for w in d.warnings)


def test_probabilities_that_do_not_sum_to_one_are_reported():
    data = _bandit([[0.5, 0.2], [0.5, 0.5]], [0, 1], [0.5, 0.5])
    d = diagnose(data)
    assert d.broken_share == pytest.approx(0.5)
    assert any("do not sum to 1" in w for w in d.warnings)
