"""``LoggedData``: the timeline as dense numpy arrays, one row per decision.

Trainers and estimators work on dense arrays, not on Arrow maps. This module is the one place
that turns the timeline's sparse ``state`` maps and text actions into matrices, so every part of
the learner agrees on the feature order and on the action index of each action.

Conventions (the learner's contract):

* rows are sorted by ``(episode_id, step)``;
* the action space is the sorted list of distinct texts in ``possible_actions`` (numerically when
  every action is an integer, else lexicographically); an action's index is its position;
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

__all__ = ["LoggedData", "action_space", "densify_states"]


def _sort_key(actions: list[str]) -> list[str]:
    try:
        return sorted(actions, key=lambda a: (int(a), a))
    except ValueError:
        return sorted(actions)


def action_space(table: pa.Table) -> list[str]:
    """The run's action space: distinct ``possible_actions`` texts, sorted (see module doc)."""
    if table.num_rows == 0:
        return []
    distinct = pc.unique(pc.list_flatten(table.column("possible_actions"))).to_pylist()
    return _sort_key([a for a in distinct if a is not None])


def densify_states(column: pa.ChunkedArray | pa.Array, feature_names: list[str]) -> np.ndarray:
    """A ``map<string,double>`` column as an ``(n, F)`` float32 matrix (NaN = absent/null row).

    Keys that are not in ``feature_names`` are ignored; a null map gives a row of NaN.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    n = len(column)
    out = np.full((n, len(feature_names)), np.nan, dtype=np.float32)
    if n == 0 or not feature_names:
        return out
    offsets = column.offsets.to_numpy(zero_copy_only=False)
    first, last = int(offsets[0]), int(offsets[-1])
    offsets = offsets - first
    keys = column.keys.slice(first, last - first)
    items = column.items.slice(first, last - first).to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(n), np.diff(offsets))
    cols = pc.index_in(keys, value_set=pa.array(feature_names, pa.string()))
    cols = np.asarray(pc.fill_null(cols, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    keep = cols >= 0
    out[rows[keep], cols[keep]] = items[keep].astype(np.float32)
    return out


def _action_mask(column: pa.ChunkedArray, actions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(n, A)`` mask of the listed actions, and per flattened entry its action index (-1 if
    unknown) so aligned lists (``action_probs``) can be scattered the same way."""
    array = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    n = len(array)
    mask = np.zeros((n, len(actions)), dtype=bool)
    if n == 0:
        return mask, np.zeros(0, np.int64)
    filled = pc.fill_null(array, pa.scalar([], array.type))
    offsets = filled.offsets.to_numpy(zero_copy_only=False)
    offsets = offsets - offsets[0]
    flat = filled.flatten()
    idx = pc.index_in(flat, value_set=pa.array(actions, pa.string()))
    idx = np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    rows = np.repeat(np.arange(n), np.diff(offsets))
    ok = idx >= 0
    mask[rows[ok], idx[ok]] = True
    return mask, idx


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
    ) -> LoggedData:
        """Densify a timeline table (any row order).

        ``feature_names`` defaults to the sorted union of the keys of ``state`` and
        ``next_state``; ``actions`` to :func:`action_space` of the table. Pass the incumbent's
        lists to evaluate it on new data; an action in the data outside ``actions`` is an error.
        """
        missing = {"episode_id", "step", "state", "action", "possible_actions"} - set(
            table.column_names
        )
        if missing:
            raise ValueError(f"timeline table: missing columns {sorted(missing)}")
        if table.num_rows:
            order = pc.sort_indices(
                table, sort_keys=[("episode_id", "ascending"), ("step", "ascending")]
            )
            table = table.take(order)
        if actions is None:
            actions = action_space(table)
        else:
            actions = [str(a) for a in actions]
            if len(set(actions)) != len(actions):
                raise ValueError(f"actions: must not repeat an action, got {actions}")
        if feature_names is None:
            feature_names = _feature_union(table)
        else:
            feature_names = [str(f) for f in feature_names]
        n = table.num_rows

        possible_mask, flat_idx = _action_mask(table.column("possible_actions"), actions)
        if flat_idx.size and (flat_idx < 0).any():
            flat = pc.list_flatten(table.column("possible_actions")).to_numpy(zero_copy_only=False)
            unknown = sorted(set(flat[flat_idx < 0].tolist()))
            raise ValueError(f"possible_actions: actions {unknown} are not in the action space")
        action_idx = pc.index_in(table.column("action"), value_set=pa.array(actions, pa.string()))
        action_idx = np.asarray(
            pc.fill_null(action_idx, -1).to_numpy(zero_copy_only=False), dtype=np.int64
        )
        if n and (action_idx < 0).any():
            bad = table.column("action").to_numpy(zero_copy_only=False)[action_idx < 0][0]
            raise ValueError(f"action={bad!r}: not in the action space {actions}")

        next_possible_mask, _ = _action_mask(table.column("possible_next_actions"), actions)
        logged_probs = _logged_probs(table, actions, n)

        next_state_col = table.column("next_state")
        has_next = np.asarray(
            pc.and_(pc.is_valid(table.column("next_action")), pc.is_valid(next_state_col)).to_numpy(
                zero_copy_only=False
            ),
            dtype=bool,
        )
        next_states = densify_states(next_state_col, feature_names)
        next_states[~has_next] = 0.0
        terminals = np.asarray(table.column("terminal").to_numpy(zero_copy_only=False), bool)

        return cls(
            episode_ids=np.asarray(table.column("episode_id").to_pylist(), dtype=object),
            steps=np.asarray(table.column("step").to_numpy(zero_copy_only=False), np.int64),
            decision_ids=np.asarray(table.column("decision_id").to_pylist(), dtype=object),
            states=densify_states(table.column("state"), feature_names),
            next_states=next_states,
            actions=action_idx,
            rewards=np.asarray(table.column("reward").to_numpy(zero_copy_only=False), np.float64),
            terminals=terminals,
            has_next=has_next & ~terminals,
            possible_mask=possible_mask,
            next_possible_mask=next_possible_mask,
            propensities=np.asarray(
                table.column("propensity").to_numpy(zero_copy_only=False), np.float64
            ),
            logged_probs=logged_probs,
            feature_names=list(feature_names),
            actions_space=list(actions),
            policy_versions=np.asarray(table.column("policy_version").to_pylist(), dtype=object),
        )

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
        return len(self.episode_slices())

    def episode_slices(self) -> list[tuple[int, int]]:
        """``(start, stop)`` row ranges of each episode, in row order."""
        n = len(self)
        if n == 0:
            return []
        ids = self.episode_ids
        change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
        starts = np.concatenate(([0], change))
        stops = np.concatenate((change, [n]))
        return list(zip(starts.tolist(), stops.tolist(), strict=True))

    @property
    def is_one_step(self) -> bool:
        """Every episode has exactly one decision: a contextual bandit."""
        n = len(self)
        return n > 0 and self.n_episodes == n

    def subset(self, rows: np.ndarray) -> LoggedData:
        """The given rows (indices or boolean mask), keeping every array aligned."""
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value[rows] if isinstance(value, np.ndarray) else list(value)
        return LoggedData(**values)


