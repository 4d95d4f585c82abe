"""Who owns which spool directory when several processes share one ``spool_dir``.

``spool_dir`` is a root: each :class:`~services.sdk.spool.DiskSpool` (so each
``DecisionLogger``) writes its segments to a directory of its own, ``spool_dir/pid-<pid>-<hex>/``,
and holds an exclusive ``fcntl.flock`` on the ``LOCK`` file in it for as long as it is open.
These are POSIX advisory locks on an open file description: the kernel releases them when the
descriptor is closed, including when the process dies (even by SIGKILL), so a directory whose
lock can be taken has no live owner.

At start, under a short exclusive flock on ``spool_dir/.adopt.lock`` (so that two starting
processes never adopt the same directory, and a directory is never seen before its owner locked
it), a new owner adopts what no live process holds: segments left directly in ``spool_dir`` by
older versions, then every sibling directory whose ``LOCK`` it can take (its owner closed or
died), oldest first. Their segment files (and ``.ack`` files) are moved into its own directory,
renumbered in their order and before anything it writes itself, and the emptied directory is
removed. A directory whose lock another process holds is never read nor changed. The
``quarantine`` directory (``spool_quarantine``) is not a spool directory and is never adopted.

A segment is moved before its ``.ack``: a crash between the two re-sends that segment from its
start (at least once), it never skips an entry.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.sdk.spool_quarantine import QUARANTINE_DIR

__all__ = ["LOCK_NAME", "SpoolOwnership", "claim_spool_dir"]

log = logging.getLogger(__name__)

LOCK_NAME = "LOCK"
_ADOPT_LOCK = ".adopt.lock"


def _segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob("seg-*.spool"):
        try:
            found.append((int(path.stem.removeprefix("seg-")), path))
        except ValueError:
            continue
    return sorted(found)


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or ``None`` if a live process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


class SpoolOwnership:
    """This process's own directory under a spool root, locked until :meth:`release`."""

    def __init__(self, root: Path, directory: Path, lock_fd: int) -> None:
        self.root = root
        self.directory = directory
        self._lock_fd: int | None = lock_fd

    def release(self, remove: bool = False) -> None:
        """Drop the lock; what the directory still holds is left for the next owner.

        ``remove``: the spool is empty, remove the directory (under the adoption lock, so that
        no starting process is looking at it meanwhile).
        """
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            if remove and not _segments(self.directory):
                with _adoption_lock(self.root):
                    _remove_dir(self.directory)
        finally:
            os.close(fd)

    def __del__(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)


@contextmanager
def _adoption_lock(root: Path) -> Iterator[None]:
    fd = os.open(root / _ADOPT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def claim_spool_dir(root: str | os.PathLike[str], first_seq: int) -> SpoolOwnership:
    """Create and lock a directory of this process's own under ``root``; adopt the orphans.

    Adopted segments are renumbered from ``first_seq`` up, in the order they are to be sent.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with _adoption_lock(root):
        directory = root / f"pid-{os.getpid()}-{secrets.token_hex(4)}"
        directory.mkdir()
        lock_fd = _try_lock(directory / LOCK_NAME)
        if lock_fd is None:  # pragma: no cover - a fresh directory nobody else knows
            raise RuntimeError(f"cannot lock the new spool directory {directory}")
        owner = SpoolOwnership(root, directory, lock_fd)
        try:
            _adopt(root, directory, first_seq)
        except BaseException:
            owner.release()
            raise
        return owner


def _adopt(root: Path, directory: Path, first_seq: int) -> None:
    seq = first_seq
    seq = _move_segments(root, directory, seq)  # legacy: written directly in the root
    orphans: list[tuple[float, Path, int]] = []
    for sibling in root.iterdir():
        if sibling == directory or sibling.name.startswith(".") or not sibling.is_dir():
            continue
        if sibling.name == QUARANTINE_DIR:
            continue
        fd = _try_lock(sibling / LOCK_NAME)
        if fd is None:
            continue  # a live owner: never touched
        found = _segments(sibling)
        oldest = min((p.stat().st_mtime for _, p in found), default=sibling.stat().st_mtime)
        orphans.append((oldest, sibling, fd))
    for _, sibling, fd in sorted(orphans, key=lambda o: (o[0], o[1].name)):
        try:
            seq = _move_segments(sibling, directory, seq)
            _remove_dir(sibling)
        finally:
            os.close(fd)
    if seq != first_seq:
        log.info("spool %s: adopted %d segments left by earlier loggers", root, seq - first_seq)


def _move_segments(source: Path, directory: Path, seq: int) -> int:
    for _, path in _segments(source):
        target = directory / f"seg-{seq:016d}.spool"
        os.replace(path, target)  # the segment first, then its ack (see the module docstring)
        ack = path.with_suffix(".ack")
        if ack.exists():
            os.replace(ack, target.with_suffix(".ack"))
        seq += 1
    return seq


def _remove_dir(directory: Path) -> None:
    for path in directory.iterdir():
        if path.name == LOCK_NAME or path.suffix == ".ack":
            path.unlink(missing_ok=True)  # an .ack without its segment is stale
    try:
        directory.rmdir()
    except OSError as exc:
        log.warning("spool directory %s adopted but not removed: %s", directory, exc)
