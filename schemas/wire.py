"""How events travel in Kafka record values.

Encoding: **MessagePack**. It is binary and compact (a decision with 4 features is ~200 bytes,
about two thirds of its JSON), its C encoder and decoder are several times faster than the
standard library's json on the SDK's hot path, it keeps float64 exactly and tells integers from
floats (JSON does neither reliably), and, unlike pickle, decoding cannot execute anything.
Extension types are refused on decode, map keys must be strings, and sizes are bounded, so a
hostile record costs at most its own size.

A record value is either one event (a map with ``type``) or a batch::

    {"schema_version": 1, "events": [event, event, ...]}

The batch envelope is version 1 whatever the versions of the events inside (an event of
contract version 2 says so in its own ``schema_version``), so a reader of version 1 still
decodes every batch and refuses only the events it does not speak.
A batch holds events of one partition (the SDK batches per partition and sends each record to
an explicit partition with no key; consumers must read ``episode_id`` from each event).
Batching many events per record is the throughput lever: per-record cost dominates.

The SDK's hot path encodes in two halves: the caller's thread packs each event once
(:func:`pack_event`, C code, about a microsecond) and the sender thread only concatenates the
packed events behind a batch header (:func:`assemble_record`), so it holds the GIL briefly per
record instead of re-encoding thousands of events. The result is byte for byte what
:func:`encode_batch` writes for the same events.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack

from schemas.events import SCHEMA_VERSION, EventValidationError, validate_event

__all__ = [
    "BATCH_OVERHEAD_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_RECORD_BYTES",
    "RecordDecodeError",
    "assemble_record",
    "decode_record",
    "encode_batch",
    "encode_event",
    "pack_event",
    "split_valid",
]

#: Kafka's default ``message.max.bytes`` is ~1 MB; stay under it.
MAX_RECORD_BYTES = 1_000_000
MAX_BATCH_EVENTS = 100_000

_packer_options = {"use_bin_type": True}


class RecordDecodeError(ValueError):
    """A record value is not a decodable event or batch; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


def encode_event(event: dict[str, Any]) -> bytes:
    """One event as a record value (no validation: validate before you encode)."""
    packed: bytes = msgpack.packb(event, **_packer_options)
    return packed


def encode_batch(events: Iterable[dict[str, Any]]) -> bytes:
    """A batch of events as one record value (no validation: validate before you encode)."""
    batch = {"schema_version": SCHEMA_VERSION, "events": list(events)}
    packed: bytes = msgpack.packb(batch, **_packer_options)
    return packed


# fixmap of 2 entries: "schema_version": <version>, "events": <array header + items>
_BATCH_PREFIX: bytes = (
    b"\x82"
    + msgpack.packb("schema_version", **_packer_options)
    + msgpack.packb(SCHEMA_VERSION, **_packer_options)
    + msgpack.packb("events", **_packer_options)
)
#: Bytes a batch adds around its events at most (prefix + 5-byte array header).
BATCH_OVERHEAD_BYTES = len(_BATCH_PREFIX) + 5

pack_event = msgpack.Packer(**_packer_options).pack
"""Pack one event (a dict) with the wire options; not thread-safe (one shared packer).

The SDK calls it under its queue lock; :func:`encode_event` is the thread-safe equivalent."""


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def assemble_record(packed_events: Sequence[bytes]) -> bytes:
    """One batch record value from events packed by :func:`pack_event` (in the order given)."""
    return _BATCH_PREFIX + _array_header(len(packed_events)) + b"".join(packed_events)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise RecordDecodeError("malformed", f"msgpack extension type {code} is not allowed")


def decode_record(value: bytes | None) -> list[Any]:
    """Decode a record value into its list of (not yet validated) events.

    Raises :class:`RecordDecodeError` with reason ``malformed`` (not msgpack, wrong shape),
    ``too_large`` or ``unsupported_schema_version`` (a batch of a version we do not speak).
    Individual events are returned as decoded; run :func:`split_valid` or
    :func:`schemas.events.validate_event` on them.
    """
    if value is None:
        raise RecordDecodeError("malformed", "record has no value")
    if len(value) > MAX_RECORD_BYTES:
        raise RecordDecodeError("too_large", f"{len(value)} bytes > {MAX_RECORD_BYTES}")
    try:
        decoded = msgpack.unpackb(
            value,
            raw=False,
            strict_map_key=True,
            ext_hook=_refuse_ext,
        )
    except RecordDecodeError:
        raise
    except Exception as exc:  # msgpack raises several types for garbage input
        raise RecordDecodeError("malformed", f"not MessagePack ({type(exc).__name__})") from None
    if type(decoded) is not dict:
        raise RecordDecodeError("malformed", f"top level is {type(decoded).__name__}, not a map")
    if "events" not in decoded:
        return [decoded]
    version = decoded.get("schema_version")
    if version != SCHEMA_VERSION or type(version) is not int:
        raise RecordDecodeError(
            "unsupported_schema_version", f"batch schema_version={version!r}, expected 1"
        )
    events = decoded["events"]
    if type(events) is not list:
        raise RecordDecodeError("malformed", "'events' is not a list")
    if len(events) > MAX_BATCH_EVENTS:
        raise RecordDecodeError("too_large", f"{len(events)} events > {MAX_BATCH_EVENTS}")
    if set(decoded) - {"schema_version", "events"}:
        raise RecordDecodeError("malformed", f"unknown batch fields {sorted(set(decoded))}")
    return events


def split_valid(
    events: Iterable[Any],
) -> tuple[list[dict[str, Any]], list[tuple[Any, EventValidationError]]]:
    """Separate valid events from invalid ones, keeping each invalid event with its error."""
    valid: list[dict[str, Any]] = []
    invalid: list[tuple[Any, EventValidationError]] = []
    for event in events:
        try:
            validate_event(event)
        except EventValidationError as err:
            invalid.append((event, err))
        else:
            valid.append(event)
    return valid, invalid
