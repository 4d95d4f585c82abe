"""The bounded hand-over between the caller's threads and the sender thread.

Events are kept already packed and already sorted by partition: one list of msgpack bytes per
partition, appended under a lock by the caller and taken whole by the sender, which swaps the
dict of lists for an empty one. The sender's cost per event is then nothing but its share of a
``b"".join``; a deque popped one event at a time cost it about a microsecond per event of GIL
time, which the caller's thread needs for its own work (everything runs under one GIL).

The partition is Kafka's default for the key ``episode_id`` (see ``partitioning``); until the
topic's partition count is known (first connection), events wait under
``UNKNOWN_PARTITION`` with their episode id, and the sender sorts them once it is.
"""

from __future__ import annotations

import threading

from services.sdk.partitioning import EpisodePartitioner

__all__ = ["UNKNOWN_PARTITION", "EventQueue"]

#: Bucket of events queued (or spooled) before the topic's partition count was known.
UNKNOWN_PARTITION = -1


class EventQueue:
    """Per-partition lists of packed events; ``len()`` is the number of events queued.

    ``lock`` must be held around :meth:`put` (the logger holds it for its own checks too).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.partitioner: EpisodePartitioner | None = None
        self._buckets: dict[int, list[bytes]] = {}
        self._unknown: list[tuple[str, bytes]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def put(self, episode_id: str, packed: bytes, is_end: bool) -> None:
        """Queue one packed event (caller holds ``lock``)."""
        partitioner = self.partitioner
        if partitioner is None:
            self._unknown.append((episode_id, packed))
        else:
            partition = partitioner.cache.get(episode_id)
            if partition is None:
                partition = partitioner.assign(episode_id)
            if is_end:
                partitioner.forget(episode_id)
            bucket = self._buckets.get(partition)
            if bucket is None:
                bucket = self._buckets[partition] = []
            bucket.append(packed)
        self._count += 1

    def take(self) -> tuple[dict[int, list[bytes]], list[tuple[str, bytes]], int]:
        """Everything queued: ``(per-partition packed events, unpartitioned, count)``."""
        with self.lock:
            buckets, self._buckets = self._buckets, {}
            unknown, self._unknown = self._unknown, []
            count, self._count = self._count, 0
        return buckets, unknown, count
