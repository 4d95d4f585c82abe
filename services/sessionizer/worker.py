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
  seeks the assigned partitions to their committed offsets) claims each new partition in the
  table (``fencing.py``: a worker cut off from the broker that still believes it owns one can
  then commit nothing more for it), reads its recorded offset ``V`` and checkpoint number back
  from the table, loads that checkpoint and commits ``V + 1`` as the group's offset, so
  Faust's seek lands on ``V + 1``. Records at or below the recorded offset are skipped anyway
  (belt and braces), so (``episode_id``, ``step``) stays unique however the worker dies.
  Faust has no public call that commits *given* offsets (``app.consumer.commit()`` commits
  acknowledged ones only) and no hook after its own seek, so this one step uses the
  transport-level ``Consumer._commit`` (faust-streaming 0.15.3), behind
  ``rebalance.commit_group_offsets``.
* **Flush before revoke.** ``app.on_partitions_revoked`` commits everything pending to Delta
  (and acknowledges it) before the partitions go; ``stream_wait_empty`` is off because Faust
  would otherwise wait for acknowledgements that only this hook produces.
* **State**: no Faust tables. A changelog topic cannot be committed atomically with a Delta
  commit without Kafka transactions (the embedded broker has none), so after a ``kill -9`` a
  changelog and the table could disagree. The equivalent used instead: each partition's
  episode state is saved as a MessagePack checkpoint whose number is recorded in the *same*
  Delta commit as the rows and offsets (``checkpoint.py``); on assignment exactly the
  checkpoint that produced the table's rows is loaded.

Batches: every ``batch_max_rows`` rows or ``batch_max_seconds`` (stretched while a backlog waits
or when only offsets moved, see ``PendingBatch.due``) the pending work is *sealed* (rows, dead
letters, offsets, the state checkpoint -- full, or the changes since the last --, the events to
acknowledge) and committed in the background in this order: dead letters sent to
``<prefix>.dlq`` and flushed; checkpoints saved; one Delta append with each partition's last
offset and checkpoint number as transaction versions; events acknowledged and offsets committed
to Kafka. At most one commit is in flight and commits happen in order, so consuming and
sessionizing the next batch overlaps the Delta write of the previous one.

Where each part lives: this module wires Faust (agent, timer, hooks) and runs the worker's life;
``batching.py`` holds the pending batch and when to seal it, ``committer.py`` the commit in the
order above, ``rebalance.py`` the revoke flush and the resume from the table (with the one
private Faust call), ``sessionize.py`` the rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from faust.types import TP

from services.kafka_settings import KafkaSettings
from services.sessionizer.batching import PendingBatch
from services.sessionizer.checkpoint import CheckpointStore
from services.sessionizer.committer import Committer
from services.sessionizer.drain import DrainProgress, DrainStatus
from services.sessionizer.faust_app import build_app
from services.sessionizer.metrics import SessionizerMetrics
from services.sessionizer.rebalance import PartitionAssigner
from services.sessionizer.sessionize import SessionConfig
from services.sessionizer.settings import SessionizerSettings
from services.sessionizer.sink import DeltaSink

__all__ = ["SessionizerWorker", "session_config"]

log = logging.getLogger("policyloop.sessionizer")

_TICK_S = 0.1


def session_config(settings: SessionizerSettings) -> SessionConfig:
    """The pure sessionizer's rules from the settings (seconds → milliseconds)."""
    return SessionConfig(
        reward_window_ms=round(settings.reward_window_s * 1000),
        aggregation=settings.reward_aggregation,
        default_reward=settings.default_reward,
        episode_timeout_ms=round(settings.episode_timeout_s * 1000),
        closed_memory_episodes=settings.closed_memory_episodes,
        max_future_skew_ms=round(settings.max_future_skew_s * 1000),
        max_open_episodes=settings.max_open_episodes,
        max_episode_events=settings.max_episode_events,
        max_episode_event_ids=settings.max_episode_event_ids,
    )


