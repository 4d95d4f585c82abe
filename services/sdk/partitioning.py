"""Which Kafka partition an episode's events go to, and why it never changes mid-episode.

A new episode goes to exactly the partition Kafka's default partitioner picks for the record key
``episode_id`` (murmur2 of the UTF-8 key, positive part, modulo the topic's partition count), so
that records the SDK sends and records any other Kafka producer sends for the same episode land
together.

The partition count can grow while the logger runs (an operator adds partitions; the connection
re-reads the count, see ``connection.py``). The hash of an episode then changes, but the
sessionizer keys episodes per partition: an episode whose events were split across two
partitions would be cut in two. So the partition of each episode is **pinned** at its first
event and kept until it ends:

* open episodes: ``cache`` (also what makes routing cheap: murmur2 in pure Python costs
  microseconds, a dict lookup does not). Bounded by ``sdk.max_open_episodes``, oldest first,
  like the logger's step tracker: past that bound the logger has already forgotten the oldest
  episode's step order too, and treats it as new. Only a pin dropped after the count changed can
  misroute; that is logged.
* recently ended episodes: a reward may still follow ``episode_end`` within the sessionizer's
  reward window, and it must reach the partition that holds its episode. Bounded by
  ``sdk.ended_episode_pins``, oldest first (the sessionizer itself only remembers a bounded
  number of closed episodes).
"""

from __future__ import annotations

import logging
import struct

__all__ = ["EpisodePartitioner", "kafka_default_partition", "murmur2"]

log = logging.getLogger(__name__)
_iter_words = struct.Struct("<I").iter_unpack

#: After the first one, one warning per this many pins dropped while they still mattered.
_DROPPED_PIN_LOG_EVERY = 10_000


def kafka_default_partition(key: bytes, num_partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``num_partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data``, the same value as kafka-python's ``murmur2``.

    Why our own: every new episode's first event hashes its id in the caller's thread (under
    the queue's lock), and kafka-python's byte-by-byte version took 3 µs for a 20-byte id; this
    one reads the 4-byte words with ``struct`` and masks once per product (1.7 µs). The test
    compares both on every length up to 300 bytes."""
    length = len(data)
    h = 0x9747B28C ^ length
    body = length & ~3
    for (k,) in _iter_words(data[:body]):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[body + 2] << 16
        if extra >= 2:
            h ^= data[body + 1] << 8
        h = ((h ^ data[body]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


class EpisodePartitioner:
    """Pins ``episode_id -> partition`` for open and recently ended episodes.

    ``cache`` (open episodes) is exposed so that the caller's hot loop can do a plain
    ``dict.get`` and only call :meth:`assign` on a miss, and :meth:`forget` at the episode's end.
    Callers hold the event queue's lock around :meth:`assign`, :meth:`forget` and
    :meth:`resize`.
    """

    def __init__(
        self, num_partitions: int, max_cached: int = 1_000_000, max_ended: int = 100_000
    ) -> None:
        _check_count(num_partitions)
        self.num_partitions = num_partitions
        self.cache: dict[str, int] = {}
        self._ended: dict[str, int] = {}
        self._max = max_cached
        self._max_ended = max_ended
        #: The count changed since the first one: a pin may now differ from the hash.
        self._resized = False
        #: Pins of open episodes dropped by the bound while they differed from the hash.
        self.dropped_pins = 0

    def assign(self, episode_id: str) -> int:
        """The partition of an episode not in ``cache``: pinned now, unless it already ended.

        An ended episode keeps the partition it had (its late rewards follow it) without being
        pinned again as open, so that it does not hold an open-episode slot.
        """
        partition = self._ended.get(episode_id)
        if partition is not None:
            return partition
        partition = kafka_default_partition(episode_id.encode("utf-8"), self.num_partitions)
        if len(self.cache) >= self._max:
            self._drop_oldest_pin()
        self.cache[episode_id] = partition
        return partition

    def partition(self, episode_id: str) -> int:
        """The partition of ``episode_id`` (pinned)."""
        partition = self.cache.get(episode_id)
        return self.assign(episode_id) if partition is None else partition

    def forget(self, episode_id: str) -> None:
        """The episode ended: move its pin from the open episodes to the recently ended ones."""
        partition = self.cache.pop(episode_id, None)
        if partition is None or self._max_ended < 1:
            return
        ended = self._ended
        if len(ended) >= self._max_ended:
            del ended[next(iter(ended))]
        ended[episode_id] = partition

    def resize(self, num_partitions: int) -> None:
        """The topic now has ``num_partitions``: new episodes use it, pinned ones stay put.

        Kafka only ever adds partitions. Fewer means the topic was deleted and re-created; a
        pin to a partition that no longer exists cannot be kept, so those episodes are hashed
        again.
        """
        _check_count(num_partitions)
        if num_partitions == self.num_partitions:
            return
        if num_partitions < self.num_partitions:
            for pins in (self.cache, self._ended):
                for episode in [e for e, p in pins.items() if p >= num_partitions]:
                    del pins[episode]
        self.num_partitions = num_partitions
        self._resized = True

    def _drop_oldest_pin(self) -> None:
        """Make room: more than ``max_cached`` episodes are open. Counted if it mattered."""
        episode = next(iter(self.cache))
        partition = self.cache.pop(episode)
        if not self._resized:
            return  # every pin still equals the hash: dropping one changes nothing
        if partition == kafka_default_partition(episode.encode("utf-8"), self.num_partitions):
            return
        self.dropped_pins += 1
        if self.dropped_pins % _DROPPED_PIN_LOG_EVERY == 1:
            log.warning(
                "more than sdk.max_open_episodes=%d episodes are open: the partition of the "
                "oldest one, %r, was forgotten after the topic grew, so its later events go to "
                "partition %d instead of %d (%d episodes so far); end episodes with "
                "end_episode() or raise sdk.max_open_episodes",
                self._max,
                episode,
                kafka_default_partition(episode.encode("utf-8"), self.num_partitions),
                partition,
                self.dropped_pins,
            )


def _check_count(num_partitions: int) -> None:
    if num_partitions < 1:
        raise ValueError(f"num_partitions={num_partitions}: must be at least 1")
