"""The parquet files of a pinned timeline version, scanned in small batches of chosen columns.

A learner run reads one Delta version (reproducible, auditable) and must never hold the table
whole: a million rows of six features are 360 MB in Arrow, several times the dense arrays the
run needs. So the files are read one after another with ``pyarrow.parquet``, a few columns and
a few thousand rows at a time. Not through ``pyarrow.dataset``'s scanner: it decodes a whole
row group per column before slicing it into batches (a row group of wide maps is hundreds of
MB); ``ParquetFile.iter_batches`` without pre-buffering decodes only the batch's pages. A batch
is also kept under :data:`MAX_BATCH_ENTRIES` map and list entries, from the files' metadata,
so that a wide ``state`` map makes batches fewer rows, not larger.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable

from schemas.tables import TIMELINE_SCHEMA
from services.delta_tables import open_table

__all__ = [
    "MAX_BATCH_ENTRIES",
    "PinnedFiles",
    "ScannedBatch",
    "pin_table",
    "pinned_files",
    "scan",
]

#: Map and list entries per batch: about 25 MB of ``map<string, double>`` in Arrow.
MAX_BATCH_ENTRIES = 1 << 20
#: The read buffer of a file: only the pages of the current batch are read from storage.
_BUFFER_BYTES = 1 << 20


def pin_table(uri: str | os.PathLike[str], version: int | None) -> DeltaTable:
    """The timeline Delta table at ``version`` (default: its newest)."""
    if version is not None and version < 0:
        raise ValueError(f"version={version}: must be a non-negative table version")
    delta = open_table(uri)
    if delta is None:
        raise FileNotFoundError(f"timeline table {uri!s}: no Delta table there")
    if version is not None:
        newest = delta.version()
        if version > newest:
            raise ValueError(f"version={version}: the table's newest version is {newest}")
        delta.load_as_version(version)
    return delta


@dataclass(frozen=True)
class PinnedFiles:
    """The files of one table version in the window, in the order every pass reads them."""

    uri: str
    version: int
    paths: list[str]
    filesystem: pafs.FileSystem

    @property
    def name(self) -> str:
        """The table as errors name it."""
        return f"{self.uri} (version {self.version})"


def pinned_files(
    uri: str | os.PathLike[str], version: int | None, window_days: int | None
) -> PinnedFiles:
    """The files of the table at ``version`` whose ``ds`` is within the last ``window_days``
    days of the newest ``ds`` (a partition filter: files outside it are never opened)."""
    if window_days is not None and window_days < 1:
        raise ValueError(f"window_days={window_days}: must be at least 1")
    delta = pin_table(uri, version)
    pinned = delta.version()
    file_uris = delta.file_uris()
    if not file_uris:
        return PinnedFiles(str(uri), pinned, [], pafs.LocalFileSystem())
    partition_cols = delta.metadata().partition_columns
    partitioning = None
    if partition_cols:
        partitioning = pads.partitioning(
            pa.schema([TIMELINE_SCHEMA.field(c) for c in partition_cols]), flavor="hive"
        )
    dataset = pads.dataset(
        file_uris, schema=TIMELINE_SCHEMA, format="parquet", partitioning=partitioning
    )
    fragments = list(dataset.get_fragments())
    if window_days is not None and "ds" in partition_cols:
        days = [pads.get_partition_keys(f.partition_expression).get("ds") for f in fragments]
        known = [d for d in days if d is not None]
        if known:
            newest = dt.date.fromisoformat(max(known))
            cutoff = (newest - dt.timedelta(days=window_days - 1)).isoformat()
            fragments = [f for f, d in zip(fragments, days, strict=True) if d and d >= cutoff]
    return PinnedFiles(str(uri), pinned, [f.path for f in fragments], dataset.filesystem)


@dataclass(frozen=True)
class ScannedBatch:
    """Rows ``[offset, offset + len(batch))`` of the scan, the same rows in every pass."""

    offset: int
    batch: pa.RecordBatch


def scan(files: PinnedFiles, columns: Sequence[str], batch_rows: int) -> Iterator[ScannedBatch]:
    """The files' rows in file order, ``columns`` only (those a file lacks are left out), in
    batches of at most ``batch_rows`` rows and about :data:`MAX_BATCH_ENTRIES` entries."""
    offset = 0
    pool = pa.default_memory_pool()
    for path in files.paths:
        with files.filesystem.open_input_file(path) as source:
            parquet = pq.ParquetFile(source, pre_buffer=False, buffer_size=_BUFFER_BYTES)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            rows = _rows_per_batch(parquet.metadata, present, batch_rows)
            for batch in parquet.iter_batches(batch_size=rows, columns=present, use_threads=False):
                yield ScannedBatch(offset, batch)
                offset += batch.num_rows
                del batch
                # Arrow's allocator keeps freed pages for reuse; handed back, they do not add
                # to the peak beside the arrays the batch was scattered into (under 1 us)
                pool.release_unused()


def _rows_per_batch(metadata: pq.FileMetaData, columns: Sequence[str], batch_rows: int) -> int:
    """``batch_rows``, fewer when the nested columns average many entries per row."""
    entries = 0.0
    prefixes = tuple(f"{c}." for c in columns)
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        if group.num_rows == 0:
            continue
        per_column: dict[str, int] = {}
        for j in range(group.num_columns):
            chunk = group.column(j)
            path = chunk.path_in_schema
            if path.startswith(prefixes):
                top = path.split(".", 1)[0]
                per_column[top] = max(per_column.get(top, 0), chunk.num_values)
        entries = max(entries, sum(per_column.values()) / group.num_rows)
    if entries <= 0:
        return batch_rows
    return max(1, min(batch_rows, math.floor(MAX_BATCH_ENTRIES / entries)))
