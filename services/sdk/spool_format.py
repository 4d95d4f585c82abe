"""How the disk spool lays out its entries on disk: format 2 (written now) and format 1 (read).

Why a module of its own: the spool must tell, byte for byte, what it wrote from what it finds.
A damaged header must be recognised *before* its partition, event count or length is trusted
(a flipped partition byte would otherwise send a batch to the wrong partition, a flipped length
would misframe everything after it), and a reader must be able to find the next entry after a
damaged one instead of giving up on the rest of the segment.

**Format 2.** A segment file starts with the 8-byte magic ``89 50 4C 53 50 4C 02 0A``
(``b"\\x89PLSPL\\x02\\n"``), then holds entries, each::

    b"\\xd9PLe" | >i partition | >I events | >I length | >I header_crc | >I crc | record

``header_crc`` is the CRC-32 of the 16 bytes before it (marker, partition, events, length);
``crc`` is the CRC-32 of those same 16 bytes followed by the record, so the CRC covers the
header (partition, count, length) and the record. The 4-byte marker lets a reader that met a
damaged header look for the next entry: a candidate counts only if its header CRC holds.

**Format 1** (written before this version): no magic, entries
``>i partition | >I events | >I length | >I crc32(record) | record``. Its first four bytes are
a partition (-1 or more), never the magic, whose first byte makes a negative int. Segments in
format 1 are still read and sent; since nothing marks where an entry starts, a damaged format-1
entry takes the rest of its segment with it (to the quarantine, see ``spool_quarantine``).

Only bytes and integers are stored: reading a spool never executes anything (no pickle).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "CURRENT_FORMAT",
    "ENTRY_MARKER",
    "MAX_HEADER_BYTES",
    "MAX_RECORD_BYTES",
    "SEGMENT_MAGIC",
    "EntryHeader",
    "ScanItem",
    "data_start",
    "entry_header",
    "find_entry",
    "header_size",
    "parse_header",
    "record_intact",
    "scan",
    "segment_format",
]

SEGMENT_MAGIC = b"\x89PLSPL\x02\n"
ENTRY_MARKER = b"\xd9PLe"
CURRENT_FORMAT = 2
#: A header claiming a longer record is damaged (records are at most 1,000,000 bytes).
MAX_RECORD_BYTES = 64 << 20

_V2 = struct.Struct(">4siIIII")  # marker, partition, events, length, header_crc, crc
_V2_FRAMED = struct.Struct(">4siII")  # the 16 bytes that header_crc covers
_CRCS = struct.Struct(">II")
_V1 = struct.Struct(">iIII")  # partition, events, length, crc32(record)
_HEADER_SIZE = {1: _V1.size, 2: _V2.size}
#: Enough bytes for a header of either format.
MAX_HEADER_BYTES = _V2.size
_SEARCH_CHUNK = 1 << 20


class EntryHeader(NamedTuple):
    """A header that passed its checks; ``crc_start`` is where the record's CRC starts from."""

    partition: int
    n_events: int
    length: int
    crc: int
    crc_start: int
    header_size: int

    def end(self, offset: int) -> int:
        """Where the entry that starts at ``offset`` ends."""
        return offset + self.header_size + self.length


class ScanItem(NamedTuple):
    """A stretch of a segment: an entry (``header`` set) or damaged bytes ``[start, end)``.

    ``problem`` is ``None`` for an entry, ``"torn"`` for an entry cut short at the end of the
    file (the process died while writing it), ``"corrupt"`` for anything else that fails a check.
    """

    start: int
    end: int
    header: EntryHeader | None
    problem: str | None


def entry_header(partition: int, n_events: int, record: bytes) -> bytes:
    """The format-2 header of an entry holding ``record``."""
    framed = _V2_FRAMED.pack(ENTRY_MARKER, partition, n_events, len(record))
    header_crc = zlib.crc32(framed)
    return framed + _CRCS.pack(header_crc, zlib.crc32(record, header_crc))


def header_size(version: int) -> int:
    """Bytes of an entry header in ``version``."""
    return _HEADER_SIZE[version]


def data_start(version: int) -> int:
    """Offset of the first entry in a segment of ``version``."""
    return len(SEGMENT_MAGIC) if version == 2 else 0


def segment_format(fd: int, size: int) -> int:
    """The format of the segment open as ``fd``: 2 if it starts with the magic, else 1.

    A segment whose magic is damaged but whose first entry is a valid format-2 entry is read as
    format 2 (it would otherwise be misread as format 1 and lost whole).
    """
    head = os.pread(fd, len(SEGMENT_MAGIC) + _V2.size, 0)
    if head[: len(SEGMENT_MAGIC)] == SEGMENT_MAGIC:
        return 2
    first = parse_header(2, head[len(SEGMENT_MAGIC) :])
    if first is not None and first.end(len(SEGMENT_MAGIC)) <= size:
        return 2
    return 1


def parse_header(version: int, raw: bytes) -> EntryHeader | None:
    """The header in ``raw`` (its first bytes), or ``None`` if it fails its checks."""
    if version == 2:
        if len(raw) < _V2.size:
            return None
        marker, partition, n_events, length, header_crc, crc = _V2.unpack_from(raw)
        if marker != ENTRY_MARKER or zlib.crc32(raw[: _V2_FRAMED.size]) != header_crc:
            return None
        start = header_crc
    else:
        if len(raw) < _V1.size:
            return None
        partition, n_events, length, crc = _V1.unpack_from(raw)
        start = 0
    if partition < -1 or n_events < 1 or length > MAX_RECORD_BYTES:
        return None
    return EntryHeader(partition, n_events, length, crc, start, _HEADER_SIZE[version])


def record_intact(header: EntryHeader, record: bytes) -> bool:
    """Whether ``record`` is whole and matches the header's CRC."""
    return len(record) == header.length and zlib.crc32(record, header.crc_start) == header.crc


def find_entry(fd: int, version: int, start: int, end: int) -> int:
    """The offset of the first valid entry header in ``[start, end)``, or ``end`` if none.

    Only format 2 marks where entries start; in format 1 the answer is always ``end``.
    """
    if version != 2:
        return end
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(_SEARCH_CHUNK, end - pos) + len(ENTRY_MARKER) - 1, pos)
        at = chunk.find(ENTRY_MARKER)
        while at != -1 and pos + at < end:
            candidate = pos + at
            header = parse_header(2, os.pread(fd, _V2.size, candidate))
            if header is not None and header.end(candidate) <= end:
                return candidate
            at = chunk.find(ENTRY_MARKER, at + 1)
        pos += _SEARCH_CHUNK
    return end


def scan(fd: int, version: int, start: int, end: int) -> Iterator[ScanItem]:
    """Walk the segment from ``start`` to ``end`` by headers alone (records are not read)."""
    size = _HEADER_SIZE[version]
    offset = start
    while offset < end:
        header = parse_header(version, os.pread(fd, size, offset))
        if header is not None and header.end(offset) <= end:
            yield ScanItem(offset, header.end(offset), header, None)
            offset = header.end(offset)
            continue
        resume = find_entry(fd, version, offset + 1, end)
        torn = resume == end and (header is not None or end - offset < size)
        yield ScanItem(offset, resume, None, "torn" if torn else "corrupt")
        offset = resume
