"""Assemble a batch record from events that were already packed one by one.

The caller's thread packs each event with msgpack (C code, about a microsecond); the sender
only concatenates bytes behind a msgpack header, so it holds the GIL briefly per record instead
of re-encoding thousands of events. The result is byte-for-byte what
``schemas.wire.encode_batch`` produces for the same events, so any consumer reads it with
``schemas.wire.decode_record``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import msgpack

from schemas.events import SCHEMA_VERSION

__all__ = ["BATCH_OVERHEAD_BYTES", "assemble_record", "pack_event"]

# fixmap of 2 entries: "schema_version": <version>, "events": <array header + items>
_PREFIX = (
    b"\x82"
    + msgpack.packb("schema_version", use_bin_type=True)
    + msgpack.packb(SCHEMA_VERSION, use_bin_type=True)
    + msgpack.packb("events", use_bin_type=True)
)
#: Bytes a batch adds around its events at most (prefix + 5-byte array header).
BATCH_OVERHEAD_BYTES = len(_PREFIX) + 5

_packer = msgpack.Packer(use_bin_type=True)
pack_event = _packer.pack
"""Pack one event (a dict) to msgpack bytes; the wire options of ``schemas.wire``."""


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def assemble_record(packed_events: Sequence[bytes]) -> bytes:
    """One batch record value from already packed events (in the order given)."""
    return _PREFIX + _array_header(len(packed_events)) + b"".join(packed_events)
