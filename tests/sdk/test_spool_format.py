"""The disk spool's on-disk format 2, as documented, and the spool files tests build or read.

The helpers here read and write spool files from the documented layouts alone (not through the
SDK's own code), so that the tests of issue 13, cases 2 and 3, pin the format itself:

* format 2 (written now): segment magic ``89 50 4C 53 50 4C 02 0A``, then entries
  ``b"\\xd9PLe" | >i partition | >I events | >I length | >I header_crc | >I crc | record``,
  ``header_crc`` = CRC-32 of the 16 bytes before it, ``crc`` = CRC-32 of those 16 bytes followed
  by the record (the CRC covers the header);
* format 1 (written by earlier versions): ``>i partition | >I events | >I length |
  >I crc32(record) | record``, no magic;
* quarantine files ``<spool_dir>/quarantine/*.quarantine``: one JSON line, then ``bytes`` bytes.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from schemas.wire import assemble_record, decode_record, pack_event
from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration

MAGIC = b"\x89PLSPL\x02\n"
MARKER = b"\xd9PLe"
HEADER = struct.Struct(">4siIIII")
V1_HEADER = struct.Struct(">iIII")
#: Where each header field lies from an entry's first byte, per format (big-endian: the field's
#: lowest byte is its last).
FIELD_OFFSET = {
    2: {"partition": 4, "events": 8, "length": 12},
    1: {"partition": 0, "events": 4, "length": 8},
}


class Entry(NamedTuple):
    """One entry found in a segment file (format 2, or format 1 of earlier versions)."""

    offset: int
    end: int
    partition: int
    events: int
    record: bytes
    version: int

    def event_ids(self) -> list[str]:
        return [event["event_id"] for event in decode_record(self.record)]

    def lowest_byte_of(self, field: str) -> int:
        """The file offset of the lowest byte of header field ``field``."""
        return self.offset + FIELD_OFFSET[self.version][field] + 3

    @property
    def record_offset(self) -> int:
        return self.offset + (HEADER.size if self.version == 2 else V1_HEADER.size)


class Quarantined(NamedTuple):
    """One item of a quarantine file."""

    meta: dict[str, Any]
    data: bytes


def entries_of(segment: Path) -> list[Entry]:
    """Every entry of a segment, checking its CRCs: format 2 if it starts with the magic."""
    raw = segment.read_bytes()
    out = []
    if not raw.startswith(MAGIC):
        offset = 0
        while offset < len(raw):
            partition, events, length, crc = V1_HEADER.unpack_from(raw, offset)
            record = raw[offset + V1_HEADER.size : offset + V1_HEADER.size + length]
            assert crc == zlib.crc32(record), f"record CRC at byte {offset} of {segment.name}"
            end = offset + V1_HEADER.size + length
            out.append(Entry(offset, end, partition, events, record, 1))
            offset = end
        return out
    offset = len(MAGIC)
    while offset < len(raw):
        marker, partition, events, length, header_crc, crc = HEADER.unpack_from(raw, offset)
        framed = raw[offset : offset + 16]
        record = raw[offset + HEADER.size : offset + HEADER.size + length]
        assert marker == MARKER, f"no entry marker at byte {offset} of {segment.name}"
        assert header_crc == zlib.crc32(framed), f"header CRC at byte {offset}"
        assert crc == zlib.crc32(framed + record), f"entry CRC at byte {offset}"
        end = offset + HEADER.size + length
        out.append(Entry(offset, end, partition, events, record, 2))
        offset = end
    return out


def segments(spool_dir: Path) -> list[Path]:
    """The segment files a closed logger left in ``spool_dir`` (its own directories)."""
    return sorted(spool_dir.glob("pid-*/seg-*.spool"))


def flip(path: Path, offset: int) -> None:
    """Flip the lowest bit of the byte at ``offset`` (one bit of damage)."""
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def quarantined(spool_dir: Path) -> list[Quarantined]:
    """Every item of every quarantine file under ``spool_dir``."""
    items = []
    for path in sorted((spool_dir / "quarantine").glob("*.quarantine")):
        with path.open("rb") as fh:
            while line := fh.readline():
                meta = json.loads(line)
                items.append(Quarantined(meta, fh.read(meta["bytes"])))
    return items


def v1_entry(partition: int, events: list[dict[str, Any]] | None, record: bytes = b"") -> bytes:
    """A format-1 entry (as earlier versions wrote it) holding ``events`` (or ``record``)."""
    if events is not None:
        record = assemble_record([pack_event(e) for e in events])
    n_events = len(events) if events is not None else 1
    return V1_HEADER.pack(partition, n_events, len(record), zlib.crc32(record)) + record


def reward(episode: str, step: int) -> dict[str, Any]:
    """A valid reward event with a readable id."""
    return {
        "type": "reward",
        "event_id": f"{episode}-{step}",
        "episode_id": episode,
        "step": step,
        "ts": 1_700_000_000_000 + step,
        "reward": 1.0,
    }


def unreachable(kafka: KafkaSettings) -> KafkaSettings:
    """The same topic names, at a loopback port where nothing listens."""
    return kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{find_free_port()}"})


def spool_rewards(
    kafka: KafkaSettings, settings: SdkSettings, episodes: list[str], steps: int
) -> list[str]:
    """Log ``steps`` rewards per episode with the broker unreachable and close: all spooled."""
    logged = []
    with DecisionLogger(kafka=unreachable(kafka), settings=settings) as logger:
        for step in range(steps):
            for episode in episodes:
                logged.append(logger.reward(episode, step, 1.0, event_id=f"{episode}-{step}"))
    return logged


def by_episode(kafka: KafkaSettings, expected: int) -> dict[str, list[str]]:
    """The event ids read back from the events topic, per episode, in the order they arrived."""
    out: dict[str, list[str]] = defaultdict(list)
    for _, event in read_events(kafka, expected, timeout_s=60):
        out[event["episode_id"]].append(event["event_id"])
    return dict(out)


def per_episode(event_ids: list[str]) -> dict[str, list[str]]:
    """``event_ids`` (``<episode>-<step>``) grouped by episode, in their order."""
    out: dict[str, list[str]] = defaultdict(list)
    for event_id in event_ids:
        out[event_id.rsplit("-", 1)[0]].append(event_id)
    return dict(out)


def test_a_spooled_segment_starts_with_the_magic_and_each_header_has_its_own_crc(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings], tmp_path: Path
) -> None:
    settings = sdk_settings(close_timeout_s=0.2, batch_max_events=50)
    logged = spool_rewards(kafka, settings, ["a", "b", "c"], 100)

    (segment,) = segments(tmp_path / "spool")
    assert segment.read_bytes()[: len(MAGIC)] == MAGIC
    found = entries_of(segment)  # checks the header CRC and the CRC over header and record
    assert len(found) >= 6 and {e.version for e in found} == {2}
    assert [i for e in found for i in e.event_ids()] == logged
    assert sum(e.events for e in found) == len(logged)
    assert {e.partition for e in found} == {-1}  # spooled before the partition count was known
