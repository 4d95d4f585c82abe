"""A fitted (bagged) FQE Q-model: its members, and their predictions on episodes.

Kept apart from the fit (:mod:`learner.cpe.fqe_fit`) and the estimator (:mod:`learner.cpe.fqe`):
what reads a Q-model (the DR family through :class:`SequentialInput`, the report) needs neither
the training loop nor the estimator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from learner.cpe.horizon import remaining_discount, with_step_position
from learner.cpe.inputs import SequentialInput
from learner.cpe.model_replicates import ModelReplicates
from learner.cpe.standardize import Standardizer
from learner.trainers.mlp_stack import MLPStack

__all__ = ["FqeModel", "time_limited_q"]

#: Rows per forward pass of all members: bounds the hidden activations (members x rows x width
#: floats) to some tens of MB on large evaluation sets.
_ROWS_PER_PASS = 16_384


def time_limited_q(out: torch.Tensor, remaining: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Q up to a time limit from the network's two heads ``(..., 2A)``: ``U - remaining * W``
    with ``remaining = gamma^(L - t)`` per row (:mod:`learner.cpe.horizon`)."""
    return out[..., :n_actions] - remaining.unsqueeze(-1) * out[..., n_actions:]


@dataclass
class FqeModel:
    """The target policy's Q-function as ``stack.members`` networks, with its training history.

    ``counts[b]`` is how often member ``b``'s episode resample drew each episode of the data it
    was fitted on (all ones for a single member fitted on the data as logged). The model's Q is
    the members' mean; each member alone is one bootstrap replicate of the fit. ``time_limit``:
    the logs' time limit when the fit found one (:mod:`learner.cpe.horizon`); the step's
    position is then one of the model's inputs, and the networks have two heads combined with
    the discount ``gamma`` of the fit (:func:`time_limited_q`).
    """

    stack: MLPStack
    standardizer: Standardizer
    n_actions: int
    counts: np.ndarray
    time_limit: int | None = None
    gamma: float = 1.0
    history: list[dict[str, float]] = field(default_factory=list)
    diverged: bool = False
    divergence_reason: str | None = None

    @property
    def members(self) -> int:
        return self.stack.members

    def member_q_values(self, states: np.ndarray, steps: np.ndarray | None = None) -> np.ndarray:
        """Each member's Q(s, .) for raw states ``(n, F)`` at episode positions ``steps`` (needed
        when the model has a time limit) -> ``(members, n, A)`` (all NaN if the fit diverged)."""
        if self.diverged:
            return np.full((self.members, len(states), self.n_actions), np.nan)
        if self.time_limit is not None:
            if steps is None:
                raise ValueError(
                    f"steps: this FQE model counts time (a {self.time_limit}-step limit in its "
                    "logs), so its Q-values need each state's position in its episode"
                )
            remaining = torch.as_tensor(remaining_discount(steps, self.time_limit, self.gamma))
            states = with_step_position(states, steps, self.time_limit)
        z = torch.as_tensor(self.standardizer.transform(states), dtype=torch.float32)
        out = np.empty((self.members, len(states), self.n_actions))
        with torch.no_grad():
            for start in range(0, len(states), _ROWS_PER_PASS):
                rows = z[start : start + _ROWS_PER_PASS]
                q = self.stack.forward(rows.expand(self.members, *rows.shape))
                if self.time_limit is not None:
                    q = time_limited_q(q, remaining[start : start + len(rows)], self.n_actions)
                out[:, start : start + len(rows)] = q.double().numpy()
        return out

    def q_values(self, states: np.ndarray, steps: np.ndarray | None = None) -> np.ndarray:
        """Q(s, .) of the bagged model (the members' mean) ``(n, F)`` -> ``(n, A)``."""
        q: np.ndarray = self.member_q_values(states, steps).mean(axis=0)
        return q

    def _member_q_hat(self, data: SequentialInput) -> np.ndarray:
        if data.states is None:
            raise ValueError("states: FQE needs the episodes' states")
        out = np.zeros((self.members, *data.valid.shape, self.n_actions))
        out[:, data.valid] = self.member_q_values(
            data.states[data.valid], np.nonzero(data.valid)[1]
        )
        return out

    def q_hat(self, data: SequentialInput) -> np.ndarray:
        """The bagged Q on every step of ``data``'s episodes ``(E, T, A)``, zero on padding."""
        q: np.ndarray = self._member_q_hat(data).mean(axis=0)
        return q

    def attach(self, data: SequentialInput) -> SequentialInput:
        """``data`` with this model's Q (the members' mean) and, when bagged, its members as
        replicates, so that every estimator built on it takes the model's uncertainty.

        The members are replicates only on the episodes they were fitted on: ``data`` must be
        that data (same number of episodes)."""
        members = self._member_q_hat(data)
        if self.members < 2:
            return data.with_q_hat(members[0])
        if self.counts.shape != (self.members, data.n):
            raise ValueError(
                f"data: {data.n} episodes, but the bagged FQE model was fitted on "
                f"{self.counts.shape[1]}: its members are replicates only on their own data"
            )
        replicates = ModelReplicates(members.astype(np.float32), self.counts)
        return data.with_q_hat(members.mean(axis=0), replicates)
