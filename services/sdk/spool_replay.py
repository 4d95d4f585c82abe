"""Re-sending the disk spool: each entry read back, turned into records and handed to Kafka.

Why a module of its own: this is where an entry that can never be sent must be told from a
broker that is only away. A broker away (a timeout, no connection) pauses the replay and the
entry is read again later: nothing is skipped. An entry that cannot be decoded, or that
kafka-python refuses whatever the broker's state (too large for ``max_request_size``, arguments
it never accepts), is quarantined (``spool.set_aside``) and the replay goes on with the next one:
it is never retried forever and never blocks what follows. A read error pauses the replay for
``retry_s`` without skipping anything.

A record spooled before the partition count was known, or for a partition the topic no longer
has (re-created with fewer partitions), is split by episode over the current partitions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kafka.errors import MessageSizeTooLargeError

from services.sdk.batch_records import BatchRecord, RecordLimits, repartition
from services.sdk.errors import SpoolReadError
from services.sdk.event_queue import UNKNOWN_PARTITION, EventQueue
from services.sdk.spool import DiskSpool, SpoolEntry

__all__ = ["SendRecord", "SpoolReplay", "refused_for_good"]

# The sender's logger: these lines read (and are filtered) as the sender's, as before the split.
log = logging.getLogger("services.sdk.sender")

#: ``send(batch, now, entry_it_commits, direct)``: hand one record to Kafka or raise.
SendRecord = Callable[[BatchRecord, float, SpoolEntry | None, bool], None]


def refused_for_good(exc: Exception) -> bool:
    """Whether kafka-python refuses a record whatever the broker's state: too large for
    ``max_request_size``, or arguments it never accepts (``ValueError``, ``TypeError``)."""
    return isinstance(exc, MessageSizeTooLargeError | ValueError | TypeError)


class SpoolReplay:
    """Reads ``spool`` in order and hands its entries to ``send`` while the window is open."""

    def __init__(
        self, spool: DiskSpool, queue: EventQueue, limits: RecordLimits, topic: str, retry_s: float
    ) -> None:
        self._spool = spool
        self._queue = queue
        self._limits = limits
        self._topic = topic
        self._retry_s = retry_s
        self._paused_until = 0.0

    def run(self, now: float, send: SendRecord, window_open: Callable[[], bool]) -> bool:
        """Send what the window allows; ``False`` if Kafka cannot take records now (outage)."""
        spool = self._spool
        if now < self._paused_until:
            return True
        while window_open() and spool.has_unread():
            try:
                entry = spool.read_next()
            except SpoolReadError as exc:
                log.error("%s; re-sending spooled records pauses for %gs", exc, self._retry_s)
                self._paused_until = now + self._retry_s
                return True
            if entry is None:
                return True
            parts = self._parts(entry)
            if parts is None:
                continue
            try:
                for i, batch in enumerate(parts):
                    last = i == len(parts) - 1
                    # Only the last part commits the entry; none is "direct".
                    send(batch, now, entry if last else None, False)
            except Exception as exc:
                if i == 0 and refused_for_good(exc):
                    detail = f"Kafka refuses it for good ({type(exc).__name__}: {exc})"
                    spool.set_aside(entry, "undeliverable", detail)
                    continue
                # Put the entry back: it is read (and its parts sent) again after the outage.
                log.warning("re-sending spooled records paused (%s: %s)", type(exc).__name__, exc)
                spool.unread(entry)
                return False
        return True

    def _parts(self, entry: SpoolEntry) -> list[BatchRecord] | None:
        """The records to send for ``entry``; ``None`` if it was quarantined as undecodable."""
        partition = entry.batch.partition
        partitioner = self._queue.partitioner
        assert partitioner is not None  # set before the producer
        if 0 <= partition < partitioner.num_partitions:
            return [entry.batch]
        if partition != UNKNOWN_PARTITION:
            log.warning(
                "a spooled record of %d events is for partition %d, which the topic %s no "
                "longer has (%d partitions); its events go to their episodes' partitions",
                entry.batch.n_events,
                partition,
                self._topic,
                partitioner.num_partitions,
            )
        try:
            with self._queue.lock:  # the partitioner pins episodes under the queue's lock
                parts = repartition(entry.batch.value, partitioner, self._limits)
            if not parts:
                raise ValueError("the record holds no event")
        except Exception as exc:
            detail = (
                f"a record for partition {partition} must be split by episode, and it does "
                f"not decode to events with an episode_id ({type(exc).__name__}: {exc})"
            )
            self._spool.set_aside(entry, "undecodable", detail)
            return None
        return parts
