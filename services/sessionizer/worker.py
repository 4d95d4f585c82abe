"""The sessionizer worker: consume ``<prefix>.events``, sessionize, commit to Delta exactly once.

Why a plain aiokafka consumer rather than a Faust agent: exactly-once here needs three things
Faust decides on its own: *when* offsets are committed (Faust commits acknowledged offsets on
its own timer and at rebalance; we must commit only after the Delta commit), *where* a partition
resumes (we resume after the offset recorded in the Delta table, not the group's committed
offset), and *how state is stored* (a changelog topic cannot be committed atomically with a
Delta commit without Kafka transactions, which the embedded broker lacks). aiokafka, which
Faust itself runs on, gives each of these directly: manual commits, a rebalance listener that
seeks, and ``getmany`` batches.

The loop, per poll: feed each record to its partition's :class:`PartitionSessionizer` (pure);
let caught-up partitions' clocks follow wall time minus a slack (so windows and timeouts close
without traffic); collect rows and dead letters. Every ``batch_max_rows`` rows or
``batch_max_seconds`` a batch is committed in this order:

1. dead letters sent to ``<prefix>.dlq`` and flushed;
2. each changed partition's state saved as its next checkpoint (``checkpoint.py``);
3. one Delta append holding every row, with each partition's last offset and checkpoint number
   as transaction versions (``sink.py``);
4. the next offsets committed to the Kafka group (for lag and tooling; the table is the truth).

On assignment a partition's recorded offset ``V`` and checkpoint number are read back from the
table, that checkpoint loaded and the consumer seeks to ``V + 1``: nothing already in the
table is processed again, so (``episode_id``, ``step``) stays unique however the worker dies.
On revocation everything pending is committed first, then the partition's state is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from services.kafka_settings import KafkaSettings
from services.sessionizer.checkpoint import CheckpointStore
from services.sessionizer.dlq import dlq_record
from services.sessionizer.metrics import SessionizerMetrics
from services.sessionizer.sessionize import DeadLetter, PartitionSessionizer, SessionConfig
from services.sessionizer.settings import SessionizerSettings
from services.sessionizer.sink import DeltaSink, PartitionBatch

__all__ = ["SessionizerWorker", "session_config"]

log = logging.getLogger("policyloop.sessionizer")


def session_config(settings: SessionizerSettings) -> SessionConfig:
    """The pure sessionizer's rules from the settings (seconds → milliseconds)."""
    return SessionConfig(
        reward_window_ms=round(settings.reward_window_s * 1000),
        aggregation=settings.reward_aggregation,
        default_reward=settings.default_reward,
        episode_timeout_ms=round(settings.episode_timeout_s * 1000),
        closed_memory_episodes=settings.closed_memory_episodes,
    )


@dataclass
class _Partition:
    sessionizer: PartitionSessionizer
    committed: int  # last offset recorded in Delta (-1: none)
    last_offset: int  # last offset processed
    checkpoint: int  # checkpoint number recorded in Delta (0: none)
    rows: list[dict[str, Any]] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: SessionizerWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.worker._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.worker._on_assigned(assigned)


