"""Episode-state checkpoints, keyed by the Delta transaction version they belong to.

Why this instead of Faust tables: a changelog topic and a Delta commit cannot be made atomic
without Kafka transactions (which the embedded broker does not offer), so after a ``kill -9`` the
state and the table could disagree. Here the worker writes partition ``p``'s state as
checkpoint number ``N`` (one more than the last committed one) to
``<state_uri>/<group>/<topic>/<p>/<N>.g<G>.msgpack`` *before* the Delta commit that records
``N`` (transaction id ``<group>:<topic>:<p>:checkpoint``) and ``G`` next to the last offset
processed. Numbers rather than offsets name checkpoints because the clock alone can close
episodes (rows without a new offset). ``G`` is the writer's generation for the partition
(``fencing.py``): a worker cut off from the broker may still number a checkpoint ``N`` after
its successor did, and the generation keeps the two names apart, so no writer ever replaces a
checkpoint that another one's commit names. Files are created only if absent (``O_EXCL``
locally; on object stores the name is the writer's alone). Whatever the moment of death:

* before the checkpoint is complete: nothing changed; the table still names the previous
  version, whose checkpoint is still there (a partial file is never named: the commit that
  would name it comes after the file is complete and synced);
* after the checkpoint, before the Delta commit: the table names the previous version; the
  new checkpoint is an orphan and is ignored (and later deleted);
* after the Delta commit: the table names ``N`` and its checkpoint exists.

So the state loaded on restart is always exactly the state that produced the table's rows up
to the recorded offset, and the worker resumes at the next offset. Older checkpoints are
deleted only after a newer one is named by a commit. MessagePack, never pickle: checkpoints
hold only plain data.

Checkpoints of tables written before generations existed carry no ``.g<G>`` in their name
(generation ``None``) and are read as such.

A checkpoint file holds either the partition's full state (a *base*) or only the changes since
the previous checkpoint, chained to a base of the same writer (``checkpoint_chain.py`` decides
which and names the base inside the file; ``checkpoint_load.py`` reads a chain back). This
store only writes, reads and deletes files: it does not look inside them.

Only a checkpoint that does not exist is "none" (the caller then resumes with empty state and
says so). One that exists but cannot be read (permission, I/O error, object-store timeout) is
read again :data:`READ_ATTEMPTS` times in all, then :class:`CheckpointUnreadableError` stops
the worker; so does one that does not decode to a state mapping: resuming with empty state
would silently drop the open episodes.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import msgpack
import pyarrow.fs as pafs

__all__ = [
    "READ_ATTEMPTS",
    "READ_RETRY_BACKOFF_S",
    "CheckpointStore",
    "CheckpointTakenError",
    "CheckpointUnreadableError",
]

#: Reads of a checkpoint that exists but fails to read, in all, before giving up.
READ_ATTEMPTS = 3
#: Seconds before the first re-read; doubled before each later one.
READ_RETRY_BACKOFF_S = 0.5


class CheckpointUnreadableError(RuntimeError):
    """A checkpoint exists (or may) but could not be read or decoded: not "no checkpoint"."""

    def __init__(self, path: str, partition: int, number: int, cause: str) -> None:
        super().__init__(
            f"state checkpoint {number} of partition {partition} at {path} is unreadable: "
            f"{cause}; refusing to resume with empty episode state"
        )
        self.path, self.partition, self.number = path, partition, number


class CheckpointTakenError(RuntimeError):
    """A checkpoint name is taken already: two writers hold one generation of a partition."""

    def __init__(self, path: str, partition: int, number: int) -> None:
        super().__init__(
            f"state checkpoint {number} of partition {partition} exists already at {path}: "
            "another writer claims the same generation of this partition; not overwriting it"
        )
        self.path, self.partition, self.number = path, partition, number


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str, bool]:
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path, isinstance(fs, pafs.LocalFileSystem)
    return pafs.LocalFileSystem(), os.path.abspath(uri), True


class CheckpointStore:
    """Saves and loads one partition's state per checkpoint number."""

    def __init__(self, state_uri: str, group: str, topic: str) -> None:
        self._fs, root, self._local = _filesystem(state_uri)
        self._root = f"{root.rstrip('/')}/{group}/{topic}"

    def _dir(self, partition: int) -> str:
        return f"{self._root}/{partition}"

    def path(self, partition: int, number: int, generation: int | None = None) -> str:
        """Where checkpoint ``number`` of ``partition`` by the writer of ``generation`` lives."""
        writer = "" if generation is None else f".g{generation}"
        return f"{self._dir(partition)}/{number:020d}{writer}.msgpack"

    def save(
        self, partition: int, number: int, state: dict[str, Any], generation: int | None = None
    ) -> int:
        """Write checkpoint ``number`` of ``partition`` by the writer of ``generation``, only if
        no such file exists (:class:`CheckpointTakenError` otherwise), synced before it
        returns. Returns the bytes written (the chain's size is judged on them)."""
        data = msgpack.packb(state, use_bin_type=True)
        final = self.path(partition, number, generation)
        self._fs.create_dir(self._dir(partition), recursive=True)
        if self._local:
            try:
                fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise CheckpointTakenError(final, partition, number) from None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        else:  # object stores make a single PUT visible atomically; the name is ours alone
            if self._exists(final):
                raise CheckpointTakenError(final, partition, number)
            with self._fs.open_output_stream(final) as out:
                out.write(data)
        return len(data)

    def load(
        self, partition: int, number: int, generation: int | None = None
    ) -> dict[str, Any] | None:
        """Checkpoint ``number`` of ``partition`` written by the writer of ``generation``, or
        ``None`` if there is no such file.

        Raises :class:`CheckpointUnreadableError` when it cannot be read after
        :data:`READ_ATTEMPTS` tries, or does not decode to a state mapping.
        """
        path = self.path(partition, number, generation)
        data = self._read(path, partition, number)
        if data is None:
            return None
        try:
            state = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CheckpointUnreadableError(
                path, partition, number, f"not valid MessagePack ({exc!r})"
            ) from exc
        if not isinstance(state, dict):
            raise CheckpointUnreadableError(
                path, partition, number, f"decodes to {type(state).__name__}, not a mapping"
            )
        return state

    def _read(self, path: str, partition: int, number: int) -> bytes | None:
        """The file's bytes, ``None`` if it does not exist; read errors are retried."""
        delay = READ_RETRY_BACKOFF_S
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                with self._fs.open_input_stream(path) as stream:
                    return bytes(stream.read())
            except FileNotFoundError:
                return None
            except OSError as exc:
                if self._missing(path):  # stores that report "not found" as a plain OSError
                    return None
                if attempt == READ_ATTEMPTS:
                    raise CheckpointUnreadableError(
                        path, partition, number, f"{exc!r} (after {attempt} attempts)"
                    ) from exc
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _missing(self, path: str) -> bool:
        """The store says ``path`` does not exist (``False`` when it cannot tell)."""
        try:
            info = self._fs.get_file_info(path)
        except OSError:
            return False
        return bool(info.type == pafs.FileType.NotFound)

    def _exists(self, path: str) -> bool:
        """The store says ``path`` exists (``False`` when it cannot tell)."""
        try:
            info = self._fs.get_file_info(path)
        except OSError:
            return False
        return bool(info.type != pafs.FileType.NotFound)

    def prune(self, partition: int, keep_from: int) -> None:
        """Delete checkpoints numbered before ``keep_from``, of every writer (and temporaries
        that older versions left). The caller passes the base of the committed checkpoint's
        chain: every file the committed checkpoint depends on is numbered from there on."""
        selector = pafs.FileSelector(self._dir(partition), allow_not_found=True)
        for info in self._fs.get_file_info(selector):
            name = info.base_name
            stem = name.split(".", 1)[0]
            if stem.isdigit() and int(stem) < keep_from:
                with contextlib.suppress(OSError):
                    self._fs.delete_file(info.path)
