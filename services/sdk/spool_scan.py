"""Reading segments whose bytes may be damaged: the scan at open, what is left after damage,
and moving damaged stretches to the quarantine.

Why separate from ``spool.py``: these are the rules that keep one damaged byte from costing more
than its own entry. A damaged stretch ends where the next readable entry starts (format 2 marks
entries; format 1 does not, so there it ends with the segment), it is copied to the quarantine
file, recorded in the segment's ``skips`` so it is never read or sent again, and counted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

from services.sdk.spool_format import (
    MAX_HEADER_BYTES,
    EntryHeader,
    data_start,
    find_entry,
    header_size,
    parse_header,
    scan,
    segment_format,
)
from services.sdk.spool_losses import LossLedger
from services.sdk.spool_quarantine import QuarantineFile, QuarantineItem
from services.sdk.spool_segment import Segment, read_ack

__all__ = ["SpoolDamage", "Unread", "find_next", "unread_after"]

log = logging.getLogger("services.sdk.spool")


class Unread(NamedTuple):
    """Entries (and their events) still to be read in a stretch of a segment."""

    entries: int
    events: int


class SpoolDamage:
    """Applies the damage rules to segments, quarantining into ``quarantine``, counting in
    ``losses``. Every method leaves the segment's counts and ``skips`` right for what is left."""

    def __init__(self, quarantine: QuarantineFile, losses: LossLedger) -> None:
        self.quarantine = quarantine
        self.losses = losses

    def load(self, seq: int, path: Path) -> Segment | None:
        """Open-time view of segment ``path``: its unread entries; damaged stretches set aside.

        Records are not read here (their CRC is checked when they are read to be sent);
        headers are. ``None`` if the file vanished meanwhile.
        """
        committed = read_ack(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            version = segment_format(fd, size)
            start = data_start(version)
            seg = Segment(seq, path, version, size, max(start, min(committed, size)))
            for item in scan(fd, version, start, size):
                if item.end <= seg.committed:
                    continue  # acknowledged before the restart
                if item.header is None:
                    begin = max(item.start, seg.committed)
                    seg.skips[begin] = item.end
                    data = os.pread(fd, item.end - begin, begin)
                    detail = _damage(path, version, begin, item.end)
                    self.put(seg, begin, item.problem or "corrupt", None, detail, data)
                    continue
                if item.start < seg.committed:
                    seg.committed = item.start  # the ack points into this entry: resend it
                seg.unread_entries += 1
                seg.unread_events += item.header.n_events
            seg.advance()
        finally:
            os.close(fd)
        return seg

    def bad_record(
        self, fd: int, seg: Segment, offset: int, header: EntryHeader, data: bytes
    ) -> None:
        """The record at ``offset`` fails its CRC: set that entry alone aside (format 2)."""
        if seg.version == 1:  # format 1 cannot tell a damaged record from a damaged length
            self.unreadable(fd, seg, offset, None)
            return
        seg.unread_entries -= 1
        seg.unread_events -= header.n_events
        seg.skips[offset] = header.end(offset)
        detail = f"the entry at byte {offset} of {seg.path.name} fails its CRC check"
        self.put(seg, offset, "corrupt", header.n_events, detail, data)

    def unreadable(self, fd: int, seg: Segment, offset: int, header: EntryHeader | None) -> None:
        """Set aside the stretch at ``offset`` that holds no readable entry, up to the next one.

        Its events are what the segment was known to hold minus what is still readable after
        it, so that ``flush()`` stops waiting for exactly them.
        """
        resume = find_next(fd, seg, offset)
        left = unread_after(fd, seg, resume)
        lost = seg.unread_events - left.events
        seg.unread_entries, seg.unread_events = left
        seg.skips[offset] = resume
        cut_short = header is not None or seg.size - offset < header_size(seg.version)
        problem = "torn" if resume == seg.size and cut_short else "corrupt"
        data = os.pread(fd, resume - offset, offset)
        self.put(
            seg, offset, problem, lost or None, _damage(seg.path, seg.version, offset, resume), data
        )

    def put(
        self,
        seg: Segment,
        start: int,
        reason: str,
        n_events: int | None,
        detail: str,
        data: bytes,
        content: str = "entry",
        partition: int | None = None,
    ) -> None:
        """Copy ``data`` (from ``start`` in ``seg``) to the quarantine file, log and count it.

        If the quarantine file cannot be written either, the stretch is still skipped and
        counted, and the log says where its bytes are until the segment is deleted.
        """
        item = QuarantineItem(
            reason, detail, seg.path.name, start, partition, n_events, content, data
        )
        try:
            self.quarantine.put(item)
        except OSError as exc:
            log.error(
                "spool segment %s: %s (%s); the quarantine file %s cannot be written (%s), so "
                "these %d bytes stay only in the segment, at byte %d, until it is deleted",
                seg.path,
                detail,
                reason,
                self.quarantine.path,
                exc,
                len(data),
                start,
            )
            self.losses.quarantine(reason, n_events, detail, None)
            return
        log.error(
            "spool segment %s: %s (%s); %s moved to the quarantine file %s and skipped",
            seg.path,
            detail,
            reason,
            f"{len(data)} bytes" + (f" ({n_events} events)" if n_events else ""),
            self.quarantine.path,
        )
        self.losses.quarantine(reason, n_events, detail, self.quarantine.path)


def _damage(path: Path, version: int, start: int, end: int) -> str:
    text = f"bytes {start}-{end} of {path.name} (format {version}) do not hold a readable entry"
    if version == 1:
        text += (
            "; the segment was written by an older version in format 1, which cannot find the "
            "next entry, so the rest of the segment goes with it"
        )
    return text


def find_next(fd: int, seg: Segment, offset: int) -> int:
    """Where reading can resume after damage at ``offset``: the next readable entry, the next
    set-aside stretch, or the end of the segment."""
    limit = min((s for s in seg.skips if s > offset), default=seg.size)
    return find_entry(fd, seg.version, offset + 1, limit)


def unread_after(fd: int, seg: Segment, start: int) -> Unread:
    """The readable entries from ``start`` to the end of ``seg`` (set-aside stretches skipped)."""
    entries = events = 0
    pos = start
    while pos < seg.size:
        if pos in seg.skips:
            pos = seg.skips[pos]
            continue
        header = parse_header(seg.version, os.pread(fd, MAX_HEADER_BYTES, pos))
        if header is None or header.end(pos) > seg.size:
            pos = find_next(fd, seg, pos)
            continue
        entries += 1
        events += header.n_events
        pos = header.end(pos)
    return Unread(entries, events)
