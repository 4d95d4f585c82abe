"""The one-sided 'candidate is worse' test and the steps rule."""

from __future__ import annotations

import numpy as np
import pytest

from services.rollout.evidence import compare_returns
from services.rollout.plan import parse_steps


def _sample(mean, n, seed, std=2.0):
    return np.random.default_rng(seed).normal(mean, std, n).tolist()


def test_equal_policies_are_rarely_called_worse():
    calls = [
        compare_returns("c", _sample(10, 50, s), "i", _sample(10, 50, 1000 + s), alpha=0.05).worse
        for s in range(400)
    ]
    rate = sum(calls) / len(calls)
    assert rate < 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(calls))  # about alpha, not more


def test_a_clearly_worse_candidate_is_called_worse_with_a_small_p_value():
    result = compare_returns("c", _sample(8, 60, 1), "i", _sample(10, 60, 2), alpha=0.05)
    assert result.worse and result.p_value < 0.05 and result.statistic < 0


def test_a_moderately_worse_candidate_is_called_worse_in_at_least_80_percent_of_trials():
    # 100 episodes a side, std 2: the standard error of the difference is 2 * sqrt(2 / 100)
    # = 0.283. A drop of 0.83 is 2.93 standard errors, so the one-sided test at alpha 0.05
    # (critical z -1.645) calls it worse with probability Phi(2.93 - 1.645) = 0.90.
    trials = 400
    calls = [
        compare_returns(
            "c", _sample(9.17, 100, s), "i", _sample(10.0, 100, 5000 + s), alpha=0.05
        ).worse
        for s in range(trials)
    ]
    power = sum(calls) / trials
    assert power >= 0.8, power  # 0.9 expected; 0.8 is 6.7 binomial standard errors below


def test_the_tolerance_forgives_a_small_relative_drop():
    cand, inc = _sample(9.7, 400, 3, std=0.5), _sample(10.0, 400, 4, std=0.5)
    assert compare_returns("c", cand, "i", inc, alpha=0.05).worse
    assert not compare_returns("c", cand, "i", inc, alpha=0.05, tolerance=0.05).worse


def test_the_evidence_reports_counts_means_and_sample_std():
    result = compare_returns("c", [1.0, 3.0], "i", [2.0, 2.0, 5.0], alpha=0.05)
    assert (result.candidate.episodes, result.candidate.mean) == (2, 2.0)
    assert result.candidate.std == pytest.approx(np.std([1.0, 3.0], ddof=1))
    assert result.incumbent.mean == 3.0


def test_fewer_than_two_episodes_give_no_test():
    result = compare_returns("c", [1.0], "i", [2.0, 3.0], alpha=0.05)
    assert result.p_value is None and not result.worse


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("5,3,100", "strictly increasing"),
        ("5,25,50", "must end in 100"),
        ("0,100", "(0, 100]"),
        ("5,150", "(0, 100]"),
        ("100", "at least one step below 100"),
        ("five,100", "comma-separated percentages"),
    ],
)
def test_bad_steps_name_the_rule(text, rule):
    with pytest.raises(ValueError, match=rf"{__import__('re').escape(rule)}"):
        parse_steps(text)


def test_steps_are_percentages_turned_into_fractions():
    assert parse_steps("5,25,50,100") == (0.05, 0.25, 0.5, 1.0)
