"""The registry's view of storage: a small filesystem abstraction with atomic operations.

The registry only needs a handful of primitives — read, list, write a file atomically, publish a
directory of files atomically under a name nobody else holds, append a line, and a lock around
read-modify-write of the pointer files. :class:`LocalStore` implements them on a local (POSIX)
directory. An object-store backend (``s3://`` and friends) can later implement the same
:class:`Store` protocol with conditional writes (``If-None-Match: *``) in place of ``rename`` and
``flock``; it is deliberately not built yet, and :func:`store_for` refuses such URIs clearly.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

__all__ = ["LocalStore", "NameTakenError", "Store", "store_for"]

_REMOTE_SCHEMES = ("s3://", "gs://", "az://", "abfss://", "http://", "https://")


class NameTakenError(FileExistsError):
    """The directory name asked for in :meth:`Store.publish_dir` already exists."""


class Store(Protocol):
    """Primitives the registry builds on; every path is relative to the store's root."""

    root: str

    def read_bytes(self, path: str) -> bytes: ...

    def exists(self, path: str) -> bool: ...

    def list_dirs(self, path: str) -> list[str]: ...

    def write_atomic(self, path: str, data: bytes) -> None: ...

    def append_line(self, path: str, line: bytes) -> None: ...

    def publish_dir(self, path: str, files: Mapping[str, bytes]) -> None: ...

    def lock(self, path: str) -> contextlib.AbstractContextManager[None]: ...

    def remove_dir(self, path: str) -> None: ...


def store_for(uri: str | os.PathLike[str]) -> Store:
    """The store behind a registry URI: a local directory today."""
    text = str(uri)
    if text.startswith(_REMOTE_SCHEMES):
        raise ValueError(
            f"registry_uri {text!r}: only local directories are supported so far "
            "(object-store registries need a Store with conditional writes)"
        )
    if text.startswith("file://"):
        text = text[len("file://") :]
    return LocalStore(text)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class LocalStore:
    """A :class:`Store` on a local directory, crash-safe through ``fsync`` and ``rename``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = str(root)
        self._root = Path(root)

    def _path(self, path: str) -> Path:
        return self._root / path

    def read_bytes(self, path: str) -> bytes:
        return self._path(path).read_bytes()

    def exists(self, path: str) -> bool:
        return self._path(path).exists()

    def list_dirs(self, path: str) -> list[str]:
        base = self._path(path)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir())

    def write_atomic(self, path: str, data: bytes) -> None:
        """Replace ``path`` with ``data``: readers see the old or the new content, never a mix."""
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            _write_synced(tmp, data)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(target.parent)

    def append_line(self, path: str, line: bytes) -> None:
        """Append one newline-terminated record with a single ``O_APPEND`` write, then fsync."""
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        record = line.rstrip(b"\n") + b"\n"
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, record)
            os.fsync(fd)
        finally:
            os.close(fd)

    def publish_dir(self, path: str, files: Mapping[str, bytes]) -> None:
        """Make directory ``path`` appear with all ``files`` at once, or raise NameTakenError.

        The files are written and fsynced in a hidden temporary directory beside the target,
        which is then renamed onto ``path``. ``rename`` of a directory fails when the target
        exists and is not empty — published directories never are — so the rename is both the
        atomic publication and the lock on the name when two publishers race for it.
        """
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            for name, data in files.items():
                _write_synced(tmp / name, data)
            _fsync_dir(tmp)
            if target.exists():
                raise NameTakenError(f"{target} already exists")
            try:
                os.rename(tmp, target)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise NameTakenError(f"{target} already exists") from None
                raise
            _fsync_dir(target.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def remove_dir(self, path: str) -> None:
        """Make directory ``path`` disappear at once (renamed aside), then delete it."""
        target = self._path(path)
        aside = target.parent / f".removed-{target.name}-{uuid.uuid4().hex}"
        os.rename(target, aside)
        _fsync_dir(target.parent)
        shutil.rmtree(aside, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, path: str) -> Iterator[None]:
        """An exclusive inter-process lock (``flock`` on ``path``) for read-modify-write."""
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
