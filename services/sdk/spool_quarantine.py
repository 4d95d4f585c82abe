"""Where the spool moves entries it cannot send: one quarantine file per spool owner.

Why: an entry that fails its CRC, cannot be decoded or can never be delivered must neither be
retried forever (it would block every entry behind it, and ``flush()`` with them) nor vanish.
It is copied here, with why, and then skipped; an operator can inspect or replay it.

Location: ``<spool_dir>/quarantine/<owner directory name>.quarantine``, e.g.
``.policyloop/spool/quarantine/pid-4242-9f1c2a3b.quarantine``. The ``quarantine`` directory is
never adopted as a spool directory (``spool_owner``) and nothing in the SDK deletes it.

File format: a sequence of items, each one line of JSON (UTF-8) followed by exactly ``bytes``
raw bytes::

    {"reason": "corrupt", "detail": "...", "segment": "seg-0001000000000000.spool",
     "offset": 8, "partition": 3, "events": 120, "content": "entry", "bytes": 5120,
     "time": "2025-01-01T00:00:00Z"}\\n<5120 bytes>

``content`` says what the bytes are: ``entry`` (the bytes as found in the segment, header
included, for damaged entries) or ``record`` (the record value, a MessagePack batch, of an entry
that was intact but could not be decoded or delivered; ``partition`` and ``events`` then come
from its header). ``partition`` and ``events`` are ``null`` when the header itself is damaged.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["QUARANTINE_DIR", "QuarantineFile", "QuarantineItem", "read_quarantine"]

QUARANTINE_DIR = "quarantine"


class QuarantineItem(NamedTuple):
    """One quarantined entry: why, where it was, and its bytes (see the module docstring)."""

    reason: str
    detail: str
    segment: str
    offset: int
    partition: int | None
    events: int | None
    content: str
    data: bytes


class QuarantineFile:
    """Appends :class:`QuarantineItem` to ``<root>/quarantine/<name>.quarantine``.

    The file is created on the first item, so a spool without trouble leaves nothing behind.
    """

    def __init__(self, root: Path, name: str, fsync: bool = True) -> None:
        self.path = root / QUARANTINE_DIR / f"{name}.quarantine"
        self._fsync = fsync

    def put(self, item: QuarantineItem) -> None:
        """Append ``item`` and make it durable. Raises ``OSError`` if it cannot be written."""
        meta: dict[str, Any] = item._asdict()
        meta.pop("data")
        meta["bytes"] = len(item.data)
        meta["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = json.dumps(meta, sort_keys=True).encode("utf-8") + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                _write_all(fd, line + item.data)
                if self._fsync:
                    os.fsync(fd)
            except OSError:
                os.ftruncate(fd, start)  # never leave half an item: the file stays readable
                raise
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_quarantine(path: str | os.PathLike[str]) -> list[QuarantineItem]:
    """Every item of a quarantine file, in the order they were quarantined."""
    items = []
    with open(path, "rb") as fh:
        while line := fh.readline():
            meta = json.loads(line)
            data = fh.read(meta["bytes"])
            if len(data) != meta["bytes"]:
                raise ValueError(f"{path}: the last item is cut short ({len(data)} bytes)")
            items.append(
                QuarantineItem(
                    meta["reason"],
                    meta["detail"],
                    meta["segment"],
                    meta["offset"],
                    meta["partition"],
                    meta["events"],
                    meta["content"],
                    data,
                )
            )
    return items
