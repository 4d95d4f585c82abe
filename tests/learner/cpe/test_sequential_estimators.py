"""Each sequential estimator against its value computed by hand on two short episodes.

gamma = 0.5, two actions. Episode 0 has two steps, episode 1 one step::

    episode step action reward mu   pi(.|s)      ratio  w_t   q_hat(s, .)  v_hat  q_hat(a)
    0       0    0      1      0.5  [0.8, 0.2]   1.6    1.6   [2, 1]       1.8    2
    0       1    1      2      0.5  [0.6, 0.4]   0.8    1.28  [1, 3]       1.8    3
    1       0    1      3      0.5  [0.8, 0.2]   0.4    0.4   [2, 4]       2.4    4

After its end episode 1 keeps w = 0.4 and earns 0 (absorbing state), so W_0 = 2.0, W_1 = 1.68.
"""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe.config import FqeSettings
from learner.cpe.fqe import FittedQEvaluation
from learner.cpe.inputs import SequentialInput
from learner.cpe.logged_value import logged_policy_value
from learner.cpe.sequential import (
    MAGIC,
    PerDecisionIS,
    SequentialDoublyRobust,
    WeightedDoublyRobust,
    WeightedPerDecisionIS,
)


@pytest.fixture
def two_episodes() -> SequentialInput:
    return SequentialInput(
        rewards=np.array([[1.0, 2.0], [3.0, 0.0]]),
        actions=np.array([[0, 1], [1, 0]]),
        propensities=np.array([[0.5, 0.5], [0.5, 1.0]]),
        target_probs=np.array([[[0.8, 0.2], [0.6, 0.4]], [[0.8, 0.2], [0.0, 0.0]]]),
        possible_mask=np.array([[[True, True], [True, True]], [[True, True], [False, False]]]),
        valid=np.array([[True, True], [True, False]]),
        gamma=0.5,
        terminal=np.array([[False, True], [True, False]]),
        q_hat=np.array([[[2.0, 1.0], [1.0, 3.0]], [[2.0, 4.0], [0.0, 0.0]]]),
    )


def test_per_decision_is(two_episodes):
    # episode 0: 1.6*1 + 0.5*1.28*2 = 2.88; episode 1: 0.4*3 = 1.2; mean = 2.04
    assert PerDecisionIS().estimate(two_episodes).value == pytest.approx(2.04)


def test_weighted_per_decision_is(two_episodes):
    # t=0: (1.6*1 + 0.4*3) / 2.0 = 1.4;  t=1: (1.28*2 + 0.4*0) / 1.68;  1.4 + 0.5 * 2.56/1.68
    expected = 1.4 + 0.5 * 2.56 / 1.68
    assert WeightedPerDecisionIS().estimate(two_episodes).value == pytest.approx(expected)


def test_sequential_doubly_robust(two_episodes):
    # episode 0: t=0: 1.6*(1-2) + 1*1.8 = 0.2; t=1: 1.28*(2-3) + 1.6*1.8 = 1.6
    #            -> 0.2 + 0.5*1.6 = 1.0
    # episode 1: t=0: 0.4*(3-4) + 1*2.4 = 2.0;  mean = 1.5
    assert SequentialDoublyRobust().estimate(two_episodes).value == pytest.approx(1.5)


def test_weighted_doubly_robust(two_episodes):
    # t=0: sum w(r-q) / W_0 + sum v / n = -2.0/2.0 + 4.2/2 = 1.1
    # t=1: -1.28/1.68 + (1.6*1.8)/W_0 = -1.28/1.68 + 2.88/2.0
    expected = 1.1 + 0.5 * (-1.28 / 1.68 + 2.88 / 2.0)
    assert WeightedDoublyRobust().estimate(two_episodes).value == pytest.approx(expected)


def test_logged_value_is_the_mean_discounted_return(two_episodes):
    # episode 0: 1 + 0.5*2 = 2; episode 1: 3; mean 2.5
    assert logged_policy_value(two_episodes).value == pytest.approx(2.5)


def test_magic_is_a_convex_blend_of_model_and_weighted_dr(two_episodes):
    # g(-1) = mean v_hat(s_0) = (1.8 + 2.4)/2 = 2.1; g(0) = 1.1 + 0.5 * 2.88/2.0 = 1.82;
    # g(1) = weighted DR. MAGIC's blend weights sum to 1 and its value lies between them.
    magic = MAGIC()
    value = magic.estimate(two_episodes, n_bootstrap=100).value
    wdr = WeightedDoublyRobust().estimate(two_episodes).value
    assert set(magic.last_blend) == {-1, 0, 1}
    assert sum(magic.last_blend.values()) == pytest.approx(1.0)
    assert min(2.1, 1.82, wdr) - 1e-9 <= value <= max(2.1, 1.82, wdr) + 1e-9


