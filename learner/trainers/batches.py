"""The training data as tensors, packed so that a minibatch is three index gathers.

The whole data set is normalized once into float32 tensors; every step then gathers its rows by
index. Which rows are usable and how much the next state's value counts is the algorithm's call
(:class:`~learner.trainers.algorithms.Algorithm`), the packing is shared by all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from learner.data.logged import LoggedData
from learner.preprocessing.normalizer import Normalizer

__all__ = ["DISC", "A", "MinibatchSource", "R", "TrainingTensors", "training_tensors"]

R, DISC, A = 0, 1, 2  # columns of MinibatchSource.small; then possible_inf, then next_possible


@dataclass
class TrainingTensors:
    """The usable rows, one tensor per column: normalized states ``s`` and next states ``s2``,
    logged actions ``a``, rewards ``r``, the discount of the next state's value ``disc`` (0 when
    there is none), ``-inf`` on impossible actions ``possible_inf``, and ``next_possible``."""

    s: torch.Tensor
    a: torch.Tensor
    r: torch.Tensor
    s2: torch.Tensor
    disc: torch.Tensor
    possible_inf: torch.Tensor
    next_possible: torch.Tensor


def training_tensors(
    data: LoggedData, normalizer: Normalizer, rows: np.ndarray, discount: float
) -> TrainingTensors:
    """``rows`` of ``data`` as float32 tensors; ``discount`` weighs the next state's value
    (0 for a one-step model, gamma for a sequential one)."""
    s = torch.from_numpy(normalizer.transform(data.states[rows]))
    s2 = torch.from_numpy(normalizer.transform(data.next_states[rows]))
    pm = torch.from_numpy(data.possible_mask[rows])
    has = torch.from_numpy((data.has_next[rows] & ~data.terminals[rows]).astype(np.float32))
    return TrainingTensors(
        s=s.contiguous(),
        a=torch.from_numpy(data.actions[rows]).long(),
        r=torch.from_numpy(data.rewards[rows].astype(np.float32)),
        s2=s2.contiguous(),
        disc=discount * has,
        possible_inf=torch.zeros(pm.shape).masked_fill(~pm, float("-inf")),
        next_possible=torch.from_numpy(data.next_possible_mask[rows]),
    )


@dataclass
class MinibatchSource:
    """Per step one gather of states, one of next states and one of a float table
    ``small = [r, disc, a, possible_inf..., next_possible...]`` instead of seven.

    ``all_possible``: every action is possible everywhere, so the masks are no-ops and are
    skipped. ``rewards`` is the unshuffled reward column (for the range of possible returns).
    """

    s: torch.Tensor
    s2: torch.Tensor
    small: torch.Tensor
    inf_cols: slice
    next_cols: slice
    all_possible: bool
    rewards: torch.Tensor

    @classmethod
    def of(cls, t: TrainingTensors) -> MinibatchSource:
        n_actions = t.possible_inf.shape[1]
        small = torch.cat(
            [
                t.r[:, None],
                t.disc[:, None],
                t.a[:, None].float(),
                t.possible_inf,
                t.next_possible.float(),
            ],
            dim=1,
        ).contiguous()
        # rows without a next decision (disc 0) ignore the next-action mask
        has_next = t.disc > 0
        all_possible = bool((t.possible_inf == 0).all()) and bool(t.next_possible[has_next].all())
        return cls(
            t.s,
            t.s2,
            small,
            slice(3, 3 + n_actions),
            slice(3 + n_actions, 3 + 2 * n_actions),
            all_possible,
            t.r,
        )

    @property
    def rows(self) -> int:
        return int(self.s.shape[0])
