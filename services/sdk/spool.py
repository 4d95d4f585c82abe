"""The local disk spool: where batches wait while the broker cannot take them.

Append-only segment files ``seg-<seq>.spool`` in a directory of this spool's own under
``spool_dir`` (locked while the spool is open, so that processes sharing ``spool_dir`` never
read, send or delete each other's segments; orphaned directories are adopted at start: see
:mod:`services.sdk.spool_owner`), each a sequence of entries::

    >i partition | >I events | >I length | >I crc32(record) | record bytes (msgpack batch)

Only bytes and integers are stored: reading a spool never executes anything (no pickle). Entries
are read back in the order they were appended (segments by sequence number), and a segment is
deleted once every entry in it has been read and committed (acknowledged by the broker). The
committed offset of the segment being replayed is kept in ``seg-<seq>.ack`` so that a restart
resumes after the last acknowledged entry instead of re-sending the whole segment; an entry
sent but not yet acknowledged when the process dies is sent again (at least once).

A torn entry at the end of a segment (the process died mid-write) fails its length or CRC check;
it and anything after it in that segment are skipped with an error log: they were never
acknowledged to anyone as durable because the fsync after the write had not happened.

Not thread-safe: the sender thread is its only user.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from services.sdk.batch_records import BatchRecord
from services.sdk.errors import SpoolFullError
from services.sdk.spool_owner import claim_spool_dir

__all__ = ["DiskSpool", "SpoolEntry"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">iIII")
_FIRST_SEQ = 10**12  # room below for segments written in front of older ones (prepend)
_MAX_RECORD = 64 << 20


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled record: where it lies (for commit) and what it holds."""

    segment: int
    end_offset: int
    batch: BatchRecord


def _entry_bytes(batch: BatchRecord) -> bytes:
    """One entry as written: header (partition, events, length, CRC), then the record."""
    value = batch.value
    return _HEADER.pack(batch.partition, batch.n_events, len(value), zlib.crc32(value)) + value


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int  # bytes on disk (valid entries only for a segment found at open)
    committed: int  # offset up to which entries are acknowledged
    unread_entries: int = 0
    unread_events: int = 0


