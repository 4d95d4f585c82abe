"""Which Kafka partition an episode's events go to.

Exactly the partition Kafka's default partitioner picks for the record key ``episode_id``
(murmur2 of the UTF-8 key, positive part, modulo the partition count), so that records the SDK
sends and records any other Kafka producer sends for the same episode land together. murmur2 in
pure Python costs microseconds, so the partition of each open episode is cached; the cache
forgets an episode when it ends and is bounded like the step tracker.
"""

from __future__ import annotations

from kafka.partitioner.default import murmur2

__all__ = ["EpisodePartitioner", "kafka_default_partition"]


def kafka_default_partition(key: bytes, num_partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``num_partitions``."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % num_partitions


class EpisodePartitioner:
    """Caches ``episode_id -> partition`` for open episodes.

    ``cache`` is exposed so that the sender's hot loop can do a plain ``dict.get`` and only call
    :meth:`assign` on a miss.
    """

    def __init__(self, num_partitions: int, max_cached: int = 1_000_000) -> None:
        if num_partitions < 1:
            raise ValueError(f"num_partitions={num_partitions}: must be at least 1")
        self.num_partitions = num_partitions
        self.cache: dict[str, int] = {}
        self._max = max_cached

    def assign(self, episode_id: str) -> int:
        """Compute, cache and return the partition of ``episode_id``."""
        partition = kafka_default_partition(episode_id.encode("utf-8"), self.num_partitions)
        if len(self.cache) >= self._max:
            del self.cache[next(iter(self.cache))]
        self.cache[episode_id] = partition
        return partition

    def partition(self, episode_id: str) -> int:
        """The partition of ``episode_id`` (cached)."""
        partition = self.cache.get(episode_id)
        return self.assign(episode_id) if partition is None else partition

    def forget(self, episode_id: str) -> None:
        """The episode ended: drop it from the cache."""
        self.cache.pop(episode_id, None)
