"""Batch records: what the sender sends and the spool stores, and how events are cut into them.

One :class:`BatchRecord` is one Kafka record value holding packed events of one partition
(``schemas.wire.assemble_record``), with the partition it goes to and how many events it holds
(the count that acknowledgements, metrics and ``flush()`` add up). The sender builds them from
the queue, hands them to Kafka and, during an outage, to the disk spool, which gives them back
in the same form.
"""

from __future__ import annotations

from typing import NamedTuple

from schemas.wire import BATCH_OVERHEAD_BYTES, assemble_record, decode_record, pack_event
from services.sdk.event_queue import UNKNOWN_PARTITION
from services.sdk.partitioning import EpisodePartitioner

__all__ = [
    "BatchRecord",
    "RecordLimits",
    "batch_records",
    "repartition",
    "sort_late_events",
    "with_partitions",
]


class BatchRecord(NamedTuple):
    """One record value (``value``: a msgpack batch) of ``n_events`` events for ``partition``.

    ``partition`` is ``UNKNOWN_PARTITION`` for events spooled before the topic's partition
    count was known (see :func:`repartition`).
    """

    partition: int
    value: bytes
    n_events: int


class RecordLimits(NamedTuple):
    """At most ``max_events`` events and ``max_bytes`` bytes of packed events per record."""

    max_events: int
    max_bytes: int

    @classmethod
    def of(cls, batch_max_events: int, record_max_bytes: int) -> RecordLimits:
        """The limits for the ``sdk.batch_max_events`` and ``sdk.record_max_bytes`` settings."""
        return cls(batch_max_events, record_max_bytes - BATCH_OVERHEAD_BYTES)


def batch_records(partition: int, packed: list[bytes], limits: RecordLimits) -> list[BatchRecord]:
    """Cut one partition's packed events, in order, into records within ``limits``."""
    max_events, budget = limits
    if len(packed) <= max_events and sum(map(len, packed)) <= budget:
        return [BatchRecord(partition, assemble_record(packed), len(packed))]
    out = []
    start = 0
    size = 0
    for i, item in enumerate(packed):
        n = len(item)
        if i > start and (i - start >= max_events or size + n > budget):
            chunk = packed[start:i]
            out.append(BatchRecord(partition, assemble_record(chunk), len(chunk)))
            start, size = i, 0
        size += n
    chunk = packed[start:]
    out.append(BatchRecord(partition, assemble_record(chunk), len(chunk)))
    return out


def sort_late_events(
    buckets: dict[int, list[bytes]],
    unknown: list[tuple[str, bytes]],
    partitioner: EpisodePartitioner | None,
) -> None:
    """Put events queued before the partition count was known into ``buckets``, in place.

    Without a partitioner they stay together under ``UNKNOWN_PARTITION``; with one, each goes
    to its episode's partition *in front of* that partition's newer events.
    """
    if not unknown:
        return
    if partitioner is None:
        buckets.setdefault(UNKNOWN_PARTITION, []).extend(p for _, p in unknown)
        return
    sorted_late: dict[int, list[bytes]] = {}
    for episode, packed in unknown:
        sorted_late.setdefault(partitioner.partition(episode), []).append(packed)
    for partition, packed_events in sorted_late.items():
        buckets[partition] = packed_events + buckets.get(partition, [])


def repartition(
    value: bytes, partitioner: EpisodePartitioner, limits: RecordLimits
) -> list[BatchRecord]:
    """Records per real partition from a record spooled under ``UNKNOWN_PARTITION``."""
    buckets: dict[int, list[bytes]] = {}
    for event in decode_record(value):
        partition = partitioner.partition(event["episode_id"])
        buckets.setdefault(partition, []).append(pack_event(event))
    return [r for p, packed in buckets.items() for r in batch_records(p, packed, limits)]


def with_partitions(
    records: list[BatchRecord], partitioner: EpisodePartitioner, limits: RecordLimits
) -> list[BatchRecord]:
    """``records`` in order, those cut before the partition count was known split by episode."""
    out: list[BatchRecord] = []
    for record in records:
        if record.partition == UNKNOWN_PARTITION:
            out.extend(repartition(record.value, partitioner, limits))
        else:
            out.append(record)
    return out
