"""One servable policy version: the registry's TorchScript module, or the uniform fallback.

A :class:`ServedModel` is built once per version and shared by every decision: it owns the
action → index map of the manifest and a small cache of possible-action masks, so that the hot
path of :meth:`probs` only converts the state, runs the (specialized, verified) module and picks
the probabilities of the possible actions. :meth:`ServedModel.probs_many` serves several
states in one module call: at a batch of one, a call's cost is mostly fixed (the interpreter and
dispatcher steps, and in a busy server the caches they find cold), so a service that gathers
concurrent decisions pays it once per batch. A model batches only if its batched output was
verified equal to its one-row output at load (:func:`~services.sdk.policy_compile.batch_agrees`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from schemas.manifest import serving_interface
from schemas.names import UNIFORM_VERSION
from schemas.tables import action_text

__all__ = ["ServedModel", "UniformModel", "UnknownActionError"]
_MASK_CACHE_MAX = 4096
_NAN = math.nan


class UnknownActionError(ValueError):
    """A possible action the served model has no output for."""


class ServedModel:
    """A loaded registry version (see module doc)."""

    def __init__(self, version: str, module: Any, manifest: dict[str, Any]) -> None:
        import torch

        from services.sdk.policy_compile import batch_agrees, compile_for_mask, compile_served

        self.version = version
        self.manifest = manifest
        self.feature_names, self.actions = serving_interface(manifest)
        module_actions = [str(a) for a in getattr(module, "actions", self.actions)]
        if module_actions != self.actions:
            raise ValueError(
                f"{version}: policy.pt serves actions {module_actions} but the manifest lists "
                f"{self.actions}"
            )
        self._index = {a: i for i, a in enumerate(self.actions)}
        self._forward, self.compiled = compile_served(module, self.feature_names, len(self.actions))
        # The all-actions-possible mask gets its own graph with the mask folded in (see
        # compile_for_mask); other masks use the general specialized graph.
        self._all_possible = compile_for_mask(
            module, self.feature_names, [True] * len(self.actions)
        )
        if self._all_possible is not None:
            self.compiled += "+all-actions"
        # Several rows in one call (probs_many) only where that was verified equal.
        n_actions = len(self.actions)
        bound = self._all_possible
        batches = batch_agrees(self._forward, self.feature_names, n_actions, None)
        if batches and bound is not None:
            every = [[True] * n_actions]
            batches = batch_agrees(lambda r, _m: bound(r), self.feature_names, n_actions, every)
        self.batches = batches
        # One reusable (1, F) input per thread: building a fresh tensor per call costs more
        # than the rest of the bookkeeping together; the module never keeps its input.
        self._local = threading.local()
        self._from_numpy = torch.from_numpy
        # tuple(possible_actions) -> (mask tensor (1, A), indices of the possible actions,
        # the mask-specialized forward or None)
        self._masks: dict[tuple[Any, ...], tuple[Any, list[int], Any]] = {}

    def _mask_for(self, possible: Sequence[int | str]) -> tuple[Any, list[int], Any]:
        key = tuple(possible)
        cached = self._masks.get(key)
        if cached is not None:
            return cached
        import torch

        if not key:
            raise ValueError("possible_actions: must contain at least one action")
        indices = []
        for action in key:
            index = self._index.get(action_text(action))
            if index is None:
                raise UnknownActionError(
                    f"possible action {action!r} is not an action of policy version "
                    f"{self.version} (its actions: {self.actions})"
                )
            indices.append(index)
        if len(set(indices)) != len(indices):
            raise ValueError(f"possible_actions {list(key)}: actions must be distinct")
        flags = [False] * len(self.actions)
        for index in indices:
            flags[index] = True
        bound = self._all_possible if all(flags) else None
        entry = (torch.tensor([flags], dtype=torch.bool), indices, bound)
        if len(self._masks) >= _MASK_CACHE_MAX:
            self._masks.clear()
        self._masks[key] = entry
        return entry

    def probs(self, state: dict[str, float], possible: Sequence[int | str]) -> list[float]:
        """Probabilities of ``possible`` (aligned with it) under this version."""
        mask, indices, bound = self._mask_for(possible)
        try:
            values, row = self._local.buffer
        except AttributeError:
            values = np.zeros((1, len(self.feature_names)), dtype=np.float32)
            row = self._from_numpy(values)
            self._local.buffer = (values, row)
        get = state.get
        values[0] = [get(name, _NAN) for name in self.feature_names]
        full = (self._forward(row, mask) if bound is None else bound(row)).tolist()[0]
        return [full[i] for i in indices]

    def probs_many(
        self, states: Sequence[dict[str, float]], possible: Sequence[int | str]
    ) -> list[list[float]]:
        """:meth:`probs` of each of ``states`` for the same ``possible`` actions, in one module
        call when the model batches (see the module doc), else one call per state."""
        if len(states) == 1 or not self.batches:
            return [self.probs(state, possible) for state in states]
        mask, indices, bound = self._mask_for(possible)
        names = self.feature_names
        values = np.array([[s.get(n, _NAN) for n in names] for s in states], dtype=np.float32)
        rows = self._from_numpy(values)
        out = bound(rows) if bound is not None else self._forward(rows, mask.expand(len(rows), -1))
        return [[full[i] for i in indices] for full in out.tolist()]


class UniformModel:
    """The built-in cold-start policy: every possible action equally likely."""

    version = UNIFORM_VERSION
    compiled = "builtin"
    actions: list[str] | None = None

    def probs(self, state: dict[str, float], possible: Sequence[int | str]) -> list[float]:
        n = len(possible)
        if n == 0:
            raise ValueError("possible_actions: must contain at least one action")
        return [1.0 / n] * n

    def probs_many(
        self, states: Sequence[dict[str, float]], possible: Sequence[int | str]
    ) -> list[list[float]]:
        """:meth:`probs` of each of ``states``."""
        return [self.probs(state, possible) for state in states]
