"""Arrow columns of one batch scattered into rows of preallocated numpy arrays.

The learner densifies the timeline one batch at a time into arrays allocated once for every
row, so these helpers write into ``out[rows[i]]`` for the batch's row ``i`` instead of returning
a new array per column: the batch is the only other thing in memory. They accept sliced arrays
(a batch cut from a larger one) and treat a null map or list as having no entries, whatever its
offsets say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ListPositions",
    "list_entries",
    "list_positions",
    "map_keys",
    "positions_in",
    "scatter_aligned",
    "scatter_map",
    "string_values",
]


def _entry_rows(column: pa.Array) -> tuple[np.ndarray, int, int]:
    """For each entry of a list or map array, its row (``-1`` for entries of null rows), and
    the entries' ``[first, last)`` range in the child array."""
    n = len(column)
    offsets = column.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    if column.null_count:
        valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        rows = np.where(valid[rows], rows, -1)
    return rows, first, last


def list_entries(column: pa.Array) -> pa.Array:
    """The entries of a list or map array's rows, in order (those of null rows included)."""
    if len(column) == 0:
        return column.values.slice(0, 0)
    _, first, last = _entry_rows(column)
    return column.values.slice(first, last - first)


def positions_in(values: pa.Array | pa.ChunkedArray, value_set: pa.Array) -> np.ndarray:
    """The index of each value in ``value_set`` (``-1`` when it is absent or null)."""
    found = pc.fill_null(pc.index_in(values, value_set=value_set), -1)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)


def string_values(column: pa.Array) -> list[str]:
    """The distinct non-null values of a string array."""
    return [v for v in pc.unique(column).to_pylist() if v is not None]


def map_keys(column: pa.Array) -> list[str]:
    """The distinct keys of a ``map<string, double>`` array's non-null maps."""
    if len(column) == 0:
        return []
    rows, first, last = _entry_rows(column)
    keys = column.keys.slice(first, last - first)
    if (rows < 0).any():
        keys = keys.filter(pa.array(rows >= 0))
    return string_values(keys)


def scatter_map(column: pa.Array, names: pa.Array, out: np.ndarray, rows: np.ndarray) -> None:
    """``out[rows[i], j] = value`` for each entry ``names[j] -> value`` of the map in row ``i``.

    Keys that are not in ``names`` are ignored; cells of absent keys keep what ``out`` held.
    """
    if len(column) == 0 or len(names) == 0:
        return
    entry_rows, first, last = _entry_rows(column)
    cols = positions_in(column.keys.slice(first, last - first), names)
    items = column.items.slice(first, last - first).to_numpy(zero_copy_only=False)
    keep = (cols >= 0) & (entry_rows >= 0)
    out[rows[entry_rows[keep]], cols[keep]] = items[keep]


@dataclass(frozen=True)
class ListPositions:
    """Per entry of a list array: its row in the batch (``-1``: a null list) and the index of
    its value in the value set (``-1``: not in it)."""

    row: np.ndarray
    index: np.ndarray

    @property
    def unknown(self) -> np.ndarray:
        """Entries of non-null lists whose value is not in the value set."""
        return (self.row >= 0) & (self.index < 0)

    def scatter(self, out: np.ndarray, rows: np.ndarray) -> None:
        """``out[rows[row], index] = True`` for every known entry of a non-null list."""
        ok = (self.row >= 0) & (self.index >= 0)
        out[rows[self.row[ok]], self.index[ok]] = True


def list_positions(column: pa.Array, value_set: pa.Array) -> ListPositions:
    """Where each entry of a ``list<string>`` array falls in ``value_set``."""
    if len(column) == 0:
        empty = np.zeros(0, np.int64)
        return ListPositions(empty, empty)
    entry_rows, first, last = _entry_rows(column)
    index = positions_in(column.values.slice(first, last - first), value_set)
    return ListPositions(entry_rows, index)


def scatter_aligned(
    probs: pa.Array, positions: ListPositions, out: np.ndarray, rows: np.ndarray
) -> None:
    """``action_probs`` lists, aligned entry by entry with the lists that gave ``positions``
    (``possible_actions``), scattered onto the action space: rows with a list get 0 for the
    actions it leaves out; rows without one keep what ``out`` held (NaN: not logged)."""
    if len(probs) == 0 or probs.null_count == len(probs):
        return
    prob_rows, first, last = _entry_rows(probs)
    values = probs.values.slice(first, last - first).to_numpy(zero_copy_only=False)
    valid = np.asarray(probs.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    in_possible = positions.row >= 0
    possible_rows = positions.row
    prob_counts = np.bincount(prob_rows[prob_rows >= 0], minlength=len(probs))
    possible_counts = np.bincount(possible_rows[in_possible], minlength=len(probs))
    if (prob_counts[valid] != possible_counts[valid]).any():
        raise ValueError("action_probs: must be aligned with possible_actions (same length)")
    out[rows[valid]] = 0.0
    # entries of the rows with probabilities, in order, pair with their possible action
    with_probs = in_possible & valid[np.maximum(possible_rows, 0)]
    ok = with_probs & (positions.index >= 0)
    value_ok = positions.index[with_probs] >= 0
    out[rows[possible_rows[ok]], positions.index[ok]] = values[prob_rows >= 0][value_ok]
