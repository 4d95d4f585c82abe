"""One segment file of the disk spool: its bookkeeping, and the writer that appends to it.

Why separate from ``spool.py``: appending must never leave half an entry behind. Writes go
straight to the file descriptor (no Python buffer whose state after a failed flush is unclear);
a failed write (disk full, file-size limit, I/O error) cuts the file back to its last whole entry
and gives up the file, so the next append starts a new segment. That is also what lets the spool
go on under a per-file size limit (``RLIMIT_FSIZE``): a fresh segment takes what a full one
could not.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from services.sdk.batch_records import BatchRecord
from services.sdk.spool_format import CURRENT_FORMAT, SEGMENT_MAGIC, data_start, entry_header

__all__ = ["Segment", "SegmentWriter", "read_ack", "segment_path", "write_ack", "write_segment"]

log = logging.getLogger("services.sdk.spool")


def segment_path(directory: Path, seq: int) -> Path:
    return directory / f"seg-{seq:016d}.spool"


@dataclass(slots=True)
class Segment:
    """What the spool knows of one segment file.

    Every byte from ``data_start`` to ``size`` belongs to an entry or to a stretch set aside
    (``skips``: start -> end, quarantined or undeliverable); ``committed`` is where the
    acknowledged (or set-aside) prefix ends; ``outstanding_*`` count entries read and not yet
    committed, which :meth:`DiskSpool.rewind` makes unread again.
    """

    seq: int
    path: Path
    version: int
    size: int
    committed: int
    unread_entries: int = 0
    unread_events: int = 0
    outstanding_entries: int = 0
    outstanding_events: int = 0
    skips: dict[int, int] = field(default_factory=dict)

    @property
    def has_entries(self) -> bool:
        """Whether anything beyond the segment's own header was written or found."""
        return self.size > data_start(self.version)

    def mark_read(self, n_events: int) -> None:
        """An entry of ``n_events`` events was read: unread -> outstanding."""
        self.unread_entries -= 1
        self.unread_events -= n_events
        self.outstanding_entries += 1
        self.outstanding_events += n_events

    def mark_unread(self, n_events: int) -> None:
        """An entry read was put back: outstanding -> unread."""
        self.outstanding_entries -= 1
        self.outstanding_events -= n_events
        self.unread_entries += 1
        self.unread_events += n_events

    def mark_settled(self, n_events: int) -> None:
        """An outstanding entry was acknowledged or set aside."""
        self.outstanding_entries -= 1
        self.outstanding_events -= n_events

    def rewind(self) -> None:
        """Everything outstanding is unread again."""
        self.unread_entries += self.outstanding_entries
        self.unread_events += self.outstanding_events
        self.outstanding_entries = self.outstanding_events = 0

    def advance(self) -> None:
        """Move ``committed`` over set-aside stretches that now follow it directly."""
        while self.committed in self.skips:
            self.committed = self.skips.pop(self.committed)


def read_ack(path: Path) -> int:
    """The committed offset kept next to segment ``path`` (0 if none or unreadable)."""
    try:
        return int(path.with_suffix(".ack").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def write_ack(segment: Segment) -> None:
    """Persist ``segment.committed``; a failure only means a restart sends some entries again."""
    try:
        segment.path.with_suffix(".ack").write_text(str(segment.committed))
    except OSError as exc:
        log.warning(
            "cannot record spool progress in %s (%s); after a restart its acknowledged "
            "entries would be sent again (at least once)",
            segment.path.with_suffix(".ack"),
            exc,
        )


class SegmentWriter:
    """An open, append-only segment file in the current format."""

    def __init__(self, directory: Path, seq: int, fsync: bool = True) -> None:
        self._fsync = fsync
        path = segment_path(directory, seq)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(self.fd, SEGMENT_MAGIC, b"")
        except OSError:
            os.close(self.fd)
            path.unlink(missing_ok=True)
            raise
        self.segment = Segment(seq, path, CURRENT_FORMAT, len(SEGMENT_MAGIC), len(SEGMENT_MAGIC))

    def write(self, header: bytes, record: bytes) -> None:
        """Append one entry whole, or raise ``OSError`` with the file cut back as it was."""
        try:
            _write_all(self.fd, header, record)
        except OSError:
            self.abandon()
            raise

    def fsync(self) -> None:
        os.fsync(self.fd)

    def abandon(self) -> None:
        """Cut the file back to its whole entries, make them durable and close the file; an
        empty segment is removed."""
        segment = self.segment
        try:
            os.ftruncate(self.fd, segment.size)
            if self._fsync and segment.has_entries:
                os.fsync(self.fd)
        except OSError as exc:
            log.error(
                "cannot cut spool segment %s back to %d bytes (%s); the partial entry after "
                "them is quarantined as torn when the segment is read at the next start",
                segment.path,
                segment.size,
                exc,
            )
        self.close()
        if not segment.has_entries:
            segment.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def write_segment(directory: Path, seq: int, entries: list[BatchRecord], fsync: bool) -> Segment:
    """A whole new segment holding ``entries``; on ``OSError`` no file is left behind."""
    writer = SegmentWriter(directory, seq, fsync)
    seg = writer.segment
    try:
        for batch in entries:
            header = entry_header(batch.partition, batch.n_events, batch.value)
            writer.write(header, batch.value)
            seg.size += len(header) + len(batch.value)
            seg.unread_entries += 1
            seg.unread_events += batch.n_events
        if fsync:
            writer.fsync()
    except OSError:
        writer.close()
        seg.path.unlink(missing_ok=True)
        raise
    writer.close()
    return seg


def _write_all(fd: int, header: bytes, record: bytes) -> None:
    total = len(header) + len(record)
    written = os.writev(fd, (header, record))
    if written == total:
        return
    rest = memoryview(header + record)[written:]  # a short write: rare, copy only then
    while rest:
        rest = rest[os.write(fd, rest) :]
