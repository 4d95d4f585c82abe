"""The stochastic policy a trainer produces: raw states → action probabilities.

Served policies must stay stochastic: counterfactual evaluation of the *next* candidate is only
possible where the deployed policy gave every possible action some probability. The same
:class:`PolicyModule` is used by the trainer (``StochasticPolicy.probs``), by CPE, and, scripted,
inside ``policy.pt``, so "what was evaluated" and "what is served" are one computation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from learner.preprocessing.normalizer import NormalizerModule
from learner.trainers.config import ExplorationSettings

__all__ = ["PolicyModule", "StochasticPolicy"]


class PolicyModule(nn.Module):
    """Normalizer + Q-network (+ BCQ imitator filter) + exploration, TorchScript-able."""

    def __init__(
        self,
        normalizer: NormalizerModule,
        q_network: nn.Module,
        imitator: nn.Module,
        bcq_threshold: float,
        exploration: ExplorationSettings,
    ) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.q_network = q_network
        self.imitator = imitator
        self.bcq_threshold = float(bcq_threshold)
        self.temperature = float(exploration.temperature)
        self.epsilon = float(exploration.epsilon)
        self.min_propensity = float(exploration.min_propensity)

    @torch.jit.export
    def q_values(self, states: torch.Tensor) -> torch.Tensor:
        """Raw ``(n, F)`` states → ``(n, A)`` action values (predicted rewards for bandits)."""
        # Module.__call__ is typed Any, a Tensor here (TorchScript wants the ignore to end the line)
        return self.q_network(self.normalizer(states))  # type: ignore[no-any-return]

    @torch.jit.export
    def candidate_mask(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Possible actions the policy may prefer: all of them, or BCQ's well-supported ones."""
        if self.bcq_threshold <= 0.0:
            return mask
        logits = self.imitator(z).masked_fill(~mask, float("-inf"))
        p = torch.softmax(logits, dim=1)
        return mask & (p >= self.bcq_threshold * p.max(dim=1, keepdim=True).values)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Raw ``(n, F)`` states and ``(n, A)`` bool masks → ``(n, A)`` probabilities."""
        n_possible = mask.sum(dim=1, keepdim=True)
        if bool((n_possible == 0).any()):
            raise ValueError("possible actions: every row needs at least one possible action")
        z = self.normalizer(states)
        q = self.q_network(z)
        keep = self.candidate_mask(z, mask)
        soft = torch.softmax((q / self.temperature).masked_fill(~keep, float("-inf")), dim=1)
        k = n_possible.to(q.dtype)
        eps = (k * self.min_propensity).clamp_min(self.epsilon).clamp_max(1.0)
        probs = (1.0 - eps) * soft + eps * mask.to(q.dtype) / k
        return probs.masked_fill(~mask, 0.0)


class StochasticPolicy:
    """Numpy front of a :class:`PolicyModule`, with the names it was trained on."""

    def __init__(
        self,
        module: PolicyModule,
        feature_names: list[str],
        actions: list[str],
    ) -> None:
        self.module = module.eval()
        self.feature_names = list(feature_names)
        self.actions = list(actions)

    def with_exploration(self, exploration: ExplorationSettings) -> StochasticPolicy:
        """The same networks served with another exploration (a selection variant: no
        retraining, only what is sampled changes)."""
        m = self.module
        module = PolicyModule(m.normalizer, m.q_network, m.imitator, m.bcq_threshold, exploration)
        return StochasticPolicy(module, self.feature_names, self.actions)

    @property
    def exploration(self) -> dict[str, Any]:
        m = self.module
        return {
            "temperature": m.temperature,
            "epsilon": m.epsilon,
            "min_propensity": m.min_propensity,
        }

    def _inputs(
        self, states_raw: np.ndarray, possible_mask: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states = np.ascontiguousarray(states_raw, dtype=np.float32)
        if states.ndim != 2 or states.shape[1] != len(self.feature_names):
            raise ValueError(
                f"states_raw: shape {states.shape}, expected (n, {len(self.feature_names)})"
            )
        if possible_mask is None:
            possible_mask = np.ones((len(states), len(self.actions)), dtype=bool)
        mask = np.ascontiguousarray(possible_mask, dtype=bool)
        if mask.shape != (len(states), len(self.actions)):
            raise ValueError(
                f"possible_mask: shape {mask.shape}, expected {(len(states), len(self.actions))}"
            )
        return torch.from_numpy(states), torch.from_numpy(mask)

    def probs(self, states_raw: np.ndarray, possible_mask: np.ndarray | None = None) -> np.ndarray:
        """``(n, A)`` probabilities (float64), zero on impossible actions, rows summing to 1."""
        states, mask = self._inputs(states_raw, possible_mask)
        with torch.no_grad():
            probs = self.module(states, mask).double().numpy()
        # float32 → float64: renormalize so rows sum to 1 at float64 precision (samplers check)
        normalized: np.ndarray = probs / probs.sum(axis=1, keepdims=True)
        return normalized

    def q_values(self, states_raw: np.ndarray) -> np.ndarray:
        """``(n, A)`` action values (float64) from raw states."""
        states, _ = self._inputs(states_raw, None)
        with torch.no_grad():
            return self.module.q_values(states).double().numpy()

    def greedy_actions(
        self, states_raw: np.ndarray, possible_mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Index of the best possible (and, for BCQ, supported) action per row."""
        states, mask = self._inputs(states_raw, possible_mask)
        with torch.no_grad():
            z = self.module.normalizer(states)
            keep = self.module.candidate_mask(z, mask)
            q = self.module.q_network(z).masked_fill(~keep, float("-inf"))
            best: np.ndarray = q.argmax(dim=1).numpy()
            return best
