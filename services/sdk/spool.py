"""The local disk spool: where batches wait while the broker cannot take them.

Append-only segment files ``seg-<seq>.spool`` in a directory of this spool's own under
``spool_dir`` (locked while the spool is open, so that processes sharing ``spool_dir`` never
read, send or delete each other's segments; orphaned directories are adopted at start: see
:mod:`services.sdk.spool_owner`). The byte layout of entries, with a CRC over header and record,
is in :mod:`services.sdk.spool_format`; writing one segment in :mod:`services.sdk.spool_segment`.

Entries are read back in the order they were appended (segments by sequence number), and a
segment is deleted once every entry in it has been read and committed (acknowledged by the
broker) or set aside. The committed offset of a segment is kept in ``seg-<seq>.ack`` so that a
restart resumes after the last acknowledged entry; an entry sent but not yet acknowledged when
the process dies is sent again (at least once).

Damage never blocks what follows and never vanishes: an entry that fails its checks, a torn
entry at the end of a segment (the process died mid-write), and an entry the sender cannot
deliver are copied to the quarantine file (:mod:`services.sdk.spool_quarantine`), counted in
:attr:`DiskSpool.losses` and skipped; a segment removed or cut short under the spool is counted
as lost. Failed writes raise :class:`SpoolWriteError` with nothing half-written.

Not thread-safe: the sender thread is its only user.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from services.sdk.batch_records import BatchRecord
from services.sdk.errors import SpoolFullError, SpoolReadError, SpoolWriteError
from services.sdk.spool_format import (
    MAX_HEADER_BYTES,
    data_start,
    entry_header,
    parse_header,
    record_intact,
)
from services.sdk.spool_losses import LossLedger
from services.sdk.spool_owner import claim_spool_dir
from services.sdk.spool_quarantine import QuarantineFile
from services.sdk.spool_scan import SpoolDamage
from services.sdk.spool_segment import Segment, SegmentWriter, write_ack, write_segment

__all__ = ["DiskSpool", "SpoolEntry"]

log = logging.getLogger(__name__)

_FIRST_SEQ = 10**12  # room below for segments written in front of older ones (prepend)


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled record: where it lies (for commit) and what it holds."""

    segment: int
    start_offset: int
    end_offset: int
    batch: BatchRecord


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
        #: What could not be kept: quarantined entries, removed segments (see spool_losses).
        self.losses = LossLedger()
        self.quarantine = QuarantineFile(self.directory, self.own_directory.name, fsync)
        self._damage = SpoolDamage(self.quarantine, self.losses)
        self._segments: list[Segment] = []
        self._writer: SegmentWriter | None = None
        self._reader_fd = -1
        self._reader_seg: Segment | None = None
        self._read_offset = 0
        self._outstanding = 0  # entries read and not yet committed
        self._dirty = False
        self._load()

    # -- state -------------------------------------------------------------------------------
    @property
    def unread_events(self) -> int:
        return sum(s.unread_events for s in self._segments)

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
            seg = self._damage.load(seq, path)
            if seg is not None:
                self._segments.append(seg)
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

    # -- writing -----------------------------------------------------------------------------
    def append(self, batch: BatchRecord) -> None:
        """Add an entry at the end.

        Raises :class:`SpoolFullError` past ``max_bytes`` and :class:`SpoolWriteError` when the
        disk refuses it (nothing of it is left on disk then).
        """
        header = entry_header(batch.partition, batch.n_events, batch.value)
        size = len(header) + len(batch.value)
        if self.bytes + size > self.max_bytes:
            raise SpoolFullError(
                f"the disk spool {self.directory} holds {self.bytes} bytes and this batch of "
                f"{batch.n_events} events needs {size} more, over "
                f"spool_max_bytes={self.max_bytes}: "
                "raise sdk.spool_max_bytes or restore the broker connection"
            )
        for attempt in (1, 2):
            writer = self._writable()
            seg = writer.segment
            fresh = not seg.has_entries
            try:
                writer.write(header, batch.value)
            except OSError as exc:
                self._writer = None  # abandoned: cut back, synced, closed
                self._dirty = False
                if not seg.has_entries:
                    self._segments.remove(seg)
                if fresh or attempt == 2:
                    raise SpoolWriteError(
                        f"cannot write {size} bytes ({batch.n_events} events) to the disk spool "
                        f"{seg.path}: {exc}"
                    ) from exc
                continue  # a fresh segment may take what this one could not (file-size limit)
            seg.size += size
            seg.unread_entries += 1
            seg.unread_events += batch.n_events
            self._dirty = True
            return

    def _writable(self) -> SegmentWriter:
        writer = self._writer
        if writer is not None and writer.segment.size < self.segment_bytes:
            return writer
        self._close_writer()
        seq = self._segments[-1].seq + 1 if self._segments else _FIRST_SEQ
        try:
            writer = SegmentWriter(self.own_directory, seq, self._fsync)
        except OSError as exc:
            raise SpoolWriteError(
                f"cannot create a segment in the disk spool {self.own_directory}: {exc}"
            ) from exc
        self._writer = writer
        self._segments.append(writer.segment)
        return writer

    def prepend(self, entries: list[BatchRecord]) -> None:
        """Write entries to be read before everything else, in the order given.

        For records that were handed to Kafka but not acknowledged when the logger stops: they
        are older than anything in the spool. Raises :class:`SpoolWriteError` (and leaves no
        segment behind) if the disk refuses them.
        """
        if not entries:
            return
        if self._outstanding:
            self.rewind()  # outstanding entries are newer than these: read them again after
        self._close_reader()
        seq = (self._segments[0].seq - 1) if self._segments else _FIRST_SEQ
        try:
            seg = write_segment(self.own_directory, seq, entries, self._fsync)
        except OSError as exc:
            n_events = sum(b.n_events for b in entries)
            raise SpoolWriteError(
                f"cannot write {n_events} unacknowledged events in front of the disk spool "
                f"{self.own_directory}: {exc}"
            ) from exc
        self._segments.insert(0, seg)

    def sync(self) -> None:
        """fsync (if configured) what was appended since the last sync.

        Raises :class:`SpoolWriteError` if the disk reports an error: what was appended is
        readable but may not survive a crash of the machine.
        """
        if not self._dirty or self._writer is None:
            return
        self._dirty = False
        if self._fsync:
            try:
                self._writer.fsync()
            except OSError as exc:
                raise SpoolWriteError(
                    f"fsync of the disk spool {self._writer.segment.path} failed: {exc}"
                ) from exc

    def _close_writer(self) -> None:
        if self._writer is not None:
            try:
                self.sync()
            finally:
                self._writer.close()
                self._writer = None

    # -- reading -----------------------------------------------------------------------------
    def _close_reader(self) -> None:
        if self._reader_fd >= 0:
            os.close(self._reader_fd)
        self._reader_fd = -1
        self._reader_seg = None

    def read_next(self) -> SpoolEntry | None:
        """The oldest unread intact entry (it stays on disk until :meth:`commit`), or ``None``.

        Damaged entries met on the way are quarantined and skipped; a segment found removed is
        counted as lost. Raises :class:`SpoolReadError` on other read errors (nothing skipped).
        """
        while True:
            seg = next((s for s in self._segments if s.unread_entries), None)
            if seg is None:
                return None
            if seg is not self._reader_seg and not self._open_reader(seg):
                continue
            offset = self._read_offset
            while offset in seg.skips:
                offset = seg.skips[offset]
            self._read_offset = offset
            try:
                raw = os.pread(self._reader_fd, MAX_HEADER_BYTES, offset)
                header = parse_header(seg.version, raw)
                if header is None or header.end(offset) > seg.size:
                    self._damage.unreadable(self._reader_fd, seg, offset, header)
                    self._advance(seg)
                    continue
                record = os.pread(self._reader_fd, header.length, offset + header.header_size)
            except OSError as exc:
                raise SpoolReadError(f"cannot read the disk spool {seg.path}: {exc}") from exc
            if len(record) < header.length:
                self._lose_rest(seg, offset, f"{seg.path} was cut short under the spool")
                continue
            end = header.end(offset)
            if not record_intact(header, record):
                data = raw[: header.header_size] + record
                self._damage.bad_record(self._reader_fd, seg, offset, header, data)
                self._advance(seg)
                continue
            self._read_offset = end
            seg.mark_read(header.n_events)
            self._outstanding += 1
            batch = BatchRecord(header.partition, record, header.n_events)
            return SpoolEntry(seg.seq, offset, end, batch)

    def _open_reader(self, seg: Segment) -> bool:
        """Read ``seg`` from now on; ``False`` if it was removed (its events are lost)."""
        self._close_reader()
        try:
            self._reader_fd = os.open(seg.path, os.O_RDONLY)
        except FileNotFoundError:
            self._lose_rest(seg, seg.committed, f"{seg.path} was removed under the spool")
            return False
        except OSError as exc:
            raise SpoolReadError(f"cannot open the disk spool {seg.path}: {exc}") from exc
        self._reader_seg = seg
        # Reads are sequential and we never return to a segment once left (except through
        # rewind, which closes the reader), so reading a segment starts at its committed offset.
        self._read_offset = seg.committed
        return True

    def _lose_rest(self, seg: Segment, offset: int, why: str) -> None:
        """The segment's bytes from ``offset`` on are gone: count its unread events as lost."""
        if seg.unread_events:
            log.error("%s: %d events in it are lost", why, seg.unread_events)
            self.losses.lose("spool_missing", seg.unread_events, why)
        seg.unread_entries = seg.unread_events = 0
        seg.size = max(offset, seg.committed)
        seg.skips = {s: e for s, e in seg.skips.items() if s < seg.size}
        if self._writer is not None and self._writer.segment is seg:
            self._writer.close()  # new entries go to a new file, not into a removed one
            self._writer = None
        self._advance(seg)

    def set_aside(self, entry: SpoolEntry, reason: str, detail: str) -> None:
        """The sender cannot send ``entry`` (read last or earlier): quarantine it and go on."""
        seg = next(s for s in self._segments if s.seq == entry.segment)
        batch = entry.batch
        self._damage.put(
            seg,
            entry.start_offset,
            reason,
            batch.n_events,
            detail,
            batch.value,
            "record",
            batch.partition,
        )
        self._outstanding -= 1
        seg.mark_settled(batch.n_events)
        seg.skips[entry.start_offset] = entry.end_offset
        self._advance(seg)

    def unread(self, entry: SpoolEntry) -> None:
        """Undo the last :meth:`read_next` (the record could not be handed to Kafka)."""
        seg = self._reader_seg
        if seg is None or seg.seq != entry.segment or entry.end_offset != self._read_offset:
            raise RuntimeError("only the entry read last can be put back")
        self._read_offset = entry.start_offset
        seg.mark_unread(entry.batch.n_events)
        self._outstanding -= 1

    def rewind(self) -> None:
        """Forget what was read and not committed: it is read again, in order."""
        self._close_reader()
        self._outstanding = 0
        for seg in self._segments:
            seg.rewind()

    def commit(self, entry: SpoolEntry) -> None:
        """The broker acknowledged ``entry``: remember it, delete finished segments."""
        self._outstanding -= 1
        seg = next((s for s in self._segments if s.seq == entry.segment), None)
        if seg is None:
            return
        seg.mark_settled(entry.batch.n_events)
        seg.committed = max(seg.committed, entry.end_offset)
        self._advance(seg)

    def _advance(self, seg: Segment) -> None:
        """Record ``seg``'s progress, or delete it once nothing in it is left to send."""
        seg.advance()
        if seg.unread_entries or seg.outstanding_entries or seg.committed < seg.size:
            if seg.committed > data_start(seg.version):
                write_ack(seg)
            return
        if self._writer is not None and self._writer.segment is seg:
            self._close_writer()
        self._delete(seg)

    def _delete(self, seg: Segment) -> None:
        if seg is self._reader_seg:
            self._close_reader()
        for path in (seg.path, seg.path.with_suffix(".ack")):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot delete the finished spool file %s: %s", path, exc)
        self._segments.remove(seg)

    def close(self) -> None:
        """Close the files and release the directory (removed if it holds nothing).

        A segment removed under the spool is counted as lost here, so that what the spool
        reports as kept is on disk.
        """
        try:
            self._close_writer()
        except SpoolWriteError as exc:
            log.error("%s", exc)
        self._close_reader()
        for seg in list(self._segments):
            if not seg.path.exists():
                self._lose_rest(seg, seg.committed, f"{seg.path} was removed under the spool")
                if seg in self._segments:
                    self._segments.remove(seg)
        self._owner.release(remove=not self._segments)
