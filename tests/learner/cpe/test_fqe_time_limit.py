"""FQE on logs with a time limit: the value up to the limit, not beyond it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner.cpe.config import FqeSettings
from learner.cpe.fqe import FittedQEvaluation
from learner.cpe.fqe_fit import regression_loss
from learner.cpe.fqe_model import time_limited_q
from learner.cpe.horizon import detect_time_limit, remaining_discount
from learner.cpe.inputs import SequentialInput
from tests.learner.cpe.chain_mdp import RiverChain

GAMMA = 0.95
LIMIT = 12
FQE = FqeSettings(hidden_sizes=[32], n_steps=1500, target_update_every=15, members=4)


def _ends(lengths: list[int], terminal_last: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    valid = np.arange(max(lengths))[None, :] < np.array(lengths)[:, None]
    terminal = np.zeros_like(valid)
    for e, (n, ended) in enumerate(zip(lengths, terminal_last, strict=True)):
        terminal[e, n - 1] = ended
    return valid, terminal


def test_several_episodes_cut_at_the_longest_length_are_a_time_limit():
    valid, terminal = _ends([3, 5, 5, 2], [True, False, False, True])
    assert detect_time_limit(valid, terminal) == 5


@pytest.mark.parametrize(
    ("lengths", "terminal_last"),
    [
        ([3, 5, 4, 2], [False, False, False, True]),  # cut at varied lengths: log cuts
        ([3, 5, 5, 2], [True, False, True, True]),  # only one cut at the longest length
        ([3, 5, 5, 2], [True, True, True, True]),  # every episode ended by the environment
    ],
)
def test_cuts_that_are_not_at_one_longest_length_are_no_time_limit(lengths, terminal_last):
    valid, terminal = _ends(lengths, terminal_last)
    assert detect_time_limit(valid, terminal) is None


@pytest.fixture(scope="module")
def limited_chain() -> tuple[RiverChain, SequentialInput, np.ndarray]:
    """300 episodes of the chain cut at 12 steps (rarely ended before: p_end 0.02)."""
    mdp = RiverChain.make(p_end=0.02, noise=0.2, time_limit=LIMIT)
    data, state = mdp.logged(300, seed=1)
    target = mdp.going_right(mdp.n_states, 0.9)
    return mdp, SequentialInput.from_logged(data, target[state], GAMMA), target


def test_fqe_estimates_the_value_up_to_the_time_limit(limited_chain):
    mdp, data, target = limited_chain
    truth = mdp.value(target, GAMMA)
    without_limit = RiverChain.make(p_end=0.02).value(target, GAMMA)
    assert without_limit > 1.5 * truth  # the two values this test tells apart
    fqe = FittedQEvaluation(FQE, seed=0)
    estimate = fqe.estimate(data, n_bootstrap=100)
    assert fqe.model is not None and fqe.model.time_limit == LIMIT
    assert estimate.ci_low <= truth <= estimate.ci_high
    assert abs(estimate.value - truth) < abs(without_limit - truth) / 2


def test_without_time_limit_detection_fqe_estimates_the_unlimited_value(limited_chain):
    mdp, data, target = limited_chain
    truth = mdp.value(target, GAMMA)
    fqe = FittedQEvaluation(FQE.model_copy(update={"detect_time_limit": False}), seed=0)
    estimate = fqe.estimate(data, n_bootstrap=100)
    assert fqe.model is not None and fqe.model.time_limit is None
    assert estimate.ci_low > truth  # the bias the detection removes


def test_a_model_that_counts_time_needs_each_states_position(limited_chain):
    _, data, _ = limited_chain
    fqe = FittedQEvaluation(FQE.model_copy(update={"n_steps": 30, "members": 1}), seed=0)
    fqe.estimate(data, n_bootstrap=10)
    assert fqe.model is not None
    with pytest.raises(ValueError, match="steps: this FQE model counts time"):
        fqe.model.q_values(np.eye(6))


def test_with_a_time_limit_q_is_the_untimed_head_less_the_discounted_remainder():
    # Two actions: heads U = (5, 7) and W = (2, 4), 3 steps before a limit at 10, gamma 0.5.
    remaining = torch.as_tensor(remaining_discount(np.array([7]), 10, 0.5))
    out = torch.tensor([[[5.0, 7.0, 2.0, 4.0]]])
    q = time_limited_q(out, remaining, n_actions=2)
    assert q.tolist() == [[[5.0 - 0.125 * 2.0, 7.0 - 0.125 * 4.0]]]


def test_the_two_head_regression_gradient_is_autograds():
    generator = torch.Generator().manual_seed(0)
    out = torch.randn(3, 8, 6, generator=generator)  # 3 members, 8 rows, 2 heads x 3 actions
    actions = torch.randint(0, 3, (3, 8), generator=generator)
    targets = torch.randn(3, 8, generator=generator)
    remaining = torch.rand(3, 8, generator=generator)
    loss, grad = regression_loss(out, actions, targets, remaining, n_actions=3)
    leaf = out.clone().requires_grad_(True)
    q = time_limited_q(leaf, remaining, 3).gather(2, actions.unsqueeze(2)).squeeze(2)
    expected = (q - targets).square().sum() / 8
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert leaf.grad is not None
    torch.testing.assert_close(grad, leaf.grad)