class DiskSpool:
    """FIFO of :class:`BatchRecord` entries on disk, bounded by ``max_bytes``.

    ``directory`` is the shared spool root (``spool_dir``); opening the spool claims and locks
    ``own_directory`` under it and adopts what closed or dead owners left there, so a spool
    opened after a logger closed holds (and counts) what that logger left.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int,
        segment_bytes: int = 64 << 20,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self._owner = claim_spool_dir(self.directory, _FIRST_SEQ)
        self.own_directory = self._owner.directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._fsync = fsync
        self._segments: list[_Segment] = []
        self._writer: BinaryIO | None = None
        self._writer_seg: _Segment | None = None
        self._reader: BinaryIO | None = None
        self._reader_seg: _Segment | None = None
        self._read_offset = 0
        self._outstanding = 0  # entries read and not yet committed
        self._dirty = False
        self._load()

    # -- state -------------------------------------------------------------------------------
    @property
    def unread_events(self) -> int:
        return sum(s.unread_events for s in self._segments)

    @property
    def unread_entries(self) -> int:
        return sum(s.unread_entries for s in self._segments)

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def has_unread(self) -> bool:
        return any(s.unread_entries for s in self._segments)

    def is_empty(self) -> bool:
        """Nothing unread and nothing read-but-uncommitted."""
        return self._outstanding == 0 and not self.has_unread()

    # -- opening -----------------------------------------------------------------------------
    def _load(self) -> None:
        for path in self.own_directory.glob("seg-*.spool"):
            try:
                seq = int(path.stem.removeprefix("seg-"))
            except ValueError:
                continue
            self._segments.append(self._scan(seq, path))
        self._segments.sort(key=lambda s: s.seq)
        for seg in list(self._segments):
            if seg.unread_entries == 0:
                self._delete(seg)
        if self._segments:
            log.info(
                "spool %s holds %d events from a previous run; they are sent first",
                self.directory,
                self.unread_events,
            )

    def _scan(self, seq: int, path: Path) -> _Segment:
        committed = 0
        ack = path.with_suffix(".ack")
        if ack.exists():
            try:
                committed = int(ack.read_text().strip() or 0)
            except ValueError:
                committed = 0
        seg = _Segment(seq, path, size=0, committed=committed)
        size = path.stat().st_size
        offset = 0
        with path.open("rb") as fh:
            while offset + _HEADER.size <= size:
                fh.seek(offset)
                _partition, n_events, length, _crc = _HEADER.unpack(fh.read(_HEADER.size))
                end = offset + _HEADER.size + length
                if length > _MAX_RECORD or end > size:
                    break
                if offset >= committed:
                    seg.unread_entries += 1
                    seg.unread_events += n_events
                offset = end
        if offset < size:
            log.error(
                "spool segment %s has a torn entry at byte %d of %d (the process died while "
                "writing it); it and what follows in this segment are skipped",
                path,
                offset,
                size,
            )
        seg.size = offset
        seg.committed = min(committed, offset)
        return seg

    # -- writing -----------------------------------------------------------------------------
    def _next_seq(self) -> int:
        return self._segments[-1].seq + 1 if self._segments else _FIRST_SEQ

    def _open_writer(self, seq: int) -> _Segment:
        path = self.own_directory / f"seg-{seq:016d}.spool"
        seg = _Segment(seq, path, size=0, committed=0)
        self._writer = path.open("ab")
        self._writer_seg = seg
        return seg

    def append(self, batch: BatchRecord) -> None:
        """Add an entry at the end. Raises :class:`SpoolFullError` past ``max_bytes``."""
        size = _HEADER.size + len(batch.value)
        if self.bytes + size > self.max_bytes:
            raise SpoolFullError(
                f"the disk spool {self.directory} holds {self.bytes} bytes and this batch of "
                f"{batch.n_events} events needs {size} more, over "
                f"spool_max_bytes={self.max_bytes}: "
                "raise sdk.spool_max_bytes or restore the broker connection"
            )
        seg = self._writer_seg
        if seg is None or seg.size >= self.segment_bytes:
            self._close_writer()
            seg = self._open_writer(self._next_seq())
            self._segments.append(seg)
        assert self._writer is not None
        self._writer.write(_entry_bytes(batch))
        seg.size += size
        seg.unread_entries += 1
        seg.unread_events += batch.n_events
        self._dirty = True

    def prepend(self, entries: list[BatchRecord]) -> None:
        """Write entries to be read before everything else, in the order given.

        For records that were handed to Kafka but not acknowledged when the logger stops: they
        are older than anything in the spool. Call only when no read entry is outstanding.
        """
        if not entries:
            return
        if self._outstanding:
            self.rewind()  # outstanding entries are newer than these: read them again after
        self._close_reader()
        seq = (self._segments[0].seq - 1) if self._segments else _FIRST_SEQ
        path = self.own_directory / f"seg-{seq:016d}.spool"
        seg = _Segment(seq, path, size=0, committed=0)
        with path.open("wb") as fh:
            for batch in entries:
                fh.write(_entry_bytes(batch))
                seg.size += _HEADER.size + len(batch.value)
                seg.unread_entries += 1
                seg.unread_events += batch.n_events
            fh.flush()
            if self._fsync:
                os.fsync(fh.fileno())
        self._segments.insert(0, seg)

    def sync(self) -> None:
        """Flush and (if configured) fsync what was appended since the last sync."""
        if self._dirty and self._writer is not None:
            self._writer.flush()
            if self._fsync:
                os.fsync(self._writer.fileno())
            self._dirty = False

    def _close_writer(self) -> None:
        if self._writer is not None:
            self.sync()
            self._writer.close()
            self._writer = None
            self._writer_seg = None

    # -- reading -----------------------------------------------------------------------------
    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None
        self._reader_seg = None

    def read_next(self) -> SpoolEntry | None:
        """The oldest unread entry (it stays on disk until :meth:`commit`), or ``None``."""
        for seg in self._segments:
            if seg.unread_entries:
                break
        else:
            return None
        if seg is not self._reader_seg:
            self._close_reader()
            self._reader = seg.path.open("rb")
            self._reader_seg = seg
            # Reads are sequential and we never return to a segment once left, so the first
            # unread entry of a newly opened segment starts at its committed offset.
            self._read_offset = seg.committed
        if seg is self._writer_seg and self._dirty:
            assert self._writer is not None
            self._writer.flush()
        assert self._reader is not None
        self._reader.seek(self._read_offset)
        header = self._reader.read(_HEADER.size)
        partition, n_events, length, crc = _HEADER.unpack(header)
        record = self._reader.read(length)
        if len(record) != length or zlib.crc32(record) != crc:
            log.error(
                "spool segment %s: entry at byte %d fails its CRC check; skipping the rest of "
                "this segment (%d entries, %d events)",
                seg.path,
                self._read_offset,
                seg.unread_entries,
                seg.unread_events,
            )
            seg.unread_entries = 0
            seg.unread_events = 0
            seg.size = self._read_offset
            self._maybe_delete(seg)
            return self.read_next()
        self._read_offset += _HEADER.size + length
        seg.unread_entries -= 1
        seg.unread_events -= n_events
        self._outstanding += 1
        return SpoolEntry(seg.seq, self._read_offset, BatchRecord(partition, record, n_events))

    def unread(self, entry: SpoolEntry) -> None:
        """Undo the last :meth:`read_next` (the record could not be handed to Kafka)."""
        seg = self._reader_seg
        if seg is None or seg.seq != entry.segment or entry.end_offset != self._read_offset:
            raise RuntimeError("only the entry read last can be put back")
        self._read_offset -= _HEADER.size + len(entry.batch.value)
        seg.unread_entries += 1
        seg.unread_events += entry.batch.n_events
        self._outstanding -= 1

    def rewind(self) -> None:
        """Forget what was read and not committed: it is read again, in order."""
        if self._dirty and self._writer is not None:
            self._writer.flush()
        self._close_reader()
        self._outstanding = 0
        for seg in self._segments:
            seg.unread_entries = 0
            seg.unread_events = 0
            with seg.path.open("rb") as fh:
                offset = seg.committed
                while offset + _HEADER.size <= seg.size:
                    fh.seek(offset)
                    _p, n_events, length, _c = _HEADER.unpack(fh.read(_HEADER.size))
                    seg.unread_entries += 1
                    seg.unread_events += n_events
                    offset += _HEADER.size + length

    def commit(self, entry: SpoolEntry) -> None:
        """The broker acknowledged ``entry``: remember it, delete finished segments."""
        self._outstanding -= 1
        for seg in self._segments:
            if seg.seq == entry.segment:
                break
        else:
            return
        seg.committed = entry.end_offset
        if not self._maybe_delete(seg):
            seg.path.with_suffix(".ack").write_text(str(seg.committed))

    def _maybe_delete(self, seg: _Segment) -> bool:
        if seg.unread_entries or seg.committed < seg.size:
            return False
        if seg is self._writer_seg:
            self._close_writer()
        self._delete(seg)
        return True

    def _delete(self, seg: _Segment) -> None:
        if seg is self._reader_seg:
            self._close_reader()
        seg.path.unlink(missing_ok=True)
        seg.path.with_suffix(".ack").unlink(missing_ok=True)
        self._segments.remove(seg)

    def close(self) -> None:
        """Close the files and release the directory (removed if it holds nothing)."""
        self._close_writer()
        self._close_reader()
        self._owner.release(remove=not self._segments)
