"""Inputs: bad logged data is refused with the field named; episodes are padded correctly."""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe.inputs import BanditInput, SequentialInput
from tests.learner.cpe.synthetic import logged_data


def _args(**over):
    args = {
        "rewards": np.array([1.0, 0.0]),
        "actions": np.array([0, 1]),
        "propensities": np.array([0.5, 0.5]),
        "target_probs": np.array([[0.5, 0.5], [0.5, 0.5]]),
        "possible_mask": np.ones((2, 2), bool),
    }
    args.update(over)
    return args


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, np.nan])
def test_a_propensity_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match=r"propensities: .*\(0, 1\]"):
        BanditInput(**_args(propensities=np.array([0.5, bad])))


def test_a_shape_mismatch_names_the_field():
    with pytest.raises(ValueError, match="possible_mask: shape"):
        BanditInput(**_args(possible_mask=np.ones((2, 3), bool)))


def test_an_action_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"actions: indices must be in \[0, 2\)"):
        BanditInput(**_args(actions=np.array([0, 2])))


def test_nan_target_probabilities_are_accepted_so_the_gate_can_reject_them():
    data = BanditInput(**_args(target_probs=np.full((2, 2), np.nan)))
    assert np.isnan(data.weights).all()


def test_from_logged_pads_episodes_and_keeps_weights_constant_after_the_end():
    # Episode 0 has three decisions, episode 1 one.
    data = logged_data(
        episode=np.array([0, 0, 0, 1]),
        states=np.zeros((4, 1)),
        actions=np.array([0, 1, 0, 1]),
        rewards=np.array([1.0, 2.0, 3.0, 4.0]),
        propensities=np.full(4, 0.5),
        terminals=np.array([False, False, True, True]),
        n_actions=2,
    )
    target = np.tile([0.25, 0.75], (4, 1))
    seq = SequentialInput.from_logged(data, target, gamma=0.9)
    assert seq.valid.tolist() == [[True, True, True], [True, False, False]]
    assert seq.rewards.tolist() == [[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]]
    assert seq.terminal.tolist() == [[False, False, True], [True, False, False]]
    # Episode 1: ratio 0.75/0.5 = 1.5 at step 0, then 1 (absorbing).
    assert seq.cumulative_weights[1].tolist() == [1.5, 1.5, 1.5]
    assert seq.logged_probs is None


def test_episodes_must_be_contiguous():
    data = logged_data(
        episode=np.array([0, 1, 0]),
        states=np.zeros((3, 1)),
        actions=np.array([0, 1, 0]),
        rewards=np.ones(3),
        propensities=np.full(3, 0.5),
        terminals=np.array([False, True, True]),
        n_actions=2,
    )
    with pytest.raises(ValueError, match="episode_ids: rows of an episode must be contiguous"):
        SequentialInput.from_logged(data, np.full((3, 2), 0.5), gamma=0.9)
