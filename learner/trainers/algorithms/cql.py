"""Discrete CQL (Kumar et al., 2020) on Double DQN.

Offline RL must not trust values of actions the logger rarely took (extrapolation error). CQL's
regularizer, ``cql_alpha`` times ``logsumexp_a Q(s, a) - Q(s, a_logged)``, pushes down the
values of actions the logger did not take, pulling Q toward the logged policy's values.
"""

from __future__ import annotations

import torch

from learner.trainers.algorithms.dqn import DoubleDQN
from learner.trainers.objectives import softmax_cross_entropy

__all__ = ["CQL"]


class CQL(DoubleDQN):
    """Double DQN plus the conservative regularizer (none when ``cql_alpha`` is 0)."""

    name = "cql"

    def regularizer(
        self,
        q_all: torch.Tensor,
        s: torch.Tensor,
        a: torch.Tensor,
        rows: torch.Tensor,
        d_q: torch.Tensor,
    ) -> torch.Tensor:
        alpha = self.settings.cql_alpha
        if alpha <= 0.0:
            return self._zero
        masked = q_all if self.batches.all_possible else q_all + rows[..., self.batches.inf_cols]
        return softmax_cross_entropy(masked, a, alpha, d_q)
