"""``DenseBuilder``: the arrays of a :class:`LoggedData`, allocated once and filled batch by batch.

Densifying column by column over the whole table holds the table, its sorted copy and every
intermediate at once (about 1.6 GB for a million rows of six features). Here every array is
allocated once at its final size and dtype, and each batch of rows is scattered into its
destination rows and dropped: what is in memory is the dense arrays plus one batch. Texts that
repeat (an episode's id on each of its rows, the policy version) are stored once and shared
between rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from learner.data.columns import (
    list_entries,
    list_positions,
    positions_in,
    scatter_aligned,
    scatter_map,
)
from learner.data.logged import LoggedData
from learner.data.vocabulary import Vocabulary
from schemas.tables import TIMELINE_SCHEMA

__all__ = ["VALUE_COLUMNS", "DenseBuilder"]

#: The timeline columns a :class:`LoggedData` is made of.
VALUE_COLUMNS = (
    "episode_id",
    "step",
    "decision_id",
    "state",
    "next_state",
    "action",
    "next_action",
    "possible_actions",
    "possible_next_actions",
    "action_probs",
    "propensity",
    "reward",
    "terminal",
    "policy_version",
)


class DenseBuilder:
    """The arrays of ``rows`` decisions over ``vocabulary``; :meth:`fill` each batch once."""

    def __init__(self, rows: int, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        f, a = len(vocabulary.feature_names), len(vocabulary.actions)
        self._names = pa.array(vocabulary.feature_names, pa.string())
        self._actions = pa.array(vocabulary.actions, pa.string())
        self._shared: dict[str, str] = {}
        self.rows_filled = 0
        self.episode_ids = np.empty(rows, dtype=object)
        self.steps = np.zeros(rows, dtype=np.int64)
        self.decision_ids = np.empty(rows, dtype=object)
        self.policy_versions = np.empty(rows, dtype=object)
        self.states = np.full((rows, f), np.nan, dtype=np.float32)
        self.next_states = np.full((rows, f), np.nan, dtype=np.float32)
        self.actions = np.zeros(rows, dtype=np.int64)
        self.rewards = np.zeros(rows, dtype=np.float64)
        self.propensities = np.zeros(rows, dtype=np.float64)
        self.terminals = np.zeros(rows, dtype=bool)
        self.has_next = np.zeros(rows, dtype=bool)
        self.possible_mask = np.zeros((rows, a), dtype=bool)
        self.next_possible_mask = np.zeros((rows, a), dtype=bool)
        self.logged_probs = np.full((rows, a), np.nan, dtype=np.float32)

    def fill(self, batch: pa.RecordBatch, rows: np.ndarray) -> None:
        """Write the batch's row ``i`` into row ``rows[i]`` of every array.

        Raises ValueError for an action (taken or possible) outside the action space and for
        ``action_probs`` not aligned with ``possible_actions``.
        """
        column = _Columns(batch)
        self.rows_filled += len(rows)
        self._fill_scalars(column, rows)
        self._fill_states(column, rows)
        self._fill_actions(column, rows)

    def _fill_scalars(self, column: _Columns, rows: np.ndarray) -> None:
        self.episode_ids[rows] = self._shared_texts(column("episode_id"), across=False)
        self.steps[rows] = _numbers(column("step"), np.int64, 0)
        self.decision_ids[rows] = column("decision_id").to_numpy(zero_copy_only=False)
        self.policy_versions[rows] = self._shared_texts(column("policy_version"), across=True)
        self.rewards[rows] = _numbers(column("reward"), np.float64, np.nan)
        self.propensities[rows] = _numbers(column("propensity"), np.float64, np.nan)
        self.terminals[rows] = _numbers(column("terminal"), bool, False)

    def _fill_states(self, column: _Columns, rows: np.ndarray) -> None:
        scatter_map(column("state"), self._names, self.states, rows)
        next_state = column("next_state")
        scatter_map(next_state, self._names, self.next_states, rows)
        has_next = _valid(column("next_action")) & _valid(next_state)
        self.next_states[rows[~has_next]] = 0.0
        self.has_next[rows] = has_next

    def _fill_actions(self, column: _Columns, rows: np.ndarray) -> None:
        action = column("action")
        index = positions_in(action, self._actions)
        if (index < 0).any():
            bad = action.to_numpy(zero_copy_only=False)[index < 0][0]
            raise ValueError(f"action={bad!r}: not in the action space {self.vocabulary.actions}")
        self.actions[rows] = index
        possible = column("possible_actions")
        positions = list_positions(possible, self._actions)
        if positions.unknown.any():
            flat = list_entries(possible).to_numpy(zero_copy_only=False)
            unknown = sorted({str(a) for a in flat[positions.unknown]})
            raise ValueError(f"possible_actions: actions {unknown} are not in the action space")
        positions.scatter(self.possible_mask, rows)
        list_positions(column("possible_next_actions"), self._actions).scatter(
            self.next_possible_mask, rows
        )
        scatter_aligned(column("action_probs"), positions, self.logged_probs, rows)

    def finish(self) -> LoggedData:
        """The filled arrays as a :class:`LoggedData` (rows in destination order)."""
        return LoggedData(
            episode_ids=self.episode_ids,
            steps=self.steps,
            decision_ids=self.decision_ids,
            states=self.states,
            next_states=self.next_states,
            actions=self.actions,
            rewards=self.rewards,
            terminals=self.terminals,
            has_next=self.has_next & ~self.terminals,
            possible_mask=self.possible_mask,
            next_possible_mask=self.next_possible_mask,
            propensities=self.propensities,
            logged_probs=self.logged_probs,
            feature_names=list(self.vocabulary.feature_names),
            actions_space=list(self.vocabulary.actions),
            policy_versions=self.policy_versions,
        )

    def _shared_texts(self, column: pa.Array, *, across: bool) -> np.ndarray:
        """The column as Python strings, one object per distinct text of the batch (of all
        batches ``across`` them: for texts with few distinct values, since the map that shares
        them holds each one until the read ends)."""
        encoded = pc.dictionary_encode(column)
        texts = encoded.dictionary.to_pylist()
        if across:
            texts = [None if t is None else self._shared.setdefault(t, t) for t in texts]
        table = np.empty(len(texts) + 1, dtype=object)
        table[: len(texts)] = texts
        codes = pc.fill_null(encoded.indices, len(texts)).to_numpy(zero_copy_only=False)
        shared: np.ndarray = table[codes]
        return shared


class _Columns:
    """A batch's columns by name; a column the file does not have reads as nulls."""

    def __init__(self, batch: pa.RecordBatch) -> None:
        self.batch = batch

    def __call__(self, name: str) -> pa.Array:
        if name in self.batch.schema.names:
            return self.batch.column(name)
        return pa.nulls(self.batch.num_rows, TIMELINE_SCHEMA.field(name).type)


def _valid(column: pa.Array) -> np.ndarray:
    return np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _numbers(column: pa.Array, dtype: type, null: object) -> np.ndarray:
    if column.null_count:
        column = pc.fill_null(column, pa.scalar(null, column.type))
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)