class SessionizerWorker:
    """One worker of the consumer group, writing ``table_uri``; :meth:`run` until stopped or
    idle (``until_idle_s``: batch mode, see docs/architecture.md section 4)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: SessionizerSettings,
        *,
        table_uri: str,
        until_idle_s: float | None = None,
        close_open_at_exit: bool = False,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.table_uri = table_uri
        self.until_idle_s = until_idle_s
        self.close_open_at_exit = close_open_at_exit
        self._wall = wall_clock
        self.group = settings.app_id
        self.topic = kafka.events_topic
        self.config = session_config(settings)
        self.metrics = SessionizerMetrics(self.group)
        self.metrics_port: int | None = None
        self._state_uri = settings.resolved_state_uri(table_uri)
        self._batch = PendingBatch(settings, self.metrics, self.group)
        self._committer = Committer(kafka, self.group, self._batch, self.metrics, wall_clock)
        self._assigner = PartitionAssigner(
            self.topic, self.config, self._batch, self._committer, self._state_uri
        )
        self._lock = asyncio.Lock()  # one of agent, timer and hooks at a time
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._app: Any = None
        self._last_record_at = 0.0
        self._last_report = time.monotonic()
        self._drain = DrainProgress()
        self._drain_since: float | None = None
        self.left_open = 0  # at exit: episodes not ended, kept in the checkpoint
        self.left_waiting = 0  # at exit: rows whose reward window had not closed

    @property
    def events_seen(self) -> int:
        """Events consumed so far (every outcome)."""
        return self._batch.events_seen

    @property
    def rows_written(self) -> int:
        """Timeline rows committed so far."""
        return self._committer.rows_written

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
        sink = await asyncio.to_thread(DeltaSink, self.table_uri, self.group, self.topic)
        store = CheckpointStore(self._state_uri, self.group, self.topic)
        self.metrics_port = self.metrics.serve(s.metrics_port, s.metrics_host)
        log.info("metrics on http://%s:%d/metrics", s.metrics_host, self.metrics_port)
        app = self._app = build_app(self.kafka, s)
        self._committer.attach(app, sink, store)
        topic = app.topic(self.topic, value_serializer="raw", key_serializer="raw")
        app.agent(topic, name=f"{self.group}.sessionize", concurrency=1)(self._agent)
        app.timer(_TICK_S, name=f"{self.group}.tick")(self._tick)
        # Faust's signal types want handlers of (sender, *args, signal=..., **kwargs).
        revoked, assigned = app.on_partitions_revoked, app.on_rebalance_complete
        revoked.connect(self._on_revoked, weak=False)  # type: ignore[arg-type]
        assigned.connect(self._on_rebalance_complete, weak=False)  # type: ignore[arg-type]
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
                    await self._committer.flush()
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
        batch = self._batch
        parts = batch.parts
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
            part.sessionizer.process_record(message.value, offset, now_ms)
            part.last_offset = offset
            part.acks.append(event)
            got += 1
            batch.collect(part)
            if batch.rows >= max_rows:
                await self._committer.seal_and_start()
        if got:
            self._last_record_at = time.monotonic()
        self._advance_all(final=False)
        if batch.due():
            await self._committer.seal_and_start()

    async def _tick(self) -> None:
        """Faust timer: close windows of caught-up partitions, flush by time, detect idleness."""
        if self._failure is not None or self._stopping.is_set():
            return
        try:
            async with self._lock:
                self._advance_all(final=False)
                if self._batch.due():
                    await self._committer.seal_and_start()
            now = time.monotonic()
            if now - self._last_report > 5.0 and not self._drain.started:  # it said why
                self._last_report = now
                log.info(
                    "events %d, rows written %d, open episodes %d",
                    self.events_seen,
                    self.rows_written,
                    sum(p.sessionizer.open_episodes for p in self._batch.parts.values()),
                )
            assigner = self._assigner
            if self._app is not None and self._app.rebalancing:
                # Partitions may be on their way here (a worker died): not idle.
                self._last_record_at = now
            elif self.until_idle_s is not None and assigner.assigned_once:
                idle_since = max(self._last_record_at, assigner.assigned_at)
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
        for part in self._batch.parts.values():
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

    def _advance_all(self, final: bool) -> None:
        """Close what each partition's watermark made due (caught-up partitions: quiet time too;
        ``final``: a batch run's end of input) and move their output into the pending batch."""
        consumer = self._app.consumer if self._app is not None else None
        now_ms = int(self._wall() * 1000)
        wall_clock_ms = now_ms - int(self.settings.idle_clock_slack_s * 1000)
        waiting = 0
        batch = self._batch
        for p, part in batch.parts.items():
            high = None
            if consumer is not None:
                with contextlib.suppress(Exception):
                    high = consumer.highwater(TP(self.topic, p))
            if high is not None:
                lag = high - part.last_offset - 1
                self.metrics.lag(self.group, str(p)).set(max(0, lag))
                if lag > 0:
                    waiting += lag
            if final:
                part.sessionizer.advance(wall_clock_ms)
            else:
                caught_up = high is not None and part.last_offset + 1 >= high
                part.sessionizer.expire(wall_clock_ms if caught_up else None)
            if final and self.close_open_at_exit:
                part.sessionizer.close_open(wall_clock_ms)
            batch.collect(part)
        self.metrics.open_episodes.set(
            sum(p.sessionizer.open_episodes for p in batch.parts.values())
        )
        now = time.monotonic()
        if waiting:  # records are waiting: not idle, however long one batch took
            self._last_record_at = now
        batch.track_backlog(waiting > 0, now)

    # ------------------------------------------------------------------ rebalance hooks
    async def _on_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        """Faust hook: commit everything pending before the partitions go."""
        try:
            async with self._lock:
                await self._assigner.revoke(revoked, flush=self._failure is None)
        except Exception as exc:
            self._fail(exc)

    async def _on_rebalance_complete(self, sender: Any, **_: Any) -> None:
        """Faust hook (before it seeks to committed offsets): resume where the table says."""
        try:
            async with self._lock:
                await self._assigner.assign(self._app.consumer)
        except Exception as exc:
            self._fail(exc)
