"""One-step estimators on a synthetic contextual bandit whose true values are known exactly.

The contexts come from a finite set with known probabilities, so a policy's true value is a
finite sum (:meth:`Bandit.value`), not a simulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe import (
    BanditInput,
    DirectMethod,
    DoublyRobust,
    InverseProbabilityScoring,
    SelfNormalizedIPS,
    cross_fitted_reward_hat,
)
from tests.learner.cpe.synthetic import Bandit

SEEDS = range(50)


def _input(bandit: Bandit, target: np.ndarray, n: int, seed: int) -> BanditInput:
    data, ctx = bandit.logged(n, seed)
    reward_hat = cross_fitted_reward_hat(
        data.states, data.actions, data.rewards, data.n_actions, seed=seed
    )
    return BanditInput.from_logged(data, target[ctx], reward_hat)


@pytest.fixture(scope="module")
def coverage() -> dict[str, float]:
    """Share of 50 logged data sets whose 95% interval contains the true value."""
    bandit = Bandit.make(seed=1, linear=True)
    target = bandit.policy_toward(bandit.q, temperature=1.0)
    truth = bandit.value(target)
    assert abs(truth - bandit.value(bandit.logger)) > 0.1, "target must differ from the logger"
    hits = {"ips": 0, "snips": 0, "dr": 0}
    estimators = [InverseProbabilityScoring(), SelfNormalizedIPS(), DoublyRobust()]
    for seed in SEEDS:
        data = _input(bandit, target, 2000, 1000 + seed)
        for est in estimators:
            e = est.estimate(data, n_bootstrap=300, alpha=0.05, seed=seed)
            hits[est.name] += e.ci_low <= truth <= e.ci_high
    return {name: count / len(SEEDS) for name, count in hits.items()}


@pytest.mark.parametrize("name", ["ips", "snips", "dr"])
def test_interval_covers_the_true_value_in_at_least_90_percent_of_50_seeds(coverage, name):
    assert coverage[name] >= 0.9, coverage


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