def _feature_union(table: pa.Table) -> list[str]:
    names: set[str] = set()
    for column in ("state", "next_state"):
        if column in table.column_names and table.num_rows:
            for chunk in table.column(column).chunks:
                offsets = chunk.offsets.to_numpy(zero_copy_only=False)
                keys = chunk.keys.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
                names.update(k for k in pc.unique(keys).to_pylist() if k is not None)
    return sorted(names)


def _logged_probs(table: pa.Table, actions: list[str], n: int) -> np.ndarray:
    """``action_probs`` scattered onto the action space; NaN rows where the log had none."""
    out = np.full((n, len(actions)), np.nan, dtype=np.float64)
    if n == 0 or "action_probs" not in table.column_names:
        return out
    probs = table.column("action_probs").combine_chunks()
    possible = table.column("possible_actions").combine_chunks()
    present = np.asarray(pc.is_valid(probs).to_numpy(zero_copy_only=False), dtype=bool)
    if not present.any():
        return out
    rows_with = np.flatnonzero(present)
    probs_p = probs.filter(pa.array(present))
    possible_p = possible.filter(pa.array(present))
    _, idx = _action_mask(pa.chunked_array([possible_p]), actions)
    offsets = possible_p.offsets.to_numpy(zero_copy_only=False)
    offsets = offsets - offsets[0]
    values = probs_p.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    if len(values) != len(idx):
        raise ValueError("action_probs: must be aligned with possible_actions (same length)")
    local_rows = np.repeat(np.arange(len(rows_with)), np.diff(offsets))
    block = np.zeros((len(rows_with), len(actions)), dtype=np.float64)
    ok = idx >= 0
    block[local_rows[ok], idx[ok]] = values[ok]
    out[rows_with] = block
    return out
