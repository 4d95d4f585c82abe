"""Offline Double DQN: the sequential trainer the regularized algorithms (CQL, BCQ) build on.

Targets are Double DQN's (the online network picks the next action, the target network values
it) among the next decision's possible actions, clipped to the returns the logged rewards allow
(``clip_targets``): on offline data nothing corrects an extrapolated value by trying it, so a
value beyond any possible return must not be bootstrapped on. The loss is Huber's, so that large
TD errors (early training, rare transitions) cannot dominate a step.
"""

from __future__ import annotations

import numpy as np
import torch

from learner.data.logged import LoggedData
from learner.trainers.algorithms.base import Algorithm
from learner.trainers.batches import DISC, MinibatchSource
from learner.trainers.config import TrainerSettings
from learner.trainers.mlp_stack import MLPStack
from learner.trainers.objectives import huber_td

__all__ = ["DoubleDQN"]


class DoubleDQN(Algorithm):
    """Double DQN with a target network (hard updates every ``target_update_interval`` steps,
    or soft ones at rate ``tau``)."""

    name = "dqn"

    def __init__(self, settings: TrainerSettings) -> None:
        super().__init__(settings)
        self._horizon = 1.0 / (1.0 - settings.gamma)
        self.batches: MinibatchSource
        self.target: MLPStack  # the target network
        self.y_low = self.y_high = 0.0

    def usable_rows(self, data: LoggedData) -> np.ndarray:
        """Rows of a truncated episode's end (no next state, not terminal) have no known target
        and are left out."""
        has_next = data.has_next & data.next_possible_mask.any(axis=1)
        return np.flatnonzero(data.terminals | has_next)

    @property
    def discount(self) -> float:
        return self.settings.gamma

    @property
    def horizon(self) -> float:
        return self._horizon

    def prepare(
        self, q: MLPStack, batches: MinibatchSource, generator: torch.Generator
    ) -> list[MLPStack]:
        self.batches = batches
        self.target = q.clone()
        self.y_low = min(0.0, float(batches.rewards.min())) * self._horizon
        self.y_high = max(0.0, float(batches.rewards.max())) * self._horizon
        return []

    def next_allowed(self, s2: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
        """Which next actions the target may pick (None: all of them)."""
        if self.batches.all_possible:
            return None
        return rows[..., self.batches.next_cols] > 0.5

    def targets(
        self, q: MLPStack, idx: torch.Tensor, rows: torch.Tensor, r: torch.Tensor
    ) -> torch.Tensor:
        s2 = self.batches.s2[idx]
        q2 = q.forward(s2)
        allowed2 = self.next_allowed(s2, rows)
        if allowed2 is not None:
            q2 = q2.masked_fill(~allowed2, float("-inf"))
        a2 = q2.argmax(2, keepdim=True)  # Double DQN: online argmax, target value
        y = r + rows[..., DISC] * self.target.forward(s2).gather(2, a2).squeeze(2)
        if self.settings.clip_targets:
            y = y.clamp_(self.y_low, self.y_high)
        return y

    def value_loss(
        self, q_all: torch.Tensor, a: torch.Tensor, y: torch.Tensor, d_q: torch.Tensor
    ) -> torch.Tensor:
        return huber_td(q_all, a, y, self.settings.huber_delta, d_q)

    def after_step(self, step: int, q: MLPStack) -> None:
        if self.settings.target_update == "soft":
            self.target.params.lerp_(q.params, self.settings.tau)
        elif step % self.settings.target_update_interval == 0:
            self.target.copy_from(q)
