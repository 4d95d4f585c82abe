"""The sender's way onto the disk spool: records wait in memory, in order, until the disk takes
them.

Why: a full disk, a file-size limit or an I/O error must neither kill the sender thread nor lose
an event. A record the spool refuses (``SpoolFullError``, ``SpoolWriteError``) stays in memory,
in order, and the write is tried again after ``retry_s``; its events count against
``queue_max_events`` (:attr:`SpoolWriter.held_events`), so callers meet ``when_full`` and a
``QueueFullError`` that names the disk's error once the logger cannot accept more. Only at
close are records that still cannot be written dropped, counted by reason and logged.

Two queues keep the order of :mod:`services.sdk.sender`: ``pending`` goes after the spool's
tail (new records), ``front`` before its head (records handed to Kafka and not acknowledged
when the producer failed: they are older than anything spooled). When the broker is back, the
sender sends ``front`` directly before anything else, and ``pending`` directly once the spool
is empty: a disk that stays full never holds back delivery.
"""

from __future__ import annotations

import logging
from collections import deque

from services.sdk.batch_records import BatchRecord
from services.sdk.errors import SpoolFullError, SpoolWriteError
from services.sdk.metrics import SdkMetrics
from services.sdk.spool import DiskSpool

__all__ = ["SpoolWriter"]

# The sender's logger: these lines read (and are filtered) as the sender's, as before the split.
log = logging.getLogger("services.sdk.sender")


class SpoolWriter:
    """Writes records to ``spool`` for the sender thread, holding what the disk refuses."""

    def __init__(self, spool: DiskSpool, metrics: SdkMetrics, retry_s: float) -> None:
        self._spool = spool
        self._metrics = metrics
        self._retry_s = retry_s
        self._retry_at = 0.0
        self._pending: deque[BatchRecord] = deque()
        #: Unacknowledged records to send (or spool) before anything in the spool.
        self.front: deque[BatchRecord] = deque()
        #: Events in ``pending``: in memory, so they count against queue_max_events.
        self.held_events = 0
        #: The spool's write error while writes fail (``None`` once one succeeds).
        self.error: str | None = None
        self._full = False
        #: Events appended to the spool's tail by :meth:`write` (what write-through counts).
        self.appended_events = 0

    @property
    def waiting(self) -> bool:
        """Records wait in memory for the spool to take them."""
        return bool(self._pending)

    @property
    def spool_full(self) -> bool:
        """Records wait because the spool reached ``spool_max_bytes``."""
        return self._full and bool(self._pending)

    @property
    def front_events(self) -> int:
        return sum(b.n_events for b in list(self.front))

    def add(self, records: list[BatchRecord], now: float) -> None:
        """Append ``records`` to the spool, after any that are still waiting."""
        self.hold(records)
        self.write(now)

    def hold(self, records: list[BatchRecord]) -> None:
        """Queue ``records`` after any that are still waiting, without writing yet."""
        self._pending.extend(records)
        self.held_events += sum(r.n_events for r in records)

    def take(self) -> list[BatchRecord]:
        """Everything waiting (to be sent straight to Kafka instead)."""
        records = list(self._pending)
        self._pending.clear()
        self.held_events = 0
        self.error = None  # nothing waits for the disk now; the next refusal says so again
        self._full = False
        return records

    def write(self, now: float) -> None:
        """Write what waits, in order, as far as the spool takes it (not before ``retry_s``)."""
        if now < self._retry_at:
            return
        pending = self._pending
        while pending:
            batch = pending[0]
            try:
                self._spool.append(batch)
            except (SpoolFullError, SpoolWriteError) as exc:
                self._refused(exc, now, f"{self.held_events} events wait in memory")
                return
            pending.popleft()
            self.held_events -= batch.n_events
            self.appended_events += batch.n_events
            self._accepted()
            self._metrics.spooled.inc(batch.n_events)

    def put_in_front(self, records: list[BatchRecord], now: float) -> None:
        """``records`` (oldest first) must be sent before anything spooled: persist them."""
        self.front.extendleft(reversed(records))
        self._retry_at = 0.0
        self.write_front(now)

    def write_front(self, now: float) -> None:
        """Write ``front`` in front of the spool's head (not before ``retry_s`` after a failure)."""
        if not self.front or now < self._retry_at:
            return
        records = list(self.front)
        try:
            self._spool.prepend(records)
        except SpoolWriteError as exc:
            self._refused(exc, now, f"{sum(r.n_events for r in records)} events wait in memory")
            return
        self.front.clear()
        self._accepted()
        self._metrics.spooled.inc(sum(r.n_events for r in records))

    def sync(self) -> bool:
        """fsync what was appended; False (logged and counted, never raised) if it failed."""
        try:
            self._spool.sync()
        except SpoolWriteError as exc:
            self._metrics.spool_write_errors.inc()
            log.error("%s; what was written may not survive a crash of the machine", exc)
            return False
        return True

    def finish(self) -> None:
        """At close: write everything that waits; drop (count and log) what the spool refuses."""
        self._retry_at = 0.0
        self.write_front(0.0)
        if self.front:
            self._drop(list(self.front), "spool_write_failed", self.error or "")
            self.front.clear()
        while self._pending:
            self._retry_at = 0.0  # at close, every record gets its try
            self.write(0.0)
            if self._pending:
                batch = self._pending.popleft()
                self.held_events -= batch.n_events
                reason = "spool_full" if self._full else "spool_write_failed"
                self._drop([batch], reason, self.error or "")

    def _refused(self, exc: SpoolFullError | SpoolWriteError, now: float, where: str) -> None:
        full = isinstance(exc, SpoolFullError)
        if not full:
            self._metrics.spool_write_errors.inc()
            self._retry_at = now + self._retry_s
        if self.error is None or full != self._full:
            log.error(
                "%s; %s and are written when the spool takes them, callers see when_full",
                exc,
                where,
            )
        self._full = full
        self.error = str(exc)

    def _accepted(self) -> None:
        if self.error is not None:
            log.warning("the disk spool %s takes writes again", self._spool.directory)
        self.error = None
        self._full = False

    def _drop(self, records: list[BatchRecord], reason: str, detail: str) -> None:
        n_events = sum(b.n_events for b in records)
        self._spool.losses.lose(reason, n_events, detail)
        log.error("dropped %d events at close: %s", n_events, detail)
