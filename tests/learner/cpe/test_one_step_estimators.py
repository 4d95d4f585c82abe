"""Each one-step estimator against its value computed by hand on four decisions.

The data (two actions)::

    decision  action  reward  propensity  target pi     reward_hat q
    0         0       1       0.5         [0.25, 0.75]  [0.5, 0.0]
    1         1       0       0.5         [0.5,  0.5 ]  [0.5, 0.5]
    2         0       2       0.8         [0.4,  0.6 ]  [2.0, 1.0]
    3         1       1       0.5         [0.5,  0.5 ]  [0.0, 1.0]

Importance weights w = pi(a)/mu(a): 0.25/0.5 = 0.5, 0.5/0.5 = 1, 0.4/0.8 = 0.5, 0.5/0.5 = 1;
sum w = 3.  w * r = 0.5, 0, 1, 1 (sum 2.5).
q(x, pi) = 0.25*0.5 = 0.125, 0.5*0.5+0.5*0.5 = 0.5, 0.4*2+0.6*1 = 1.4, 0.5*1 = 0.5 (sum 2.525).
Residuals r - q(x, a): 1-0.5 = 0.5, 0-0.5 = -0.5, 2-2 = 0, 1-1 = 0;  w * residual: 0.25, -0.5,
0, 0 (sum -0.25).  The logged value is the mean reward 4/4 = 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe.inputs import BanditInput
from learner.cpe.logged_value import logged_policy_value
from learner.cpe.one_step import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityScoring,
    SelfNormalizedDoublyRobust,
    SelfNormalizedIPS,
    SwitchDoublyRobust,
)


@pytest.fixture
def tiny() -> BanditInput:
    return BanditInput(
        rewards=np.array([1.0, 0.0, 2.0, 1.0]),
        actions=np.array([0, 1, 0, 1]),
        propensities=np.array([0.5, 0.5, 0.8, 0.5]),
        target_probs=np.array([[0.25, 0.75], [0.5, 0.5], [0.4, 0.6], [0.5, 0.5]]),
        possible_mask=np.ones((4, 2), bool),
        reward_hat=np.array([[0.5, 0.0], [0.5, 0.5], [2.0, 1.0], [0.0, 1.0]]),
    )


def test_ips_is_the_mean_weighted_reward(tiny):
    # 2.5 / 4
    assert InverseProbabilityScoring().estimate(tiny).value == pytest.approx(0.625)


def test_snips_divides_by_the_sum_of_weights(tiny):
    # 2.5 / 3
    assert SelfNormalizedIPS().estimate(tiny).value == pytest.approx(2.5 / 3)


def test_dm_is_the_mean_model_value_of_the_target(tiny):
    # 2.525 / 4
    assert DirectMethod().estimate(tiny).value == pytest.approx(0.63125)


def test_dr_adds_the_weighted_residuals_to_dm(tiny):
    # (2.525 - 0.25) / 4
    assert DoublyRobust().estimate(tiny).value == pytest.approx(0.56875)


def test_sndr_self_normalizes_the_correction(tiny):
    # 2.525 / 4 + (-0.25) / 3
    assert SelfNormalizedDoublyRobust().estimate(tiny).value == pytest.approx(0.63125 - 0.25 / 3)


def test_switch_dr_drops_the_correction_where_the_weight_exceeds_tau(tiny):
    # tau = 0.75 keeps decisions 0 and 2 (w = 0.5): (2.525 + 0.25 + 0) / 4
    assert SwitchDoublyRobust(tau=0.75).estimate(tiny).value == pytest.approx(0.69375)


def test_switch_dr_with_a_large_tau_is_dr(tiny):
    switch = SwitchDoublyRobust(tau=1e9).estimate(tiny).value
    assert switch == pytest.approx(DoublyRobust().estimate(tiny).value)


def test_normalized_value_divides_by_the_logged_mean_reward(tiny):
    assert logged_policy_value(tiny).value == pytest.approx(1.0)
    assert InverseProbabilityScoring().estimate(tiny).normalized == pytest.approx(0.625 / 1.0)


def test_interval_brackets_the_estimate_and_is_reproducible(tiny):
    first = DoublyRobust().estimate(tiny, n_bootstrap=200, seed=3)
    again = DoublyRobust().estimate(tiny, n_bootstrap=200, seed=3)
    assert first.ci_low <= first.value <= first.ci_high
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)


def test_model_based_estimators_need_a_reward_model(tiny):
    no_model = BanditInput(
        rewards=tiny.rewards,
        actions=tiny.actions,
        propensities=tiny.propensities,
        target_probs=tiny.target_probs,
        possible_mask=tiny.possible_mask,
    )
    with pytest.raises(ValueError, match="reward_hat"):
        DoublyRobust().estimate(no_model)
