"""Reading the ``timeline`` Delta table at a pinned version, with an optional window.

A learner run must be reproducible and auditable: it reads one table version (the newest when
none is given) and records that version in its outputs, so the same run can be replayed later
even though the sessionizer keeps appending. :func:`load_timeline` holds the whole window in
memory (for tools and tests); a learner run reads with :func:`learner.data.read_logged`, which
applies the same windows batch by batch.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from learner.data.files import pin_table
from learner.data.selection import newest_whole_episodes
from schemas.tables import TIMELINE_SCHEMA
from services.delta_tables import read_table

__all__ = ["TimelineSnapshot", "load_timeline"]


@dataclass(frozen=True)
class TimelineSnapshot:
    """The rows a run trains and evaluates on, and where they came from."""

    table: pa.Table
    uri: str
    version: int

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    @property
    def episodes(self) -> int:
        return len(pc.unique(self.table.column("episode_id"))) if self.table.num_rows else 0


def load_timeline(
    uri: str | os.PathLike[str],
    version: int | None = None,
    window_days: int | None = None,
    window_rows: int | None = None,
) -> TimelineSnapshot:
    """Read the timeline table at ``version`` (default: newest), restricted to a window.

    ``window_days=N`` keeps the rows whose ``ds`` is within the last N days of the newest ``ds``
    in the table (a partition filter, so old partitions are not read). ``window_rows=N`` keeps
    whole episodes, newest first (by their last decision time), while the total stays within N
    rows (always at least one episode), so sequential estimators never see an episode without
    its beginning. Both windows may be combined; days are applied first.
    """
    if window_days is not None and window_days < 1:
        raise ValueError(f"window_days={window_days}: must be at least 1")
    if window_rows is not None and window_rows < 1:
        raise ValueError(f"window_rows={window_rows}: must be at least 1")
    delta = pin_table(uri, version)
    pinned = delta.version()
    ds_filter = None
    if window_days is not None:
        all_ds = read_table(delta, TIMELINE_SCHEMA, columns=["ds"]).column("ds")
        if len(all_ds):
            newest_ds = dt.date.fromisoformat(pc.max(all_ds).as_py())
            cutoff = (newest_ds - dt.timedelta(days=window_days - 1)).isoformat()
            ds_filter = pc.field("ds") >= cutoff
    table = read_table(delta, TIMELINE_SCHEMA, filter=ds_filter)
    if window_rows is not None and table.num_rows > window_rows:
        table = _newest_whole_episodes(table, window_rows)
    return TimelineSnapshot(table=table, uri=str(uri), version=pinned)


def _newest_whole_episodes(table: pa.Table, max_rows: int) -> pa.Table:
    """Whole episodes, newest (by last ``ts``) first, while their rows fit in ``max_rows``."""
    grouped = table.group_by("episode_id").aggregate([("ts", "max"), ("ts", "count")])
    keep = newest_whole_episodes(
        grouped.column("episode_id").combine_chunks(),
        grouped.column("ts_max").cast(pa.int64()).to_numpy(),
        grouped.column("ts_count").to_numpy(),
        max_rows,
    )
    kept = grouped.column("episode_id").filter(pa.array(keep))
    return table.filter(pc.is_in(table.column("episode_id"), value_set=kept.combine_chunks()))
