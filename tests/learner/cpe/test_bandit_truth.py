"""One-step estimators on a synthetic contextual bandit whose true values are known exactly.

The contexts come from a finite set with known probabilities, so a policy's true value is a
finite sum (:meth:`Bandit.value`), not a simulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe.inputs import BanditInput
from learner.cpe.one_step import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityScoring,
    SelfNormalizedIPS,
)
from learner.cpe.reward_model import cross_fitted_reward_hat
from tests.learner.cpe.synthetic import Bandit

SEEDS = range(50)


def _input(bandit: Bandit, target: np.ndarray, n: int, seed: int) -> BanditInput:
    data, ctx = bandit.logged(n, seed)
    reward_hat = cross_fitted_reward_hat(
        data.states, data.actions, data.rewards, data.n_actions, seed=seed
    )
    return BanditInput.from_logged(data, target[ctx], reward_hat)


@pytest.fixture(scope="module")
def intervals() -> dict[str, dict[str, np.ndarray]]:
    """Per estimator, over 50 logged data sets: the value, the 95% interval, the true value."""
    bandit = Bandit.make(seed=1, linear=True)
    target = bandit.policy_toward(bandit.q, temperature=1.0)
    truth = bandit.value(target)
    assert abs(truth - bandit.value(bandit.logger)) > 0.1, "target must differ from the logger"
    rows: dict[str, list[tuple[float, float, float]]] = {"ips": [], "snips": [], "dr": []}
    estimators = [InverseProbabilityScoring(), SelfNormalizedIPS(), DoublyRobust()]
    for seed in SEEDS:
        data = _input(bandit, target, 2000, 1000 + seed)
        for est in estimators:
            e = est.estimate(data, n_bootstrap=300, alpha=0.05, seed=seed)
            rows[est.name].append((e.value, e.ci_low, e.ci_high))
    out = {}
    for name, values in rows.items():
        value, low, high = np.array(values).T
        out[name] = {"value": value, "low": low, "high": high, "truth": truth}
    return out


@pytest.mark.parametrize("name", ["ips", "snips", "dr"])
def test_interval_covers_the_true_value_in_at_least_90_percent_of_50_seeds(intervals, name):
    runs = intervals[name]
    coverage = np.mean((runs["low"] <= runs["truth"]) & (runs["truth"] <= runs["high"]))
    assert coverage >= 0.9, coverage


@pytest.mark.parametrize("name", ["ips", "snips", "dr"])
def test_interval_is_as_wide_as_the_estimators_spread_across_seeds_not_wider(intervals, name):
    # A 95% interval spans about 2 x 1.96 standard errors; the spread of the value over 50
    # independent data sets measures that standard error. An interval that covers by being
    # wide (or infinite) fails here; one too narrow to cover fails the test above.
    runs = intervals[name]
    expected = 2 * 1.96 * np.std(runs["value"], ddof=1)
    widths = runs["high"] - runs["low"]
    assert np.all(np.isfinite(widths))
    assert 0.6 * expected < np.mean(widths) < 1.5 * expected, (np.mean(widths), expected)


def test_dm_is_biased_when_its_model_is_misspecified_and_dr_is_not():
    # Rewards are nonlinear in the context; the reward model is linear.
    bandit = Bandit.make(seed=1, linear=False)
    target = bandit.policy_toward(bandit.q, temperature=0.5)
    truth = bandit.value(target)
    errors: dict[str, list[float]] = {"dm": [], "dr": []}
    for seed in range(20):
        data = _input(bandit, target, 1000, seed)
        errors["dm"].append(DirectMethod().estimate(data, n_bootstrap=0).value - truth)
        errors["dr"].append(DoublyRobust().estimate(data, n_bootstrap=0).value - truth)
    dm, dr = np.array(errors["dm"]), np.array(errors["dr"])
    dm_se, dr_se = dm.std(ddof=1) / np.sqrt(len(dm)), dr.std(ddof=1) / np.sqrt(len(dr))
    # DM's mean error is many standard errors away from zero; DR's is not.
    assert abs(dm.mean()) > 5 * dm_se
    assert abs(dr.mean()) < 3 * dr_se
    assert abs(dr.mean()) < abs(dm.mean()) / 5
