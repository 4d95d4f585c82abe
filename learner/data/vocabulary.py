"""The feature names and the action space of a read: the width of every dense array.

They must be known before the arrays are allocated, so they are collected in a pass of their
own over the batches, and the caps of :mod:`learner.data.limits` are checked as each batch adds
keys: a timeline too wide to densify fails on its first batches, before any allocation.
Conventions (the learner's contract): the feature names are the sorted union of the keys of
``state`` and ``next_state``; the action space is the distinct texts of ``possible_actions``,
sorted numerically when every action is an integer, else lexicographically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from learner.data.columns import map_keys, string_values
from learner.data.limits import ReadLimits, TimelineTooWide

__all__ = ["VOCABULARY_COLUMNS", "Vocabulary", "VocabularyCollector", "sort_actions"]

#: The columns whose values set the arrays' width.
VOCABULARY_COLUMNS = ("state", "next_state", "possible_actions")


def sort_actions(actions: Sequence[str]) -> list[str]:
    """Actions in the action space's order (see the module doc)."""
    try:
        return sorted(actions, key=lambda a: (int(a), a))
    except ValueError:
        return sorted(actions)


@dataclass(frozen=True)
class Vocabulary:
    """The dense columns of a read: one per feature name, one per action."""

    feature_names: list[str]
    actions: list[str]


class VocabularyCollector:
    """Collects the feature names and actions batch by batch, checking the caps as it goes.

    ``feature_names`` / ``actions`` given (an incumbent's lists) are taken as they are and not
    collected. Without ``limits`` nothing is capped (densifying a table already in memory).
    """

    def __init__(
        self,
        table: str,
        limits: ReadLimits | None = None,
        feature_names: Sequence[str] | None = None,
        actions: Sequence[str] | None = None,
    ) -> None:
        self.table = table
        self.limits = limits
        self._given_features = None if feature_names is None else [str(f) for f in feature_names]
        self._given_actions = None if actions is None else [str(a) for a in actions]
        if self._given_actions is not None and len(set(self._given_actions)) != len(
            self._given_actions
        ):
            raise ValueError(f"actions: must not repeat an action, got {self._given_actions}")
        self._features: set[str] = set()
        self._actions: set[str] = set()
        if self._given_features is not None:
            self._check("state", len(self._given_features), "max_state_features")
        if self._given_actions is not None:
            self._check("possible_actions", len(self._given_actions), "max_actions")

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add a batch's keys and actions; raises :class:`TimelineTooWide` past a cap."""
        names = batch.schema.names
        if self._given_features is None:
            for column in ("state", "next_state"):
                if column in names:
                    for chunk in _chunks(batch.column(column)):
                        self._features.update(map_keys(chunk))
                    self._check(column, len(self._features), "max_state_features")
        if self._given_actions is None and "possible_actions" in names:
            for chunk in _chunks(batch.column("possible_actions")):
                if len(chunk):
                    self._actions.update(string_values(pc.list_flatten(chunk)))
            self._check("possible_actions", len(self._actions), "max_actions")

    def result(self) -> Vocabulary:
        features = self._given_features
        actions = self._given_actions
        return Vocabulary(
            feature_names=sorted(self._features) if features is None else features,
            actions=sort_actions(list(self._actions)) if actions is None else actions,
        )

    def _check(self, column: str, found: int, setting: str) -> None:
        if self.limits is None:
            return
        cap = getattr(self.limits, setting)
        if found > cap:
            raise TimelineTooWide(self.table, column, found, setting, cap)


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]
