"""The background thread that moves events from the in-memory queue to Kafka (or the spool).

It owns the producer and the disk spool; the caller's thread only puts packed events into the
:class:`EventQueue`, already sorted by partition, and the sender takes them all at once.

Ordering. Events of one partition reach Kafka in the order they were accepted:

* records of a partition are handed to kafka-python in order, and kafka-python keeps them in
  order (idempotent producer or one request in flight per connection);
* records go to Kafka *directly* only while the spool is completely empty (nothing unread,
  nothing awaiting its acknowledgement);
* otherwise new records are appended to the spool's tail, and the spool is replayed only when
  no direct record is still waiting for its acknowledgement, so whatever was handed to Kafka
  before an outage is delivered before anything spooled after it;
* a logger that stops while records it handed to Kafka are unacknowledged writes them in front
  of the spool, so a later logger sends them first (if the disk refuses them, they wait in
  memory and are sent before anything spooled once the broker is back).

The spool never stops the thread: a write it refuses waits in memory (``spool_writer.py``);
the replay (``spool_replay.py``) quarantines what can never be sent and pauses on what is only
late, so nothing is retried forever and nothing blocks what follows.

Outage detection: the oldest unacknowledged record is older than ``outage_after_s`` (or there
is no producer yet). kafka-python keeps retrying what it was handed for ``delivery_timeout_s``.
The producer is connected in the background (``connection.py``); records are cut and named in
``batch_records.py``. With ``sdk.spool_write_through`` every record goes through the spool
(``durable_progress.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from services.kafka_settings import KafkaSettings
from services.sdk.batch_records import (
    BatchRecord,
    RecordLimits,
    batch_records,
    sort_late_events,
    with_partitions,
)
from services.sdk.connection import ProducerConnection
from services.sdk.durable_progress import DurableProgress
from services.sdk.event_queue import EventQueue
from services.sdk.metrics import CallerCounts, SdkMetrics
from services.sdk.partitioning import EpisodePartitioner
from services.sdk.settings import SdkSettings
from services.sdk.spool import DiskSpool, SpoolEntry
from services.sdk.spool_replay import SpoolReplay
from services.sdk.spool_writer import SpoolWriter

__all__ = ["Sender"]

log = logging.getLogger(__name__)
_Entry = SpoolEntry | None


class _InFlight:
    """A record handed to kafka-python and not yet acknowledged.

    ``direct``: sent straight from the queue (not read from the spool), so it must be persisted
    in front of the spool if it is not acknowledged; ``spool_entry``: the spool entry its
    acknowledgement commits.
    """

    __slots__ = ("batch", "direct", "future", "sent_at", "spool_entry")

    def __init__(
        self, future: Any, batch: BatchRecord, sent_at: float, direct: bool, entry: _Entry
    ) -> None:
        self.future = future
        self.batch = batch
        self.sent_at = sent_at
        self.direct = direct
        self.spool_entry = entry


class Sender(threading.Thread):
    """Drains the queue into per-partition batch records and delivers them."""

    def __init__(
        self,
        queue: EventQueue,
        kafka: KafkaSettings,
        settings: SdkSettings,
        spool: DiskSpool,
        metrics: SdkMetrics,
        counts: CallerCounts,
        producer_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name="policyloop-sdk-sender", daemon=True)
        self._queue = queue
        self._topic = kafka.events_topic
        self._settings = settings
        self._spool = spool
        self._metrics = metrics
        self._counts = counts
        self._stop_requested = threading.Event()
        self._wake = threading.Event()
        self._connection = ProducerConnection(
            kafka,
            settings,
            producer_options or {},
            self._set_partition_count,
            self._stop_requested,
            spool.directory,
        )
        self._inflight: deque[_InFlight] = deque()
        # Records on their way to the disk, held in memory while it refuses them.
        self._writer = SpoolWriter(spool, metrics, settings.reconnect_backoff_s)
        self._direct_inflight = 0
        self._linger = settings.linger_ms / 1000.0
        self._spill_at = max(1, int(settings.queue_max_events * settings.spill_at_fraction))
        self._limits = RecordLimits.of(settings.batch_max_events, settings.record_max_bytes)
        self._replay = SpoolReplay(
            spool, queue, self._limits, self._topic, settings.reconnect_backoff_s
        )
        #: Events found in the spool at start (sent before anything new).
        self.leftover_events = spool.unread_events
        #: Events acknowledged by the broker; with ``lost_events``, what flush() waits for.
        self.acked_events = 0
        self.fatal: BaseException | None = None
        self.outage = False
        self._through = settings.spool_write_through
        self.durable = DurableProgress()

    # -- control from other threads ----------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to persist what is left and exit; wait for it."""
        self._stop_requested.set()
        self._wake.set()
        self.join(timeout)

    @property
    def producer_ready(self) -> bool:  # the logger's ``connected``
        return self._connection.producer is not None

    @property
    def held_events(self) -> int:
        """Events drained for the spool and waiting for it in memory (count as queued)."""
        return self._writer.held_events

    @property
    def spool_full(self) -> bool:
        """Drained records are waiting for room in the spool."""
        return self._writer.spool_full

    @property
    def spool_error(self) -> str | None:
        """Why the disk spool refuses writes, while it does."""
        return self._writer.error

    @property
    def lost_events(self) -> int:
        """Events that can no longer be sent (dropped at close, quarantined, removed)."""
        return self._spool.losses.lost_events

    @property
    def settled_events(self) -> int:
        return self.acked_events + self.lost_events

    def pending_summary(self) -> dict[str, int]:
        return {
            "queued": len(self._queue) + self.held_events + self._writer.front_events,
            "in_flight": sum(f.batch.n_events for f in list(self._inflight)),
            "spooled": self._spool.unread_events,
        }

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self._stop_requested.is_set():
                self._step()
                if self._wake.wait(self._linger if self._linger > 0 else 0.0005):
                    self._wake.clear()
            self._step()
            self._shutdown()
        except BaseException as exc:  # surfaced by flush()/close() in the caller's thread
            self.fatal = exc
            log.exception("the SDK sender thread stopped on an unexpected error")
            raise

    def _step(self) -> None:
        now = time.monotonic()
        self._connection.ensure(now)
        self._reap(now)
        # No producer yet counts as an outage only once a connection attempt failed: while
        # the first one is under way, events wait in memory instead of going through the disk.
        connection = self._connection
        self.outage = (connection.producer is None and connection.failures > 0) or bool(
            self._inflight and now - self._inflight[0].sent_at > self._settings.outage_after_s
        )
        if self.outage:
            self._writer.write_front(now)
        self._replay_spool(now)
        self._route_queue(now)
        if self._writer.sync():
            self.durable.synced(self._writer.appended_events)
        self._metrics.publish(self._counts, self._spool.losses)
        self._metrics.queue_depth.set(len(self._queue) + self.held_events)
        self._metrics.spool_bytes.set(self._spool.bytes)

    def _window_open(self) -> bool:
        return len(self._inflight) < self._settings.inflight_max_records

    # -- producer ------------------------------------------------------------------------------
    def _set_partition_count(self, n_partitions: int) -> None:
        """On connection, before the producer is set: the sender treats "producer set" as
        "ready to send", so the partitioner must be there first. Later, when the topic's
        count changes: the same partitioner is resized, so open episodes keep their pins."""
        with self._queue.lock:
            if self._queue.partitioner is not None:
                self._queue.partitioner.resize(n_partitions)
                return
            self._queue.partitioner = EpisodePartitioner(
                n_partitions, self._settings.max_open_episodes, self._settings.ended_episode_pins
            )

    def _send(self, batch: BatchRecord, now: float, entry: SpoolEntry | None, direct: bool) -> None:
        """Hand one record to kafka-python (raises if it cannot take it now)."""
        producer = self._connection.producer
        future = producer.send(self._topic, value=batch.value, partition=batch.partition)
        self._inflight.append(_InFlight(future, batch, now, direct, entry))
        if direct:
            self._direct_inflight += 1

    # -- acknowledgements ----------------------------------------------------------------------
    def _reap(self, now: float) -> None:
        inflight = self._inflight
        while inflight and inflight[0].future.is_done:
            if inflight[0].future.exception is not None:
                self._reset_producer(now, inflight[0])
                return
            self._acknowledge(inflight.popleft(), now)

    def _acknowledge(self, item: _InFlight, now: float) -> None:
        if item.direct:
            self._direct_inflight -= 1
        n_events = item.batch.n_events
        self.acked_events += n_events
        self._metrics.sent.inc(n_events)
        self._metrics.records_sent.inc()
        self._metrics.send_latency.observe(now - item.sent_at)
        if item.spool_entry is not None:
            self._spool.commit(item.spool_entry)

    def _reset_producer(self, now: float, failed: _InFlight) -> None:
        """A record failed: drop the producer and re-send everything unacknowledged, in order.

        Only the acknowledged prefix of the in-flight window counts as delivered; from the
        failed record on, direct records go in front of the spool and spooled ones are read
        again. Records the broker took but whose acknowledgement was lost are sent twice
        (at least once); none is lost and per-partition order is kept. A fresh producer also
        gets a fresh producer id, which is what a restarted broker needs.
        """
        exc = failed.future.exception
        self._metrics.send_errors.inc()
        log.error(
            "Kafka did not take a record of %d events for partition %d (%s: %s); reconnecting "
            "and re-sending the %d unacknowledged records in order",
            failed.batch.n_events,
            failed.batch.partition,
            type(exc).__name__,
            exc,
            len(self._inflight),
        )
        self._connection.discard()
        self._requeue_inflight(now)
        self._connection.failed(now)
        self.outage = True

    def _requeue_inflight(self, now: float) -> None:
        """Acknowledge the delivered prefix; persist the rest so it is sent again first."""
        inflight = self._inflight
        while inflight and inflight[0].future.succeeded():
            self._acknowledge(inflight.popleft(), now)
        front = [i.batch for i in inflight if i.direct]
        rewind = any(not i.direct for i in inflight)
        inflight.clear()
        self._direct_inflight = 0
        if rewind:
            self._spool.rewind()
        if front:
            self._writer.put_in_front(front, now)

    # -- the spool -------------------------------------------------------------------------------
    def _replay_spool(self, now: float) -> None:
        if self.outage or self._connection.producer is None:
            return
        if self._writer.front:
            self._send_front(now)
        elif not self._direct_inflight and not self._replay.run(now, self._send, self._window_open):
            self.outage = True

    def _send_front(self, now: float) -> None:
        """Send the records that must precede the spool (the disk refused them), in order."""
        front = self._writer.front
        while front and self._window_open():
            try:
                self._send(front[0], now, None, True)
            except Exception as exc:
                self.outage = True
                log.warning("Kafka cannot take records now (%s: %s)", type(exc).__name__, exc)
                return
            front.popleft()

    # -- the queue -------------------------------------------------------------------------------
    def _route_queue(self, now: float) -> None:
        queue = self._queue
        if self._writer.waiting:
            if self._direct() and self._window_open():
                # The disk refused them, and the broker takes records again: nothing is older.
                partitioner = queue.partitioner
                assert partitioner is not None
                with queue.lock:
                    held = with_partitions(self._writer.take(), partitioner, self._limits)
                self._send_direct(held, now)
            else:
                self._writer.write(now)
            if self._writer.waiting:
                return  # the spool refuses more: events wait in the queue
        if not queue:
            return
        if self._connection.producer is None and not (
            self.outage or self._through or self._must_spill()
        ):
            return  # the first connection attempt is under way
        if self._direct():
            if not self._window_open() and not self._must_spill():
                return  # back-pressure: the caller's when_full policy applies
            if self._window_open():
                self._send_direct(self._drain(), now)
                return
        elif not self._spool_accepts_more():
            return
        self._writer.add(self._drain(), now)

    def _direct(self) -> bool:
        """Whether new records may go straight to Kafka: nothing older waits anywhere."""
        return (
            not self.outage
            and not self._through
            and self._connection.producer is not None
            and self._queue.partitioner is not None
            and self._spool.is_empty()
            and not self._writer.front
            and self._direct_inflight == len(self._inflight)
        )

    def _send_direct(self, records: list[BatchRecord], now: float) -> None:
        for i, batch in enumerate(records):
            try:
                self._send(batch, now, None, True)
            except Exception as exc:
                self.outage = True
                log.warning(
                    "Kafka cannot take records now (%s: %s); spooling them",
                    type(exc).__name__,
                    exc,
                )
                self._writer.add(records[i:], now)
                return

    def _must_spill(self) -> bool:
        return self._settings.when_full == "spill" and len(self._queue) >= self._spill_at

    def _spool_accepts_more(self) -> bool:
        return self._spool.bytes < self._spool.max_bytes

    def _drain(self) -> list[BatchRecord]:
        """Take everything queued and pack it into per-partition records, in order."""
        buckets, unknown, count = self._queue.take()
        self.durable.drained(count)
        sort_late_events(buckets, unknown, self._queue.partitioner)
        limits = self._limits
        return [r for p, packed in buckets.items() for r in batch_records(p, packed, limits)]

    # -- stopping ----------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Persist everything not acknowledged, in order, and close the producer."""
        self._connection.join()
        self._connection.discard()
        now = time.monotonic()
        self._requeue_inflight(now)
        self.outage = True
        while self._queue:
            self._writer.hold(self._drain())
        self._writer.finish()
        self._spool.close()
        self._metrics.publish(self._counts, self._spool.losses)
        self._metrics.queue_depth.set(0)
        self._metrics.spool_bytes.set(self._spool.bytes)
