"""Candidate policies as functions from states and possible actions to probabilities.

The coverage benchmark must judge a candidate *as served*: the probabilities CPE weighs are
the ones the served policy samples from. Every candidate is therefore one
:class:`PolicyProbs` used twice, on the eval split for CPE and in the environment (or the
chain's exact solve) for the true value. The trained candidates wrap the exported TorchScript
module through the learner's own :func:`~learner.run.served.served_probs`; the perturbed ones
wrap a trained one, so that candidates of known lower quality are served exactly as evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from learner.run.served import served_probs

__all__ = ["Mixed", "PolicyProbs", "Served", "Swapped", "Uniform"]


class PolicyProbs(Protocol):
    """``(n, F)`` float32 states and ``(n, A)`` bool masks → ``(n, A)`` float64 probabilities,
    zero on impossible actions, rows summing to 1."""

    def __call__(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


def _uniform(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.float64)
    out: np.ndarray = m / m.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True)
class Served:
    """The exported ``policy.pt`` module (loaded by the registry's loader), as CPE reads it."""

    module: Any

    def __call__(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return served_probs(self.module, states, mask)


@dataclass(frozen=True)
class Uniform:
    """The logger itself: uniform over the possible actions (never truly better)."""

    def __call__(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return _uniform(mask)


@dataclass(frozen=True)
class Mixed:
    """``base`` with a share of its mass moved to uniform: between the candidate and the logger
    in behaviour, and usually in value."""

    base: PolicyProbs
    share: float

    def __call__(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (1.0 - self.share) * self.base(states, mask) + self.share * _uniform(mask)


@dataclass(frozen=True)
class Swapped:
    """``base``, whose chosen action is replaced with probability ``p`` by another possible
    action drawn uniformly: ``(1 - p) pi(a) + p (1 - pi(a)) / (k - 1)`` over ``k`` possible
    actions. With a high ``p`` it mostly does what the trained policy would not: a candidate
    that is usually truly worse than the logger, which the gate must reject."""

    base: PolicyProbs
    p: float

    def __call__(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        probs = self.base(states, mask)
        k = mask.sum(axis=1, keepdims=True).astype(np.float64)
        others = np.where(mask, 1.0 - probs, 0.0) / np.maximum(k - 1.0, 1.0)
        swapped = (1.0 - self.p) * probs + self.p * others
        out: np.ndarray = np.where(k > 1, swapped, probs)  # one possible action: nothing to swap
        return out
