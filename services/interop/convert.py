"""One source file (or one worker's share of it) into parquet files of timeline rows.

The loop of an import: the format's reader yields steps and rejects, the episode assembler
(:mod:`.episodes`) turns steps into rows with the live rules, rows become Arrow batches of
``batch_rows`` (``schemas.tables.rows_to_table``, the sessionizer's conversion) and parquet files
(:mod:`.table_files`). Nothing is committed here: the importer commits what every share wrote,
in one transaction.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA, rows_to_table
from services.interop.episode_rules import RuleOptions
from services.interop.episodes import EpisodeAssembler, EpisodeCounts
from services.interop.rejects import RejectFile
from services.interop.settings import InteropSettings
from services.interop.source import ImportOptions, Reject, SourceItem, SourceStep
from services.interop.table_files import FileAdded, PartitionedFiles

__all__ = ["FORMATS", "TARGET_FILE_BYTES", "Converted", "FileJob", "convert", "reader_for"]

#: format -> "module:reader"; a reader is ``(path, sha256, options) -> Iterator[SourceItem]``
#: with an attribute ``DEFAULT_END`` ("terminal"/"truncated": how an episode whose rows do not
#: say how it ended is closed).
FORMATS: dict[str, str] = {
    "rllib-json": "services.interop.rllib_json:read",
    "rllib-parquet": "services.interop.rllib_parquet:read",
    "reagent": "services.interop.reagent:read",
    "obp": "services.interop.obp:read",
    "csv": "services.interop.tabular:read_csv",
    "parquet": "services.interop.tabular:read_parquet",
}

#: Largest data file an import writes; a larger source is written as several files, each as
#: soon as it is full.
TARGET_FILE_BYTES = 64 << 20

Reader = Callable[[Path, str, ImportOptions], Iterator[SourceItem]]


def reader_for(fmt: str) -> tuple[Reader, str]:
    """The reader of ``fmt`` and its default episode end."""
    where = FORMATS.get(fmt)
    if where is None:
        raise ValueError(f"format {fmt!r}: must be one of {', '.join(FORMATS)}")
    module_name, attr = where.split(":")
    module = importlib.import_module(module_name)
    reader: Reader = getattr(module, attr)
    return reader, str(module.DEFAULT_END)


@dataclass
class Converted:
    """What one conversion wrote (files not committed yet)."""

    files: list[FileAdded]
    rows: int
    counts: EpisodeCounts
    new_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True, eq=False)
class FileJob:
    """One source file to convert, as every conversion path takes it (the row path here, the
    Arrow path of :mod:`.batch_convert`, the workers of :mod:`.workers`, which send it to each
    process with its own ``options.shard`` and ``existing`` share).

    ``existing``: the episodes the table already holds (an imported episode must not add rows
    to one of them); ``processed_at_ms``: the rows' ``processed_at``.
    """

    fmt: str
    path: Path
    sha: str
    options: ImportOptions
    settings: InteropSettings
    table_uri: str
    existing: set[str]
    processed_at_ms: int

    def rule_options(self, end: str) -> RuleOptions:
        """The episode rules' options for this file, ``end`` its default episode end."""
        return RuleOptions(
            default_end_terminal=end == "terminal",
            existing_episodes=self.existing,
            max_open_episodes=self.settings.max_open_episodes,
            closed_memory_episodes=self.settings.closed_memory_episodes,
        )


def convert(
    job: FileJob, rejects: RejectFile, progress: Callable[[int], None] | None = None
) -> Converted:
    """Convert ``job.path`` (the share ``job.options.shard`` of it) into parquet files under
    ``job.table_uri`` by the row path; on any error the files written are deleted and the
    error raised."""
    options, settings = job.options, job.settings
    reader, default_end = reader_for(job.fmt)
    end = options.end_default or default_end
    rows: list[dict[str, Any]] = []
    new_ids: set[str] = set()
    written = 0
    assembler = EpisodeAssembler(
        job.rule_options(end),
        processed_at_ms=job.processed_at_ms,
        reject=rejects,
        emit=rows.append,
    )
    files = PartitionedFiles(
        job.table_uri, TIMELINE_SCHEMA, TIMELINE_PARTITION_BY[0], TARGET_FILE_BYTES
    )

    def flush() -> pa.RecordBatch:
        nonlocal written
        batch = rows_to_table(rows).combine_chunks().to_batches()[0]
        new_ids.update(row["episode_id"] for row in rows)
        written += len(rows)
        if progress is not None:
            progress(len(rows))
        rows.clear()
        return batch

    try:
        for item in reader(job.path, job.sha, options):
            if type(item) is SourceStep:
                assembler.add(item)
                if len(rows) >= settings.batch_rows:
                    files.write(flush())
            else:
                assert isinstance(item, Reject)
                rejects(item)
        assembler.finish()
        if rows:
            files.write(flush())
        return Converted(files.close(), written, assembler.counts, new_ids)
    except BaseException:
        files.discard()
        raise