class SessionizerWorker:
    """One worker of the consumer group; :meth:`run` until stopped or idle."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: SessionizerSettings,
        *,
        until_idle_s: float | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.until_idle_s = until_idle_s
        self._wall = wall_clock
        self.group = settings.app_id
        self.topic = kafka.events_topic
        self.config = session_config(settings)
        self.metrics = SessionizerMetrics(self.group)
        self.metrics_port: int | None = None
        self._parts: dict[int, _Partition] = {}
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._assigned_once = False
        self._assigned_at = 0.0
        self._last_record_at = 0.0
        self._last_flush = time.monotonic()
        self._pending_rows = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._sink: DeltaSink | None = None
        self._store: CheckpointStore | None = None
        self.rows_written = 0
        self.events_seen = 0

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask :meth:`run` to commit what is pending and return."""
        self._stopping.set()

    async def run(self) -> int:
        """Consume until stopped (or idle with ``until_idle_s``); returns an exit code."""
        s = self.settings
        self._sink = await asyncio.to_thread(DeltaSink, s.table_uri, self.group, self.topic)
        self._store = CheckpointStore(s.resolved_state_uri(), self.group, self.topic)
        self.metrics_port = self.metrics.serve(s.metrics_port, s.metrics_host)
        log.info("metrics on http://%s:%d/metrics", s.metrics_host, self.metrics_port)
        options = self.kafka.client_options()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.kafka.bootstrap_servers, acks="all", **options
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers,
            group_id=self.group,
            client_id=f"{self.group}-worker",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=None,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            rebalance_timeout_ms=int(s.rebalance_timeout_s * 1000),
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_s * 1000),
            **options,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        await self._producer.start()
        try:
            self._consumer.subscribe([self.topic], listener=_Listener(self))
            await self._consumer.start()
            try:
                await self._loop()
                async with self._lock:
                    if self.until_idle_s is not None:
                        self._advance_all(final=True)
                    await self._flush()
            finally:
                await self._consumer.stop()
        finally:
            await self._producer.stop()
        log.info("stopped: %d events, %d rows written", self.events_seen, self.rows_written)
        return 0

    async def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        last_report = time.monotonic()
        while not self._stopping.is_set():
            batch = await consumer.getmany(
                timeout_ms=100, max_records=self.settings.fetch_max_records
            )
            async with self._lock:
                now_ms = int(self._wall() * 1000)
                got = 0
                for tp, records in batch.items():
                    part = self._parts.get(tp.partition)
                    if part is None:
                        continue
                    sess = part.sessionizer
                    for rec in records:
                        if rec.offset <= part.last_offset:
                            continue  # already processed (and possibly in the table)
                        sess.process_record(rec.value, rec.offset, now_ms)
                        part.last_offset = rec.offset
                        got += 1
                if got:
                    self._last_record_at = time.monotonic()
                self._advance_all(final=False)
                due = self._pending_rows >= self.settings.batch_max_rows or (
                    time.monotonic() - self._last_flush >= self.settings.batch_max_seconds
                )
                if due:
                    await self._flush()
            if time.monotonic() - last_report > 5.0:
                last_report = time.monotonic()
                log.info(
                    "events %d, rows written %d, open episodes %d",
                    self.events_seen,
                    self.rows_written,
                    sum(p.sessionizer.open_episodes for p in self._parts.values()),
                )
            if self.until_idle_s is not None and self._assigned_once:
                idle_since = max(self._last_record_at, self._assigned_at)
                if time.monotonic() - idle_since >= self.until_idle_s:
                    log.info("idle for %.1fs: committing and exiting", self.until_idle_s)
                    return

    def _advance_all(self, final: bool) -> None:
        """Advance caught-up partitions' clocks and move their output into the pending batch."""
        consumer = self._consumer
        now_ms = int(self._wall() * 1000)
        wall_clock_ms = now_ms - int(self.settings.idle_clock_slack_s * 1000)
        for p, part in self._parts.items():
            tp = TopicPartition(self.topic, p)
            high = consumer.highwater(tp) if consumer is not None else None
            if high is not None:
                self.metrics.lag(self.group, str(p)).set(max(0, high - part.last_offset - 1))
            if final or (high is not None and part.last_offset + 1 >= high):
                part.sessionizer.advance(wall_clock_ms)
            out = part.sessionizer.take_output()
            if out.rows:
                part.rows.extend(out.rows)
                self._pending_rows += len(out.rows)
            if out.dead_letters:
                part.letters.extend(out.dead_letters)
            for (etype, outcome), n in out.events.items():
                self.metrics.events(self.group, etype, outcome).inc(n)
                self.events_seen += n
        self.metrics.open_episodes.set(
            sum(p.sessionizer.open_episodes for p in self._parts.values())
        )

    # ------------------------------------------------------------------ commit
    async def _flush(self) -> None:
        """Commit pending work: DLQ, checkpoints, Delta (with offsets), then Kafka offsets."""
        self._last_flush = time.monotonic()
        advanced = {
            p: part
            for p, part in self._parts.items()
            if part.last_offset > part.committed or part.rows or part.letters
        }
        if not advanced:
            return
        assert self._producer is not None and self._sink is not None and self._store is not None
        started = time.perf_counter()
        futures = []
        for p, part in advanced.items():
            for letter in part.letters:
                key, value, headers = dlq_record(letter, self.topic, p)
                futures.append(
                    await self._producer.send(
                        self.kafka.dlq_topic, value=value, key=key, headers=headers
                    )
                )
                self.metrics.dlq(self.group, letter.reason).inc()
        if futures:
            await asyncio.gather(*futures)
        snapshots = {p: part.sessionizer.snapshot() for p, part in advanced.items()}
        batches = [
            PartitionBatch(p, part.last_offset, part.checkpoint + 1, part.rows)
            for p, part in advanced.items()
        ]
        processed_at = int(self._wall() * 1_000_000)
        for b in batches:
            for row in b.rows:
                row["processed_at"] = processed_at
        store, sink = self._store, self._sink

        def write() -> tuple[int, list[int], float]:
            for p, snap in snapshots.items():
                store.save(p, advanced[p].checkpoint + 1, snap)
            return sink.commit(batches)

        rows, lost, _secs = await asyncio.to_thread(write)
        done = self._wall()
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        for b in batches:
            if b.partition in lost:
                continue
            for row in b.rows:
                self.metrics.latency.observe(max(0.0, done - row["_last_event_ts"] / 1000.0))
        self.metrics.rows.inc(rows)
        self.rows_written += rows
        offsets = {}
        for p, part in advanced.items():
            self._pending_rows -= len(part.rows)
            part.rows = []
            part.letters = []
            if p in lost:
                log.warning("partition %d was taken over by another worker; dropping it", p)
                continue
            part.committed = part.last_offset
            part.checkpoint += 1
            offsets[TopicPartition(self.topic, p)] = part.last_offset + 1
        for p in lost:
            self._parts.pop(p, None)
        if offsets and self._consumer is not None:
            try:
                await self._consumer.commit(offsets)
            except (KafkaError, AssertionError) as exc:  # the table stays the truth
                log.warning("Kafka offset commit failed (%s); the Delta table has them", exc)
        keep = {tp.partition: advanced[tp.partition].checkpoint for tp in offsets}
        await asyncio.to_thread(self._prune, keep)

    def _prune(self, keep: dict[int, int]) -> None:
        assert self._store is not None
        for p, offset in keep.items():
            self._store.prune(p, offset)

    # ------------------------------------------------------------------ rebalance
    async def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            mine = [tp.partition for tp in revoked if tp.topic == self.topic]
            if mine:
                await self._flush()
            for p in mine:
                self._parts.pop(p, None)
            if self._sink is not None:
                self._sink.forget(mine)

    async def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self._lock:
            mine = [tp for tp in assigned if tp.topic == self.topic]
            new = [tp for tp in mine if tp.partition not in self._parts]
            assert self._sink is not None and self._store is not None and self._consumer
            found = await asyncio.to_thread(self._sink.committed, [tp.partition for tp in new])
            for tp in new:
                rec = found[tp.partition]
                sess = PartitionSessionizer(self.config)
                if rec.offset is None:
                    await self._consumer.seek_to_beginning(tp)
                    self._parts[tp.partition] = _Partition(sess, -1, -1, rec.checkpoint or 0)
                    continue
                snap = None
                if rec.checkpoint is not None:
                    snap = await asyncio.to_thread(self._store.load, tp.partition, rec.checkpoint)
                if snap is None:
                    log.error(
                        "no state checkpoint %s for partition %d in %s: resuming after offset "
                        "%d with empty episode state (open episodes lose their earlier events)",
                        rec.checkpoint,
                        tp.partition,
                        self.settings.resolved_state_uri(),
                        rec.offset,
                    )
                else:
                    sess.restore(snap)
                self._consumer.seek(tp, rec.offset + 1)
                self._parts[tp.partition] = _Partition(
                    sess, rec.offset, rec.offset, rec.checkpoint or 0
                )
            log.info(
                "assigned partitions %s (resuming after %s)",
                sorted(tp.partition for tp in mine),
                {tp.partition: found[tp.partition].offset for tp in new},
            )
            self._assigned_once = True
            self._assigned_at = time.monotonic()
