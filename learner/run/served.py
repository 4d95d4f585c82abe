"""Probabilities of a served (TorchScript) policy on logged data, for CPE.

CPE judges what is served, byte for byte: the candidate's exported module, the incumbent's
stored one. A stored policy may know other features or actions than today's data (features
added, actions retired), so its inputs are aligned to it and its probabilities mapped back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from learner.data.logged import LoggedData

__all__ = ["align_to_policy", "policy_probs_on", "served_probs"]

_CHUNK = 65_536  # rows per call: bounds the memory of one forward pass


def served_probs(module: Any, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(n, A)`` float64 probabilities of a served TorchScript policy (``probs_dense``).

    Rows are renormalized at float64 so importance weights are not skewed by float32 sums.
    """
    states = np.ascontiguousarray(states, dtype=np.float32)
    mask = np.ascontiguousarray(mask, dtype=bool)
    out = np.empty(mask.shape, dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(states), _CHUNK):
            stop = start + _CHUNK
            probs = module.probs_dense(
                torch.from_numpy(states[start:stop]), torch.from_numpy(mask[start:stop])
            )
            out[start:stop] = probs.double().numpy()
    sums = out.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized: np.ndarray = out / sums
    return normalized


def align_to_policy(
    states: np.ndarray,
    possible_mask: np.ndarray,
    data_features: list[str],
    data_actions: list[str],
    policy_features: list[str],
    policy_actions: list[str],
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Inputs for a policy whose features/actions differ from the data's, and a function that
    maps its ``(n, A_policy)`` probabilities back onto the data's action order.

    Features the data lacks are NaN (the served normalizer uses their defaults); actions the
    data never offers are impossible; data actions the policy does not know get probability 0.
    """
    feature_index = {name: i for i, name in enumerate(data_features)}
    aligned_states = np.full((len(states), len(policy_features)), np.nan, dtype=np.float32)
    for j, name in enumerate(policy_features):
        if name in feature_index:
            aligned_states[:, j] = states[:, feature_index[name]]
    action_index = {name: i for i, name in enumerate(data_actions)}
    pairs = [(j, action_index[a]) for j, a in enumerate(policy_actions) if a in action_index]
    aligned_mask = np.zeros((len(states), len(policy_actions)), dtype=bool)
    for j, i in pairs:
        aligned_mask[:, j] = possible_mask[:, i]
    if len(states) and not aligned_mask.any(axis=1).all():
        raise ValueError(
            "policy actions: some logged decisions offer none of the policy's actions "
            f"{policy_actions}; it cannot be evaluated on this data"
        )

    def back(probs: np.ndarray) -> np.ndarray:
        out = np.zeros((len(probs), len(data_actions)), dtype=np.float64)
        for j, i in pairs:
            out[:, i] = probs[:, j]
        return out

    return aligned_states, aligned_mask, back


def policy_probs_on(data: LoggedData, module: Any, manifest: dict[str, Any]) -> np.ndarray:
    """``(n, A)`` probabilities over ``data``'s actions of a stored policy (its manifest names
    the features and actions it was trained on)."""
    states, mask, back = align_to_policy(
        data.states,
        data.possible_mask,
        data.feature_names,
        data.actions_space,
        list(manifest["feature_names"]),
        list(manifest["actions"]),
    )
    return back(served_probs(module, states, mask))
