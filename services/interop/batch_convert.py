"""One source file (or one worker's share) into parquet files, by the Arrow path where it has one.

The row path (:func:`services.interop.convert.convert`) spends about 15 µs of Python a row: a
``StepMaker.make`` call, two ``validate_event`` calls and the row builder. For the bulk formats
(RLlib JSON, CSV and parquet with a column map) the Arrow path does the same work per batch:

1. the format's column reader yields :class:`~.step_checks.Candidates` (a batch's rows as event
   columns), row-path items for what it reads row by row, and line rejects;
2. :func:`~.step_checks.valid_steps` keeps the rows that pass the contract's checks as a step
   table and sends the others through the row path, for the same rejects as ever;
3. :class:`~.episode_frames.EpisodeFrames` applies the episode rules (shared with the row path)
   and writes the timeline rows of closed episodes, batch by batch, as parquet files.

``interop.vectorized = false`` converts every format by the row path (the reference the Arrow
path is tested against).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA
from services.interop.convert import TARGET_FILE_BYTES, Converted, FileJob, convert, reader_for
from services.interop.episode_frames import EpisodeFrames
from services.interop.episodes import validated
from services.interop.rejects import RejectFile
from services.interop.source import ImportOptions, Reject, SourceItem, SourceStep
from services.interop.step_checks import Candidates, valid_steps
from services.interop.step_table import steps_of_items
from services.interop.table_files import PartitionedFiles

__all__ = ["COLUMN_READERS", "convert_file"]

#: format -> "module:reader" of its Arrow path: ``(path, sha256, options) ->
#: Iterator[Candidates | SourceItem]``.
COLUMN_READERS: dict[str, str] = {
    "rllib-json": "services.interop.rllib_json_columns:read_columns",
    "csv": "services.interop.tabular_columns:read_csv_columns",
    "parquet": "services.interop.tabular_columns:read_parquet_columns",
}

ColumnReader = Callable[[Path, str, ImportOptions], Iterator[Candidates | SourceItem]]


def convert_file(
    job: FileJob, rejects: RejectFile, progress: Callable[[int], None] | None = None
) -> Converted:
    """Convert ``job.path`` (the share ``job.options.shard`` of it) into parquet files under
    ``job.table_uri`` by the Arrow path when the format has one and ``settings.vectorized``,
    else by the row path; on any error the files written are deleted and the error raised."""
    settings = job.settings
    where = COLUMN_READERS.get(job.fmt)
    if where is None or not settings.vectorized:
        return convert(job, rejects, progress)
    module_name, attr = where.split(":")
    reader: ColumnReader = getattr(importlib.import_module(module_name), attr)
    end = job.options.end_default or reader_for(job.fmt)[1]
    files = PartitionedFiles(
        job.table_uri, TIMELINE_SCHEMA, TIMELINE_PARTITION_BY[0], TARGET_FILE_BYTES
    )
    new_ids: set[str] = set()
    written = 0

    def emit(batch: pa.RecordBatch) -> None:
        nonlocal written
        files.write(batch)
        new_ids.update(pc.unique(batch.column("episode_id")).to_pylist())
        written += batch.num_rows
        if progress is not None:
            progress(batch.num_rows)

    frames = EpisodeFrames(
        job.rule_options(end),
        processed_at_ms=job.processed_at_ms,
        reject=rejects,
        emit=emit,
    )
    try:
        _feed(reader(job.path, job.sha, job.options), frames, rejects, settings.batch_rows)
        return Converted(files.close(), written, frames.counts, new_ids)
    except BaseException:
        files.discard()
        raise


def _feed(
    items: Iterator[Candidates | SourceItem],
    frames: EpisodeFrames,
    rejects: Callable[[Reject], None],
    batch_rows: int,
) -> None:
    """Valid steps into ``frames`` in batches of about ``batch_rows``, in file order."""
    parts: list[pa.Table] = []
    singles: list[SourceStep] = []  # row-path steps, kept in order among the parts
    count = 0
    for item in items:
        if type(item) is Candidates:
            if singles:
                parts.append(steps_of_items(singles))
                singles.clear()
            table, refused = valid_steps(item)
            for reject in refused:
                rejects(reject)
            parts.append(table)
            count += table.num_rows
        elif type(item) is SourceStep:
            refused_one = validated(item)
            if refused_one is not None:
                rejects(refused_one)
                continue
            singles.append(item)
            count += 1
        else:
            assert isinstance(item, Reject)
            rejects(item)
        if count >= batch_rows:
            if singles:
                parts.append(steps_of_items(singles))
                singles.clear()
            frames.add(pa.concat_tables(parts))
            parts.clear()
            count = 0
    if singles:
        parts.append(steps_of_items(singles))
    if parts:
        frames.add(pa.concat_tables(parts))
    frames.finish()
