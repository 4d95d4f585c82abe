"""Which scanned rows a read keeps, and the row each one is written to.

The first pass of a read looks only at the key columns (``episode_id``, ``step``; ``ts`` for
the ``window_rows`` window): a few bytes per row. From them it decides the ``window_rows``
window (whole episodes, newest first) and the order of the rows, so that the later passes can
scatter each batch straight into its final rows: no pass ever sorts or filters the table
itself. Episode ids are held once per episode (an integer code per row), not once per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from learner.data.files import ScannedBatch
from learner.data.split import SplitRule, eval_share_of

__all__ = ["KEY_COLUMNS", "RowPlan", "newest_whole_episodes", "plan_rows"]

#: What the first pass reads (and ``ts`` for a ``window_rows`` window).
KEY_COLUMNS = ("episode_id", "step")


def newest_whole_episodes(
    episode_ids: pa.Array, last_ts: np.ndarray, counts: np.ndarray, max_rows: int
) -> np.ndarray:
    """Which episodes the ``window_rows`` window keeps: whole episodes, newest (by their last
    ``ts``, ties by ``episode_id``) first, while their rows fit in ``max_rows``; at least one.

    Sequential estimators never see an episode without its beginning, hence whole episodes.
    """
    order = np.lexsort((_text_ranks(episode_ids), -np.asarray(last_ts, np.int64)))
    fits = np.cumsum(np.asarray(counts, np.int64)[order]) <= max_rows
    fits[0] = True
    # the window ends at the first episode that does not fit
    taken = len(fits) if fits.all() else int(np.argmin(fits))
    keep = np.zeros(len(order), dtype=bool)
    keep[order[:taken]] = True
    return keep


@dataclass(frozen=True)
class RowPlan:
    """Where each scanned row goes: ``destination[i]`` is the row of scanned row ``i`` in the
    dense arrays (``-1``: outside the window)."""

    destination: np.ndarray
    rows: int

    @property
    def keeps_every_row(self) -> bool:
        return self.rows == len(self.destination)


def plan_rows(
    batches: Iterable[ScannedBatch], window_rows: int | None, eval_last: SplitRule | None
) -> RowPlan:
    """The rows to keep and their order: by ``(episode_id, step)``, or with ``eval_last`` the
    train episodes first and the eval episodes after them, each side by ``(episode_id, step)``.

    Holds a few integers per row (the arrays below are freed as soon as they are used), since
    what this pass leaves in the allocator is not all reused by the dense arrays.
    """
    if window_rows is not None and window_rows < 1:
        raise ValueError(f"window_rows={window_rows}: must be at least 1")
    ids, step_chunks, stamp_chunks = [], [], []
    for scanned in batches:
        ids.append(scanned.batch.column("episode_id"))
        step_chunks.append(_integers(scanned.batch.column("step")))
        if window_rows is not None:
            stamp_chunks.append(_integers(scanned.batch.column("ts")))
    if not step_chunks:
        return RowPlan(np.zeros(0, np.int64), 0)
    step = np.concatenate(step_chunks)
    del step_chunks
    episode_ids = pa.chunked_array(ids, pa.string())
    del ids
    names = pc.unique(episode_ids)
    episode = pc.index_in(episode_ids, value_set=names).to_numpy(zero_copy_only=False)
    del episode_ids
    kept = np.ones(len(names), dtype=bool)
    if window_rows is not None and len(step) > window_rows:
        counts = np.bincount(episode, minlength=len(names))
        last_ts = np.full(len(names), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last_ts, episode, np.concatenate(stamp_chunks))
        kept = newest_whole_episodes(names, last_ts, counts, window_rows)
    del stamp_chunks
    # one sort key per episode: its side (train first), then its id
    key = _text_ranks(names)
    if eval_last is not None:
        kept_names = names.filter(pa.array(kept)).to_pylist()
        is_eval = np.zeros(len(names), dtype=bool)
        is_eval[kept] = [
            eval_share_of(e, eval_last.seed) < eval_last.eval_fraction for e in kept_names
        ]
        del kept_names
        key += is_eval * len(names)
    if kept.all():
        order = np.lexsort((step, key[episode]))
    else:
        rows = np.flatnonzero(kept[episode])
        order = rows[np.lexsort((step[rows], key[episode[rows]]))]
    scanned_rows = len(step)
    del step, episode
    destination = np.full(scanned_rows, -1, dtype=np.int64)
    destination[order] = np.arange(len(order))
    return RowPlan(destination=destination, rows=len(order))


def _text_ranks(texts: pa.Array) -> np.ndarray:
    """Each text's rank in byte order (the order Arrow and ``LoggedData.from_table`` sort by)."""
    ranks = np.empty(len(texts), dtype=np.int64)
    if len(texts):
        ranks[pc.array_sort_indices(texts).to_numpy()] = np.arange(len(texts))
    return ranks


def _integers(column: pa.Array) -> np.ndarray:
    """An integer or timestamp column as int64 (timestamps: their microseconds)."""
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
