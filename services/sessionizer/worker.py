"""The sessionizer worker: a Faust app consuming ``<prefix>.events`` into Delta, exactly once.

Faust runs the loop: the consumer (aiokafka in Faust's consumer thread), the consumer group and
its rebalances, an agent over ``<prefix>.events`` that takes records in batches, a timer, the
producer for dead letters, and offset commits. What Faust does not decide is *what counts as
done*: the Delta table is the truth (``sink.py``), so this module drives Faust like this:

* **Acks only after the Delta commit.** The agent reads with ``stream.noack_take(...)``; an
  event is acknowledged (``event.ack()``) only once the Delta commit holding its effects has
  succeeded, and then ``app.consumer.commit()`` commits the acknowledged offsets. Faust's own
  periodic commit only ever sees acknowledged offsets, so no offset reaches Kafka before its
  Delta commit. (One exception is Faust's: it acknowledges by itself the events it drops
  during a rebalance, those of an older generation. Harmless here: the group offset is only
  advisory and is re-aligned with the table on every assignment, see below.)
* **Resume where the table says.** ``app.on_rebalance_complete`` (awaited by Faust before it
  seeks the assigned partitions to their committed offsets) reads each new partition's recorded
  offset ``V`` and checkpoint number back from the table, loads that checkpoint and commits
  ``V + 1`` as the group's offset, so Faust's seek lands on ``V + 1``. Records at or below the
  recorded offset are skipped anyway (belt and braces), so (``episode_id``, ``step``) stays
  unique however the worker dies. Faust has no public call that commits *given* offsets
  (``app.consumer.commit()`` commits acknowledged ones only) and no hook after its own seek,
  so this one step uses the transport-level ``Consumer._commit`` (faust-streaming 0.15.3).
* **Flush before revoke.** ``app.on_partitions_revoked`` commits everything pending to Delta
  (and acknowledges it) before the partitions go; ``stream_wait_empty`` is off because Faust
  would otherwise wait for acknowledgements that only this hook produces.
* **State**: no Faust tables. A changelog topic cannot be committed atomically with a Delta
  commit without Kafka transactions (the embedded broker has none), so after a ``kill -9`` a
  changelog and the table could disagree. The equivalent used instead: each partition's
  episode state is saved as a MessagePack checkpoint whose number is recorded in the *same*
  Delta commit as the rows and offsets (``checkpoint.py``); on assignment exactly the
  checkpoint that produced the table's rows is loaded.

Batches: every ``batch_max_rows`` rows or ``batch_max_seconds`` (stretched while a backlog
waits or when only offsets moved, see ``SessionizerWorker._due``) the pending work is *sealed*
(rows, dead letters, offsets, a state snapshot, the events to acknowledge) and committed in the
background in this order: dead letters sent to ``<prefix>.dlq`` and flushed; checkpoints saved;
one Delta append with each partition's last offset and checkpoint number as transaction
versions; events acknowledged and offsets committed to Kafka. At most one commit is in flight
and commits happen in order, so consuming and sessionizing the next batch overlaps the Delta
write of the previous one.
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

from faust.types import TP

from services.kafka_settings import KafkaSettings
from services.sessionizer.checkpoint import CheckpointStore
from services.sessionizer.dlq import dlq_record
from services.sessionizer.drain import DrainProgress, DrainStatus
from services.sessionizer.faust_app import build_app
from services.sessionizer.metrics import SessionizerMetrics
from services.sessionizer.sessionize import DeadLetter, PartitionSessionizer, SessionConfig
from services.sessionizer.settings import SessionizerSettings
from services.sessionizer.sink import DeltaSink, PartitionBatch

__all__ = ["SessionizerWorker", "session_config"]

log = logging.getLogger("policyloop.sessionizer")

_TICK_S = 0.1
_BEHIND_STRETCH = 5  # time batches while a backlog waits, in batch_max_seconds
_OFFSETS_ONLY_STRETCH = 10  # time batches holding only offsets (no row, no dead letter)


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
    checkpoint: int  # last checkpoint number handed to a commit (0: none)
    sealed_offset: int  # last offset handed to a commit
    rows: list[dict[str, Any]] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    acks: list[Any] = field(default_factory=list)  # Faust events awaiting their Delta commit


@dataclass
class _Sealed:
    """One batch handed to the committer: everything it needs, detached from the live state."""

    parts: dict[int, _Partition]
    batches: list[PartitionBatch]
    snapshots: dict[int, dict[str, Any]]
    letters: list[tuple[int, DeadLetter]]
    acks: dict[int, list[Any]]


class SessionizerWorker:
    """One worker of the consumer group; :meth:`run` until stopped or idle."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: SessionizerSettings,
        *,
        until_idle_s: float | None = None,
        close_open_at_exit: bool = False,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.until_idle_s = until_idle_s
        self.close_open_at_exit = close_open_at_exit
        self._wall = wall_clock
        self.group = settings.app_id
        self.topic = kafka.events_topic
        self.config = session_config(settings)
        self.metrics = SessionizerMetrics(self.group)
        self.metrics_port: int | None = None
        self._parts: dict[int, _Partition] = {}
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._assigned_once = False
        self._assigned_at = 0.0
        self._last_record_at = 0.0
        self._last_flush = time.monotonic()
        self._last_report = time.monotonic()
        self._pending_rows = 0
        self._behind = False
        self._caught_up_at = time.monotonic()
        self._inflight: asyncio.Task | None = None
        self._app: Any = None
        self._sink: DeltaSink | None = None
        self._store: CheckpointStore | None = None
        self._drain = DrainProgress()
        self._drain_since: float | None = None
        self.rows_written = 0
        self.events_seen = 0
        self.left_open = 0  # at exit: episodes not ended, kept in the checkpoint
        self.left_waiting = 0  # at exit: rows whose reward window had not closed

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask :meth:`run` to commit what is pending and return."""
        self._stopping.set()

    def _fail(self, exc: BaseException) -> None:
        log.error("sessionizer failed: %r", exc, exc_info=exc)
        if self._failure is None:
            self._failure = exc
        self._stopping.set()

    async def run(self) -> int:
        """Consume until stopped (or idle with ``until_idle_s``); returns an exit code."""
        s = self.settings
        self._sink = await asyncio.to_thread(DeltaSink, s.table_uri, self.group, self.topic)
        self._store = CheckpointStore(s.resolved_state_uri(), self.group, self.topic)
        self.metrics_port = self.metrics.serve(s.metrics_port, s.metrics_host)
        log.info("metrics on http://%s:%d/metrics", s.metrics_host, self.metrics_port)
        app = self._app = build_app(self.kafka, s)
        topic = app.topic(self.topic, value_serializer="raw", key_serializer="raw")
        app.agent(topic, name=f"{self.group}.sessionize", concurrency=1)(self._agent)
        app.timer(_TICK_S, name=f"{self.group}.tick")(self._tick)
        app.on_partitions_revoked.connect(self._on_revoked, weak=False)
        app.on_rebalance_complete.connect(self._on_rebalance_complete, weak=False)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        await app.start()
        try:
            stopping = asyncio.ensure_future(self._stopping.wait())
            crashed = asyncio.ensure_future(app.wait_until_stopped())
            await asyncio.wait({stopping, crashed}, return_when=asyncio.FIRST_COMPLETED)
            for fut in (stopping, crashed):
                fut.cancel()
            if app.crash_reason is not None and self._failure is None:
                self._failure = app.crash_reason
            if self._failure is None:
                async with self._lock:
                    if self.until_idle_s is not None:
                        self._advance_all(final=True)
                    await self._flush_all()
                    waiting = self._waiting()
                    self.left_open, self.left_waiting = waiting.open_episodes, waiting.rows
        except BaseException as exc:
            self._fail(exc)
        finally:
            with contextlib.suppress(Exception):
                await app.stop()
        if self._failure is not None:
            log.error("stopped after a failure: %r", self._failure)
            return 1
        log.info("stopped: %d events, %d rows written", self.events_seen, self.rows_written)
        return 0

    # ------------------------------------------------------------------ Faust agent + timer
    async def _agent(self, stream: Any) -> None:
        """Faust agent: records of ``<prefix>.events`` in batches, acknowledged after Delta."""
        take = stream.noack_take(self.settings.fetch_max_records, within=_TICK_S / 2)
        async for events in take:
            if self._failure is not None:
                continue
            try:
                async with self._lock:
                    await self._process(events)
            except Exception as exc:
                self._fail(exc)

    async def _process(self, events: list[Any]) -> None:
        now_ms = int(self._wall() * 1000)
        parts = self._parts
        got = 0
        max_rows = self.settings.batch_max_rows
        for event in events:
            message = event.message
            part = parts.get(message.partition)
            if part is None:
                continue  # revoked meanwhile: its new owner reads it again
            offset = message.offset
            if offset <= part.last_offset:  # already processed (and maybe in the table)
                if offset <= part.committed:
                    event.ack()
                else:
                    part.acks.append(event)
                continue
            sess = part.sessionizer
            sess.process_record(message.value, offset, now_ms)
            part.last_offset = offset
            part.acks.append(event)
            got += 1
            self._collect(part)
            if self._pending_rows >= max_rows:
                await self._seal_and_start()
        if got:
            self._last_record_at = time.monotonic()
        self._advance_all(final=False)
        if self._due():
            await self._seal_and_start()

    async def _tick(self) -> None:
        """Faust timer: close windows of caught-up partitions, flush by time, detect idleness."""
        if self._failure is not None or self._stopping.is_set():
            return
        try:
            async with self._lock:
                self._advance_all(final=False)
                if self._due():
                    await self._seal_and_start()
            now = time.monotonic()
            if now - self._last_report > 5.0 and not self._drain.started:  # it said why
                self._last_report = now
                log.info(
                    "events %d, rows written %d, open episodes %d",
                    self.events_seen,
                    self.rows_written,
                    sum(p.sessionizer.open_episodes for p in self._parts.values()),
                )
            if self._app is not None and self._app.rebalancing:
                # Partitions may be on their way here (a worker died): not idle.
                self._last_record_at = now
            elif self.until_idle_s is not None and self._assigned_once:
                idle_since = max(self._last_record_at, self._assigned_at)
                if now - idle_since < self.until_idle_s:
                    self._drain.close()  # events came (back): not waiting any more
                    self._drain_since = None
                elif self._drained(now):
                    self._drain.close()
                    log.info("idle for %.1fs: committing and exiting", self.until_idle_s)
                    self.stop()
        except Exception as exc:
            self._fail(exc)

    def _waiting(self) -> DrainStatus:
        """Rows that the clock alone will still make final, summed over the partitions."""
        rows, deadline, open_episodes = 0, -1, 0
        for part in self._parts.values():
            w = part.sessionizer.waiting(include_open=self.close_open_at_exit)
            rows += w.rows
            deadline = max(deadline, w.deadline_ms)
            open_episodes += w.open_episodes
        # A caught-up partition's clock is wall time minus the slack (see _advance_all).
        slack_ms = self.settings.idle_clock_slack_s * 1000
        left = max(0.0, (deadline + slack_ms - self._wall() * 1000) / 1000) if rows else 0.0
        return DrainStatus(rows, left, open_episodes)

    def _drained(self, now: float) -> bool:
        """Batch mode, idle: true once no row waits for its reward window any more.

        The wait is bounded by one reward window (plus the clock slack) from its start: rows
        whose event time lies ahead of this machine's clock stay in the checkpoint, counted in
        the exit line, rather than holding the batch job up.
        """
        status = self._waiting()
        if status.rows == 0:
            return True
        if self._drain_since is None:
            self._drain_since = now
        limit = self.settings.reward_window_s + self.settings.idle_clock_slack_s + 1.0
        if now - self._drain_since > limit:
            log.warning(
                "%d rows still wait for reward windows after %.0f s (event times ahead of "
                "this machine's clock?); they stay in the checkpoint",
                status.rows,
                limit,
            )
            return True
        self._drain.update(status)
        return False

    def _due(self) -> bool:
        """Time to seal a batch: enough rows, or ``batch_max_seconds`` since the last one.

        Every commit also checkpoints every open episode, which while catching up on a
        backlog (many episodes inside their reward windows) costs as much as the rows. So
        the time limit is stretched ``_BEHIND_STRETCH`` times while a backlog waits
        (latency is the backlog's anyway), and ``_OFFSETS_ONLY_STRETCH`` times when the
        batch would only record offsets (no row, no dead letter: nobody waits for it).
        """
        s = self.settings
        if self._pending_rows >= s.batch_max_rows:
            return True
        elapsed = time.monotonic() - self._last_flush
        if elapsed < s.batch_max_seconds * (_BEHIND_STRETCH if self._behind else 1):
            return False
        if self._pending_rows or any(part.letters for part in self._parts.values()):
            return True
        return elapsed >= s.batch_max_seconds * _OFFSETS_ONLY_STRETCH

    def _collect(self, part: _Partition) -> None:
        """Move a partition's new output (rows, dead letters, counts) into its pending batch."""
        out = part.sessionizer.take_output()
        if out.rows:
            part.rows.extend(out.rows)
            self._pending_rows += len(out.rows)
        if out.dead_letters:
            part.letters.extend(out.dead_letters)
        if out.events:
            events = self.metrics.events
            for (etype, outcome), n in out.events.items():
                events(self.group, etype, outcome).inc(n)
                self.events_seen += n

    def _advance_all(self, final: bool) -> None:
        """Advance caught-up partitions' clocks and move their output into the pending batch."""
        consumer = self._app.consumer if self._app is not None else None
        now_ms = int(self._wall() * 1000)
        wall_clock_ms = now_ms - int(self.settings.idle_clock_slack_s * 1000)
        waiting = 0
        for p, part in self._parts.items():
            high = None
            if consumer is not None:
                with contextlib.suppress(Exception):
                    high = consumer.highwater(TP(self.topic, p))
            if high is not None:
                lag = high - part.last_offset - 1
                self.metrics.lag(self.group, str(p)).set(max(0, lag))
                if lag > 0:
                    waiting += lag
            if final or (high is not None and part.last_offset + 1 >= high):
                part.sessionizer.advance(wall_clock_ms)
            if final and self.close_open_at_exit:
                part.sessionizer.close_open(wall_clock_ms)
            self._collect(part)
        self.metrics.open_episodes.set(
            sum(p.sessionizer.open_episodes for p in self._parts.values())
        )
        now = time.monotonic()
        if waiting:  # records are waiting: not idle, however long one batch took
            self._last_record_at = now
        else:
            self._caught_up_at = now
        # A backlog: records kept waiting for longer than a time batch. A worker that keeps
        # up empties what it fetched again and again; one that cannot never does.
        self._behind = now - self._caught_up_at >= self.settings.batch_max_seconds

    # ------------------------------------------------------------------ commit
    async def _seal_and_start(self) -> None:
        """Wait for the commit in flight, then hand the pending work to a new one."""
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            await inflight
        self._last_flush = time.monotonic()
        sealed = self._seal()
        if sealed is not None:
            self._inflight = asyncio.ensure_future(self._commit(sealed))

    async def _flush_all(self) -> None:
        """Commit everything pending and wait for it."""
        await self._seal_and_start()
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            await inflight

    def _seal(self) -> _Sealed | None:
        advanced = {
            p: part
            for p, part in self._parts.items()
            if part.last_offset > part.sealed_offset or part.rows or part.letters
        }
        if not advanced:
            # Acks of re-delivered records already in the table may still be pending.
            return None
        batches, snapshots, letters, acks = [], {}, [], {}
        for p, part in advanced.items():
            part.checkpoint += 1
            batches.append(PartitionBatch(p, part.last_offset, part.checkpoint, part.rows))
            snapshots[p] = part.sessionizer.snapshot()
            letters.extend((p, letter) for letter in part.letters)
            acks[p] = part.acks
            part.sealed_offset = part.last_offset
            part.rows, part.letters, part.acks = [], [], []
        self._pending_rows = sum(len(part.rows) for part in self._parts.values())
        return _Sealed(advanced, batches, snapshots, letters, acks)

    async def _commit(self, sealed: _Sealed) -> None:
        """DLQ, checkpoints, Delta (with offsets), then acks and Kafka offsets."""
        app = self._app
        assert self._sink is not None and self._store is not None
        started = time.perf_counter()
        if sealed.letters:
            futures = []
            for p, letter in sealed.letters:
                key, value, headers = dlq_record(letter, self.topic, p)
                futures.append(
                    await app.producer.send(self.kafka.dlq_topic, key, value, None, None, headers)
                )
                self.metrics.dlq(self.group, letter.reason).inc()
            await asyncio.gather(*futures)
        processed_at = int(self._wall() * 1_000_000)
        for b in sealed.batches:
            for row in b.rows:
                row["processed_at"] = processed_at
        store, sink, snapshots = self._store, self._sink, sealed.snapshots
        numbers = {b.partition: b.checkpoint for b in sealed.batches}

        def write() -> tuple[int, list[int], float]:
            for p, snap in snapshots.items():
                store.save(p, numbers[p], snap)
            return sink.commit(sealed.batches)

        rows, lost, _secs = await asyncio.to_thread(write)
        done = self._wall()
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        done_ms = done * 1000.0
        self.metrics.observe_latencies(
            [
                max(0.0, done_ms - row["_last_event_ts"]) / 1000.0
                for b in sealed.batches
                if b.partition not in lost
                for row in b.rows
            ]
        )
        self.metrics.rows.inc(rows)
        self.rows_written += rows
        keep = {}
        for b in sealed.batches:
            p = b.partition
            part = sealed.parts[p]
            if p in lost:
                log.warning("partition %d was taken over by another worker; dropping it", p)
                if self._parts.get(p) is part:
                    del self._parts[p]
                continue
            part.committed = b.last_offset
            for event in sealed.acks[p]:
                event.ack()
            keep[p] = b.checkpoint
        if keep:
            try:
                await app.consumer.commit()
            except Exception as exc:  # the table stays the truth
                log.warning("Kafka offset commit failed (%r); the Delta table has them", exc)
            await asyncio.to_thread(self._prune, keep)

    def _prune(self, keep: dict[int, int]) -> None:
        assert self._store is not None
        for p, number in keep.items():
            self._store.prune(p, number)

    # ------------------------------------------------------------------ rebalance hooks
    async def _on_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        """Faust hook: commit everything pending before the partitions go."""
        try:
            async with self._lock:
                mine = [tp.partition for tp in revoked if tp.topic == self.topic]
                if mine and self._failure is None:
                    await self._flush_all()
                for p in mine:
                    self._parts.pop(p, None)
                if self._sink is not None:
                    self._sink.forget(mine)
        except Exception as exc:
            self._fail(exc)

    async def _on_rebalance_complete(self, sender: Any, **_: Any) -> None:
        """Faust hook (before it seeks to committed offsets): resume where the table says."""
        try:
            async with self._lock:
                await self._assign()
        except Exception as exc:
            self._fail(exc)

    async def _assign(self) -> None:
        app = self._app
        assert self._sink is not None and self._store is not None
        mine = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == self.topic)
        for p in [p for p in self._parts if p not in mine]:
            self._parts.pop(p, None)
        new = [p for p in mine if p not in self._parts]
        found = await asyncio.to_thread(self._sink.committed, new)
        positions = {}
        for p in new:
            rec = found[p]
            sess = PartitionSessionizer(self.config)
            if rec.offset is None:
                self._parts[p] = _Partition(sess, -1, -1, rec.checkpoint or 0, -1)
                positions[TP(self.topic, p)] = 0
                continue
            snap = None
            if rec.checkpoint is not None:
                snap = await asyncio.to_thread(self._store.load, p, rec.checkpoint)
            if snap is None:
                log.error(
                    "no state checkpoint %s for partition %d in %s: resuming after offset "
                    "%d with empty episode state (open episodes lose their earlier events)",
                    rec.checkpoint,
                    p,
                    self.settings.resolved_state_uri(),
                    rec.offset,
                )
            else:
                sess.restore(snap)
            self._parts[p] = _Partition(
                sess, rec.offset, rec.offset, rec.checkpoint or 0, rec.offset
            )
            positions[TP(self.topic, p)] = rec.offset + 1
        if positions:
            # Faust seeks to the group's committed offsets right after this hook: make them
            # the table's. ``Consumer._commit`` is Faust's transport-level commit of explicit
            # offsets (the public ``commit()`` only commits acknowledged ones).
            try:
                await app.consumer._commit(positions)
            except Exception as exc:  # records at or below the table's offsets are skipped
                log.warning("could not align group offsets with the table: %r", exc)
        log.info(
            "assigned partitions %s (resuming after %s)",
            mine,
            {p: found[p].offset for p in new},
        )
        self._assigned_once = True
        self._assigned_at = time.monotonic()
