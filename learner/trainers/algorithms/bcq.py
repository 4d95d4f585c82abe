"""Discrete BCQ (Fujimoto et al., 2019) on Double DQN.

Offline RL must not trust values of actions the logger rarely took. BCQ fits an imitation model
of the logger beside the Q-network and lets the target, and the served policy, pick only
actions whose imitated probability is at least ``bcq_threshold`` times the most likely one's.
"""

from __future__ import annotations

import torch
from torch import nn

from learner.trainers.algorithms.dqn import DoubleDQN
from learner.trainers.batches import MinibatchSource
from learner.trainers.mlp_stack import MLPStack
from learner.trainers.objectives import softmax_cross_entropy

__all__ = ["BCQ"]


class BCQ(DoubleDQN):
    """Double DQN whose next actions are filtered by an imitation model of the logger; the
    imitation model's cross-entropy is the regularizer."""

    name = "bcq"

    def prepare(
        self, q: MLPStack, batches: MinibatchSource, generator: torch.Generator
    ) -> list[MLPStack]:
        super().prepare(q, batches, generator)
        self.imitator = MLPStack(
            q.in_features, q.out_features, q.hidden_sizes, q.members, generator=generator
        )
        return [self.imitator]

    def next_allowed(self, s2: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
        allowed2 = super().next_allowed(s2, rows)
        logits2 = self.imitator.forward(s2)
        if allowed2 is not None:
            logits2 = logits2.masked_fill(~allowed2, float("-inf"))
        p2 = torch.softmax(logits2, 2)
        keep = p2 >= self.settings.bcq_threshold * p2.max(2, keepdim=True).values
        return keep if allowed2 is None else allowed2 & keep

    def regularizer(
        self,
        q_all: torch.Tensor,
        s: torch.Tensor,
        a: torch.Tensor,
        rows: torch.Tensor,
        d_q: torch.Tensor,
    ) -> torch.Tensor:
        logits = self.imitator.forward(s, keep=True)
        if not self.batches.all_possible:
            logits = logits + rows[..., self.batches.inf_cols]
        d_logits = torch.zeros_like(logits)
        loss = softmax_cross_entropy(logits, a, 1.0, d_logits)
        self.imitator.backward(d_logits)
        return loss

    def served_imitator(self, n_actions: int) -> tuple[nn.Module, float]:
        return self.imitator.to_module(), self.settings.bcq_threshold