def test_magic_equals_every_partial_estimate_when_they_agree():
    # Two identical deterministic episodes, pi = mu, exact model: rewards 1 then 2, gamma 0.5.
    # v_hat(s_1) = 2, q_hat(s_0, .) = 1 + 0.5*2 = 2: every partial estimate is 1 + 0.5*2 = 2.
    one = {
        "rewards": [[1.0, 2.0]],
        "actions": [[0, 0]],
        "propensities": [[0.5, 0.5]],
        "target_probs": [[[0.5, 0.5], [0.5, 0.5]]],
        "q_hat": [[[2.0, 2.0], [2.0, 2.0]]],
    }
    data = SequentialInput(
        **{k: np.array(v * 2) for k, v in one.items()},
        possible_mask=np.ones((2, 2, 2), bool),
        valid=np.ones((2, 2), bool),
        gamma=0.5,
    )
    assert MAGIC().estimate(data, n_bootstrap=50).value == pytest.approx(2.0)


def _two_step_chain() -> SequentialInput:
    rng = np.random.default_rng(0)
    e = 200
    actions = rng.integers(0, 2, size=(e, 2))
    rewards = np.stack([np.where(actions[:, 0] == 0, 1.0, 0.0), actions[:, 1] * 2.0], axis=1)
    states = np.broadcast_to(np.eye(2, dtype=np.float32), (e, 2, 2)).copy()
    pi = np.broadcast_to(np.array([[0.9, 0.1], [0.2, 0.8]]), (e, 2, 2)).copy()
    return SequentialInput(
        rewards=rewards,
        actions=actions,
        propensities=np.full((e, 2), 0.5),
        target_probs=pi,
        possible_mask=np.ones((e, 2, 2), bool),
        valid=np.ones((e, 2), bool),
        gamma=0.9,
        terminal=np.tile([False, True], (e, 1)),
        states=states,
    )


def test_fqe_recovers_the_value_of_a_two_step_chain():
    # s0 --a--> s1 --a--> end. Rewards r(s0) = [1, 0], r(s1) = [0, 2]; gamma = 0.9.
    # pi(s0) = [0.9, 0.1], pi(s1) = [0.2, 0.8]: V(s1) = 0.8*2 = 1.6,
    # Q(s0) = [1 + 0.9*1.6, 0 + 0.9*1.6] = [2.44, 1.44], V(s0) = 0.9*2.44 + 0.1*1.44 = 2.34.
    data = _two_step_chain()
    settings = FqeSettings(
        n_steps=800, target_update_every=100, hidden_sizes=[16], learning_rate=3e-3
    )
    fqe = FittedQEvaluation(settings, seed=0)
    assert fqe.estimate(data, n_bootstrap=0).value == pytest.approx(2.34, abs=0.05)
    assert fqe.model.q_values(np.eye(2))[0] == pytest.approx([2.44, 1.44], abs=0.08)


def test_fqe_warns_when_too_few_backups_reach_the_start_states():
    # One Bellman backup cannot carry step 1's reward back to step 0.
    fqe = FittedQEvaluation(FqeSettings(n_steps=50, target_update_every=50), seed=0)
    warnings = fqe.estimate(_two_step_chain(), n_bootstrap=0).warnings
    assert any("only 1 Bellman backups" in w for w in warnings)


def test_fqe_does_not_treat_a_truncated_episode_as_ended():
    # Half the episodes are cut by the log after s0 (not terminal). Were the cut an ending,
    # Q(s0) would be pulled towards the immediate reward [1, 0]; it must stay [2.44, 1.44].
    full = _two_step_chain()
    valid = full.valid.copy()
    valid[:100, 1] = False
    data = SequentialInput(
        rewards=np.where(valid, full.rewards, 0.0),
        actions=full.actions,
        propensities=full.propensities,
        target_probs=full.target_probs,
        possible_mask=full.possible_mask,
        valid=valid,
        gamma=full.gamma,
        terminal=full.terminal & valid,
        states=full.states,
    )
    settings = FqeSettings(
        n_steps=800, target_update_every=100, hidden_sizes=[16], learning_rate=3e-3
    )
    fqe = FittedQEvaluation(settings, seed=0)
    fqe.estimate(data, n_bootstrap=0)
    assert fqe.model.q_values(np.eye(2))[0] == pytest.approx([2.44, 1.44], abs=0.08)
