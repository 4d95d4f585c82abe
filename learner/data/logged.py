"""``LoggedData``: the timeline as dense numpy arrays, one row per decision.

Trainers and estimators work on dense arrays, not on Arrow maps. This module holds the record
and its conventions, so every part of the learner agrees on the feature order and on the action
index of each action; the arrays are built by :class:`learner.data.dense.DenseBuilder`, batch by
batch, from a Delta table (:func:`learner.data.read_logged`) or a table in memory
(:meth:`LoggedData.from_table`).

Conventions (the learner's contract):

* the rows of an episode are contiguous and in step order; :meth:`LoggedData.from_table` sorts
  them by ``(episode_id, step)``, :func:`learner.data.read_logged` may put the eval episodes
  after the train episodes (each side sorted so) to make the train/eval split two views;
* the action space is the sorted list of distinct texts in ``possible_actions`` (numerically when
  every action is an integer, else lexicographically); an action's index is its position; the
  feature names are the sorted union of the keys of ``state`` and ``next_state``
  (:mod:`learner.data.vocabulary`);
* ``states``, ``next_states`` and ``logged_probs`` are float32 (``logged_probs`` is NaN on rows
  whose log had no full distribution); rewards and propensities stay float64 for CPE;
* a feature absent from a row's state map is ``NaN`` in ``states`` / ``next_states`` (the
  normalizer replaces it with the feature's default); rows without a next state have zeros;
* ``terminals`` marks rows where the environment ended the episode; ``has_next`` rows where a
  next decision exists. A row with neither (last row of a truncated episode) has no known
  bootstrap target and trainers leave it out of the temporal-difference loss.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from learner.data.columns import scatter_map, string_values
from learner.data.limits import ReadLimits
from learner.data.vocabulary import VocabularyCollector, sort_actions

__all__ = ["LoggedData", "action_space", "densify_states"]


def action_space(table: pa.Table) -> list[str]:
    """The run's action space: distinct ``possible_actions`` texts, sorted (see module doc)."""
    if table.num_rows == 0:
        return []
    return sort_actions(string_values(pc.list_flatten(table.column("possible_actions"))))


def densify_states(column: pa.ChunkedArray | pa.Array, feature_names: list[str]) -> np.ndarray:
    """A ``map<string,double>`` column as an ``(n, F)`` float32 matrix (NaN = absent/null row).

    Keys that are not in ``feature_names`` are ignored; a null map gives a row of NaN.
    """
    chunks = list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]
    out = np.full((len(column), len(feature_names)), np.nan, dtype=np.float32)
    names = pa.array(feature_names, pa.string())
    offset = 0
    for chunk in chunks:
        scatter_map(chunk, names, out, np.arange(offset, offset + len(chunk)))
        offset += len(chunk)
    return out


@dataclass(frozen=True, eq=False)
class LoggedData:
    """Decisions as arrays (see the module doc for conventions). Build with :meth:`from_table`."""

    episode_ids: np.ndarray
    steps: np.ndarray
    decision_ids: np.ndarray
    states: np.ndarray
    next_states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    has_next: np.ndarray
    possible_mask: np.ndarray
    next_possible_mask: np.ndarray
    propensities: np.ndarray
    logged_probs: np.ndarray
    feature_names: list[str]
    actions_space: list[str]
    policy_versions: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.steps)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.shape[:1] != (n,):
                raise ValueError(f"{f.name}: has {value.shape[0]} rows, expected {n}")
        a, nf = len(self.actions_space), len(self.feature_names)
        for name in ("possible_mask", "next_possible_mask", "logged_probs"):
            if getattr(self, name).shape != (n, a):
                raise ValueError(f"{name}: shape {getattr(self, name).shape}, expected {(n, a)}")
        for name in ("states", "next_states"):
            if getattr(self, name).shape != (n, nf):
                raise ValueError(f"{name}: shape {getattr(self, name).shape}, expected {(n, nf)}")
        if n and (self.actions.min() < 0 or self.actions.max() >= a):
            raise ValueError(f"actions: indices must be in [0, {a})")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_table(
        cls,
        table: pa.Table,
        feature_names: list[str] | None = None,
        actions: list[str] | None = None,
        limits: ReadLimits | None = None,
    ) -> LoggedData:
        """Densify a timeline table already in memory (any row order), sorted by
        ``(episode_id, step)``.

        ``feature_names`` defaults to the sorted union of the keys of ``state`` and
        ``next_state``; ``actions`` to :func:`action_space` of the table. Pass the incumbent's
        lists to evaluate it on new data; an action in the data outside ``actions`` is an error.
        ``limits`` caps the width (:class:`learner.data.TimelineTooWide`). A table in a Delta
        table is read with :func:`learner.data.read_logged`, which never holds it whole.
        """
        # the builder constructs LoggedData, so it is imported here, not at the top
        from learner.data.dense import DenseBuilder

        missing = {"episode_id", "step", "state", "action", "possible_actions"} - set(
            table.column_names
        )
        if missing:
            raise ValueError(f"timeline table: missing columns {sorted(missing)}")
        vocabulary = VocabularyCollector("(in memory)", limits, feature_names, actions)
        batches = table.to_batches()
        for batch in batches:
            vocabulary.add(batch)
        n = table.num_rows
        destination = np.empty(n, dtype=np.int64)
        if n:
            order = pc.sort_indices(
                table, sort_keys=[("episode_id", "ascending"), ("step", "ascending")]
            )
            destination[order.to_numpy()] = np.arange(n)
        builder = DenseBuilder(n, vocabulary.result())
        offset = 0
        for batch in batches:
            builder.fill(batch, destination[offset : offset + batch.num_rows])
            offset += batch.num_rows
        return builder.finish()

    # -- shape ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.steps)

    @property
    def n_actions(self) -> int:
        return len(self.actions_space)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_episodes(self) -> int:
        """Runs of rows of one episode (the episodes, since an episode's rows are contiguous)."""
        return len(self._episode_starts())

    def _episode_starts(self) -> np.ndarray:
        if len(self) == 0:
            return np.zeros(0, np.int64)
        ids = self.episode_ids
        return np.concatenate(([0], np.flatnonzero(ids[1:] != ids[:-1]) + 1))

    def episode_slices(self) -> list[tuple[int, int]]:
        """``(start, stop)`` row ranges of each episode, in row order."""
        n = len(self)
        if n == 0:
            return []
        starts = self._episode_starts()
        change = starts[1:]
        stops = np.concatenate((change, [n]))
        return list(zip(starts.tolist(), stops.tolist(), strict=True))

    @property
    def is_one_step(self) -> bool:
        """Every episode has exactly one decision: a contextual bandit."""
        n = len(self)
        return n > 0 and self.n_episodes == n

    def subset(self, rows: np.ndarray | slice) -> LoggedData:
        """The given rows (indices or boolean mask: copies; a slice: views, no copy), keeping
        every array aligned."""
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value[rows] if isinstance(value, np.ndarray) else list(value)
        return LoggedData(**values)
