"""Import workers: one file converted by several processes, committed once by the importer.

Why processes: converting a row is Python work on the live contract (validate the events, build
the row with the sessionizer's builder, about 15 µs a row on this machine), so one process
imports about 50,000 rows/s. Each worker reads the whole file but converts only the episodes
whose id hashes to its share (:class:`~services.interop.source.Shard`: all steps of an episode
go to one worker, so the episode rules hold), writes its own parquet files and reject part, and
sends back what it wrote; the importer merges the reject parts and commits every worker's
files in one Delta commit, so a file is still imported entirely or not at all.

Workers are started with ``spawn`` (forking a process that holds delta-rs's runtime threads is
unsafe). A worker whose importer dies stops at its next batch; a failed worker stops the
others, and everything written is deleted. The messages between them go through
multiprocessing's queue, which pickles: they are objects this code builds (file lists, counts,
episode ids as text), never bytes of a source, so no source content is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.interop.batch_convert import convert_file
from services.interop.convert import Converted, FileJob
from services.interop.episodes import EpisodeCounts
from services.interop.rejects import RejectFile
from services.interop.source import ImportFormatError, Shard
from services.interop.table_files import FileAdded, PartitionedFiles

__all__ = ["convert_in_workers"]


def _share(episode: str, count: int) -> int:
    return zlib.crc32(episode.encode("utf-8", "surrogatepass")) % count


def _work(index: int, count: int, job: FileJob, messages: Any) -> None:
    """Worker ``index`` of ``count``: convert its share of ``job`` (whose ``existing`` is
    already its share of the table's episodes) and send back what it wrote."""
    parent = os.getppid()
    rejects = RejectFile(job.settings.rejects_dir, str(job.path), job.sha, part=index)

    def progress(rows: int) -> None:
        if os.getppid() != parent:  # the importer died: nothing of this will be committed
            os._exit(1)
        messages.put(("rows", index, rows))

    try:
        share = dataclasses.replace(job.options, shard=Shard(index, count))
        converted = convert_file(dataclasses.replace(job, options=share), rejects, progress)
        sealed = rejects.seal()
        messages.put(("done", index, (converted, dict(rejects.by_reason), sealed)))
    except ImportFormatError as exc:
        rejects.discard()
        messages.put(("format", index, str(exc)))
    except BaseException:
        rejects.discard()
        messages.put(("crash", index, traceback.format_exc()))


def convert_in_workers(
    count: int, job: FileJob, rejects: RejectFile, progress: Callable[[int], None] | None
) -> Converted:
    """Convert ``job.path`` in ``count`` worker processes; the rejects go to ``rejects``."""
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    shares: list[set[str]] = [set() for _ in range(count)]
    for episode in job.existing:
        shares[_share(episode, count)].add(episode)
    workers = [
        context.Process(
            target=_work,
            args=(i, count, dataclasses.replace(job, existing=shares[i]), messages),
            daemon=True,
        )
        for i in range(count)
    ]
    for worker in workers:
        worker.start()
    done: dict[int, tuple[Converted, dict[str, int], Path | None]] = {}
    failure: tuple[str, str] | None = None
    try:
        while len(done) < count and failure is None:
            try:
                kind, index, payload = messages.get(timeout=1.0)
            except queue.Empty:
                dead = [i for i, w in enumerate(workers) if not w.is_alive() and i not in done]
                if dead and messages.empty():
                    failure = ("crash", f"import worker {dead[0]} died (exit code "
                               f"{workers[dead[0]].exitcode})")  # fmt: skip
                continue
            if kind == "rows":
                if progress is not None:
                    progress(payload)
            elif kind == "done":
                done[index] = payload
            else:
                failure = (kind, payload)
    finally:
        if failure is not None or len(done) < count:
            for worker in workers:
                worker.terminate()
            cleanup = PartitionedFiles(job.table_uri, _schema(), None, 0)
            for converted, _, _part in done.values():
                cleanup.remove(converted.files)
        for worker in workers:
            worker.join()
        if failure is not None or len(done) < count:
            # after the joins: a terminated worker never ran its own discard, so its reject
            # part (sealed, or still .tmp) is removed here, every worker's alike
            for i in range(count):
                part = RejectFile(job.settings.rejects_dir, str(job.path), job.sha, part=i)
                part.discard()
                part.path.unlink(missing_ok=True)
    if failure is not None:
        kind, message = failure
        if kind == "format":
            raise ImportFormatError(message)
        raise RuntimeError(f"an import worker failed:\n{message}")
    return _merge([done[i] for i in range(count)], rejects)


def _schema() -> Any:
    from schemas.tables import TIMELINE_SCHEMA

    return TIMELINE_SCHEMA


def _merge(
    results: list[tuple[Converted, dict[str, int], Path | None]], rejects: RejectFile
) -> Converted:
    files: list[FileAdded] = []
    counts = EpisodeCounts()
    new_ids: set[str] = set()
    rows = 0
    for converted, by_reason, part in results:
        files += converted.files
        rows += converted.rows
        new_ids |= converted.new_ids
        for name in ("episodes", "ended_in_file", "closed_at_end_of_file", "closed_by_cap"):
            setattr(counts, name, getattr(counts, name) + getattr(converted.counts, name))
        if part is not None:
            rejects.absorb(part, by_reason)
    return Converted(files, rows, counts, new_ids)
