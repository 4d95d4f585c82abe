"""``read_logged``: a pinned timeline version straight into :class:`LoggedData`, batch by batch.

A learner run's memory must be the dense arrays it trains on, not the table they come from: a
million timeline rows hold 360 MB in Arrow and took 1.7 GB to densify whole, against some 200 MB
of dense arrays. So the table is never held whole. Three passes over the same files, each a few
columns and a few thousand rows at a time (:mod:`learner.data.files`):

1. the keys of the ``state`` maps and the actions: the width of the arrays, with the caps that
   stop a timeline too wide to densify before anything is allocated
   (:mod:`learner.data.vocabulary`);
2. the key columns: which rows the window keeps and the row each goes to
   (:mod:`learner.data.selection`); with a ``window_rows`` window this pass comes first, so
   that the width is that of the rows kept;
3. every column the arrays need, each batch scattered into arrays allocated once at their final
   size (:mod:`learner.data.dense`) and dropped.

The result equals :meth:`LoggedData.from_table` of the whole table (:func:`load_timeline`), row
for row, in whatever batch size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from learner.data.dense import VALUE_COLUMNS, DenseBuilder
from learner.data.files import PinnedFiles, ScannedBatch, pinned_files, scan
from learner.data.limits import ReadLimits
from learner.data.logged import LoggedData
from learner.data.selection import KEY_COLUMNS, RowPlan, plan_rows
from learner.data.split import SplitRule
from learner.data.vocabulary import VOCABULARY_COLUMNS, VocabularyCollector

__all__ = ["LoggedWindow", "ReadStats", "read_logged"]


@dataclass
class ReadStats:
    """How the read went: batches decoded over the three passes, and the largest one."""

    batches: int = 0
    largest_batch_rows: int = 0

    def count(self, batches: Iterator[ScannedBatch]) -> Iterator[ScannedBatch]:
        for scanned in batches:
            self.batches += 1
            self.largest_batch_rows = max(self.largest_batch_rows, scanned.batch.num_rows)
            yield scanned


@dataclass(frozen=True)
class LoggedWindow:
    """The decisions a run reads, the table and version they come from, and how they were read."""

    data: LoggedData
    uri: str
    version: int
    stats: ReadStats


def read_logged(
    uri: str | os.PathLike[str],
    version: int | None = None,
    *,
    window_days: int | None = None,
    window_rows: int | None = None,
    limits: ReadLimits | None = None,
    eval_last: SplitRule | None = None,
    feature_names: Sequence[str] | None = None,
    actions: Sequence[str] | None = None,
) -> LoggedWindow:
    """The timeline at ``version`` (default: newest) in the window, densified.

    The windows are those of :func:`learner.data.load_timeline`. ``limits`` caps the width and
    sets the batch size (:class:`learner.data.ReadLimits`; a cap exceeded raises
    :class:`learner.data.TimelineTooWide`). Rows are sorted by ``(episode_id, step)``; with
    ``eval_last`` the eval episodes of that rule come after the train episodes, so that
    :func:`learner.data.split_by_episode` with the same rule returns views. ``feature_names``
    and ``actions`` fix the columns (an incumbent's), as in :meth:`LoggedData.from_table`.
    """
    limits = limits or ReadLimits()
    files = pinned_files(uri, version, window_days)
    stats = ReadStats()

    def batches(columns: Sequence[str]) -> Iterator[ScannedBatch]:
        return stats.count(scan(files, columns, limits.batch_rows))

    vocabulary = VocabularyCollector(files.name, limits, feature_names, actions)
    if window_rows is None:
        # every row is kept: the caps are checked first, so a too wide table fails at once
        for scanned in batches(VOCABULARY_COLUMNS):
            vocabulary.add(scanned.batch)
        plan = plan_rows(batches(KEY_COLUMNS), None, eval_last)
    else:
        plan = plan_rows(batches([*KEY_COLUMNS, "ts"]), window_rows, eval_last)
        for placed in _placed(batches(VOCABULARY_COLUMNS), plan):
            vocabulary.add(placed.batch)
    builder = DenseBuilder(plan.rows, vocabulary.result())
    for placed in _placed(batches(VALUE_COLUMNS), plan):
        builder.fill(placed.batch, placed.rows)
    _check_every_row_filled(files, plan, builder)
    data = builder.finish()
    return LoggedWindow(data=data, uri=str(uri), version=files.version, stats=stats)


@dataclass(frozen=True)
class _PlacedBatch:
    """A batch's rows inside the window, and the row of the dense arrays each one goes to."""

    batch: pa.RecordBatch
    rows: np.ndarray


def _placed(batches: Iterator[ScannedBatch], plan: RowPlan) -> Iterator[_PlacedBatch]:
    for scanned in batches:
        stop = scanned.offset + scanned.batch.num_rows
        rows = plan.destination[scanned.offset : stop]
        if plan.keeps_every_row or (rows >= 0).all():
            yield _PlacedBatch(scanned.batch, rows)
        elif (rows >= 0).any():
            kept = np.flatnonzero(rows >= 0)
            yield _PlacedBatch(scanned.batch.take(pa.array(kept)), rows[kept])


def _check_every_row_filled(files: PinnedFiles, plan: RowPlan, builder: DenseBuilder) -> None:
    """Every pass reads the same immutable files in the same order, so each planned row is
    filled exactly once; anything else is a bug, not bad data."""
    if builder.rows_filled != plan.rows:
        raise RuntimeError(
            f"timeline {files.name}: filled {builder.rows_filled} rows of the {plan.rows} planned"
        )
