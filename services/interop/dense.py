"""Sparse state maps as dense arrays, and the action space, for export and score.

The learner has its own densifier (``learner/data``), but this part must not import the
learner (what runs next to production never does, ``pyproject.toml``), so this is a small one
built on pyarrow's map kernels. The conventions are the learner's: features are the sorted
names, actions are sorted numerically when every one is an integer, else as text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["action_space", "densify", "feature_names", "sort_actions"]


_ENTRIES = pa.list_(pa.struct([("key", pa.string()), ("value", pa.float64())]))


def _entries(chunk: pa.Array) -> pa.Array:
    """The (key, value) entries of a map chunk's rows, slices respected (``MapArray.keys``
    ignores a slice's offset; the cast to a list of structs does not)."""
    flat: pa.Array = chunk.cast(_ENTRIES).flatten()
    return flat


def _chunks(column: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def feature_names(*columns: pa.ChunkedArray | pa.Array) -> list[str]:
    """The sorted names used in the ``map<string, double>`` columns."""
    names: set[str] = set()
    for column in columns:
        for chunk in _chunks(column):
            names.update(pc.unique(_entries(chunk).field("key")).to_pylist())
    names.discard(None)
    return sorted(names)


def densify(
    column: pa.ChunkedArray | pa.Array, names: list[str], dtype: type = np.float64
) -> np.ndarray:
    """An ``(n, len(names))`` array of the map column; absent features and null maps are NaN."""
    out: np.ndarray = np.full((len(column), len(names)), np.nan, dtype=dtype)
    value_set = pa.array(names, pa.string())
    start = 0
    for chunk in _chunks(column):
        entries = _entries(chunk)
        lengths = np.diff(chunk.offsets.to_numpy())
        rows = np.repeat(np.arange(start, start + len(chunk)), lengths)
        index = pc.index_in(entries.field("key"), value_set=value_set)
        values = entries.field("value").to_numpy(zero_copy_only=False)
        known = index.is_valid().to_numpy(zero_copy_only=False)
        columns = index.fill_null(0).to_numpy()
        out[rows[known], columns[known]] = values[known]
        start += len(chunk)
    return out


def sort_actions(actions: list[str]) -> list[str]:
    """Numerically when every action is an integer's text, else as text."""
    try:
        return sorted(actions, key=int)
    except ValueError:
        return sorted(actions)


def action_space(possible: pa.ChunkedArray | pa.Array) -> list[str]:
    """The sorted distinct actions of a ``possible_actions`` column."""
    found: set[str] = set()
    for chunk in _chunks(possible):
        found.update(pc.unique(pc.list_flatten(chunk)).to_pylist())
    found.discard(None)
    return sort_actions(list(found))
