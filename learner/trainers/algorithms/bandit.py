"""The bandit trainer: a reward model with one output per action.

For one-step data (every episode one decision) the value of an action is its mean reward, so the
"Q-network" is fitted by squared error on the logged action's reward, with no target network and
nothing bootstrapped; the policy ranks actions by the predicted reward.
"""

from __future__ import annotations

import numpy as np
import torch

from learner.data.logged import LoggedData
from learner.trainers.algorithms.base import Algorithm
from learner.trainers.mlp_stack import MLPStack
from learner.trainers.objectives import squared_error

__all__ = ["Bandit"]


class Bandit(Algorithm):
    """Squared error of the logged action's predicted reward against the reward."""

    name = "bandit"

    def usable_rows(self, data: LoggedData) -> np.ndarray:
        return np.arange(len(data))

    @property
    def discount(self) -> float:
        return 0.0

    @property
    def horizon(self) -> float:
        return 1.0

    def batch_size(self, rows: int) -> int:
        return min(self.settings.batch_size, rows)

    def notes(self, data: LoggedData) -> list[str]:
        if data.is_one_step:
            return []
        return ["bandit trainer on multi-step data: only immediate rewards are modelled"]

    def targets(
        self, q: MLPStack, idx: torch.Tensor, rows: torch.Tensor, r: torch.Tensor
    ) -> torch.Tensor:
        return r

    def value_loss(
        self, q_all: torch.Tensor, a: torch.Tensor, y: torch.Tensor, d_q: torch.Tensor
    ) -> torch.Tensor:
        return squared_error(q_all, a, y, d_q)
