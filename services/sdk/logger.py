"""``DecisionLogger``: what an application calls to log decisions, rewards and episode ends.

The caller's thread only validates (the schema's rules and increasing steps per episode), packs
the event with msgpack and appends it to an in-memory deque; a background :class:`Sender`
thread batches per partition and delivers to Kafka or the disk spool. So a ``decision(...)``
call costs microseconds and never waits for the network, invalid input raises at the call and
never reaches Kafka, and ``flush()`` is where a caller learns whether the broker has everything.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import secrets
import sys
import time
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry

from schemas.decision_outcome import outcome_valid
from schemas.event_builders import decision_event, episode_end_event, reward_event
from schemas.events import validate_event
from schemas.wire import BATCH_OVERHEAD_BYTES
from services.kafka_settings import KafkaSettings
from services.sdk.errors import SdkError
from services.sdk.event_queue import EventQueue
from services.sdk.intake import EventIntake
from services.sdk.metrics import CallerCounts, sdk_metrics
from services.sdk.sender import Sender
from services.sdk.settings import SdkSettings
from services.sdk.spool import DiskSpool
from services.sdk.spool_losses import CloseReport, LossCounts

__all__ = ["DecisionLogger"]

log = logging.getLogger(__name__)

_open_loggers: weakref.WeakSet[DecisionLogger] = weakref.WeakSet()


@atexit.register
def _close_open_loggers() -> None:
    """At interpreter exit, deliver or spool what open loggers still hold."""
    for logger in list(_open_loggers):
        try:
            logger.close(timeout=logger.settings.close_timeout_s)
        except Exception as exc:  # pragma: no cover - best effort at exit
            log.error("closing a DecisionLogger at exit: %s", exc)


class DecisionLogger:
    """Logs a stochastic policy's decisions, rewards and episode ends to ``<prefix>.events``.

    Thread-safe: several application threads may log through one logger. Use it as a context
    manager, or call :meth:`close`, so that what is queued is delivered or spooled.
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        topic_prefix: str = "policyloop",
        *,
        kafka: KafkaSettings | None = None,
        settings: SdkSettings | None = None,
        producer_options: dict[str, Any] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if kafka is None:
            kafka = KafkaSettings(topic_prefix=topic_prefix)
            if bootstrap_servers is not None:
                kafka = kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
        elif bootstrap_servers is not None:
            kafka = kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
        self.kafka = kafka
        self.settings = settings = settings or SdkSettings()
        if settings.switch_interval_s is not None:
            sys.setswitchinterval(settings.switch_interval_s)
        self._queue = EventQueue()
        self._lock = self._queue.lock
        self._counts = CallerCounts()
        self._id_prefix = secrets.token_hex(6) + "-"
        self._ids = itertools.count()
        self._metrics = sdk_metrics(registry)
        self._spool = DiskSpool(
            settings.spool_dir,
            settings.spool_max_bytes,
            settings.spool_segment_bytes,
            fsync=settings.spool_fsync,
        )
        self._sender = Sender(
            self._queue,
            kafka,
            settings,
            self._spool,
            self._metrics,
            self._counts,
            producer_options,
        )
        self._intake = EventIntake(
            self._queue,
            self._sender,
            settings,
            self._counts,
            settings.record_max_bytes - BATCH_OVERHEAD_BYTES,
            kafka.bootstrap_servers,
        )
        self._sender.start()
        _open_loggers.add(self)

    # -- logging -------------------------------------------------------------------------------
    def decision(
        self,
        episode_id: str,
        step: int,
        state: dict[str, float],
        action: str | int,
        possible_actions: list[str | int],
        propensity: float,
        policy_version: str,
        *,
        action_probs: list[float] | None = None,
        context: dict[str, str] | None = None,
        action_features: dict[str, dict[str, float]] | None = None,
        event_id: str | None = None,
        ts: int | None = None,
    ) -> str:
        """Log that ``action`` was taken with probability ``propensity``; returns the event id.

        ``action_features``: per possible action (as text: the action 1 is ``"1"``), its
        features (name -> number); carried to the timeline's ``action_features`` column. The
        event is then of contract version 2 (``schemas/action_features.py``)."""
        if event_id is None:
            event_id = f"{self._id_prefix}{next(self._ids)}"
        event = decision_event(
            event_id,
            episode_id,
            step,
            time.time_ns() // 1_000_000 if ts is None else ts,
            state,
            action,
            possible_actions,
            propensity,
            policy_version,
            action_probs,
            context,
            action_features,
        )
        self._submit(event, episode_id, False)
        return event_id

    def reward(
        self,
        episode_id: str,
        step: int,
        reward: float,
        *,
        metrics: dict[str, float] | None = None,
        event_id: str | None = None,
        ts: int | None = None,
    ) -> str:
        """Log the reward of the decision at ``step``; returns the event id."""
        if event_id is None:
            event_id = f"{self._id_prefix}{next(self._ids)}"
        event = reward_event(
            event_id,
            episode_id,
            step,
            time.time_ns() // 1_000_000 if ts is None else ts,
            reward,
            metrics,
        )
        self._submit(event, episode_id, False)
        return event_id

    def end_episode(
        self,
        episode_id: str,
        terminal: bool,
        *,
        last_step: int | None = None,
        event_id: str | None = None,
        ts: int | None = None,
    ) -> str:
        """Log that the episode ended (``terminal``) or was cut; returns the event id."""
        if event_id is None:
            event_id = f"{self._id_prefix}{next(self._ids)}"
        event = episode_end_event(
            event_id,
            episode_id,
            time.time_ns() // 1_000_000 if ts is None else ts,
            terminal,
            last_step,
        )
        self._submit(event, episode_id, True)
        return event_id

    def checked_decisions(self, events: Sequence[dict[str, Any]]) -> list[Exception | None]:
        """Log decision events (built by ``schemas.event_builders.decision_event``) whose
        caller-given fields already passed ``validate_event``; each gets None (logged) or the
        exception :meth:`decision` would have raised for it, in order.

        For a service that checks each request against the contract before its policy runs
        (the decision service) and logs a batch of decisions at once: the fields the policy
        filled in are checked by ``schemas.decision_outcome.outcome_valid`` (anything it is
        unsure of goes through ``validate_event``, so a refusal is the contract's), and the
        batch takes the queue's lock once. An event whose other fields were not validated must
        go through :meth:`decision` instead."""
        valid: list[dict[str, Any]] = []
        refused: dict[int, Exception] = {}
        for i, event in enumerate(events):
            if not outcome_valid(event):
                try:
                    validate_event(event)
                except Exception as exc:
                    refused[i] = exc
                    continue
            valid.append(event)
        submitted = iter(self._intake.submit_many(valid))
        return [refused[i] if i in refused else next(submitted) for i in range(len(events))]

    def _submit(self, event: dict[str, Any], episode_id: str, is_end: bool) -> None:
        validate_event(event)
        self._intake.submit(event, episode_id, is_end)

    # -- delivery ----------------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        """Events accepted and held in memory (not yet handed to Kafka or the spool)."""
        return len(self._queue) + self._sender.held_events

    @property
    def accepted_events(self) -> int:
        """Events accepted so far; the n-th is on disk once :meth:`durable_events` reaches n."""
        return self._counts.accepted_total

    def durable_events(self, wake: bool = False) -> int:
        """With ``sdk.spool_write_through``: the first this-many accepted events are synced to
        the spool and survive ``kill -9`` (``durable_progress.py``); 0 without it. ``wake``:
        ask the sender for a loop now instead of after ``linger_ms``."""
        if wake:
            self._sender.wake()
        return self._sender.durable.events

    @property
    def connected(self) -> bool:
        """The producer is connected and the broker takes records (no outage detected)."""
        return self._sender.producer_ready and not self._sender.outage

    #: The spool's losses as last reported by flush() (``None``: nothing reported yet).
    _reported: LossCounts | None = None

    def flush(self, timeout: float | None = None) -> None:
        """Return once the broker acknowledged everything accepted so far (and spool leftovers).

        Raises :class:`TimeoutError` after ``timeout`` seconds saying how many events are still
        queued, in flight or spooled (nothing is lost by the timeout: they stay queued).

        Events that can no longer be sent (in spool entries moved to the quarantine file, in
        spool data removed under the logger, dropped at close) are not waited for: once the
        rest is acknowledged, :class:`SdkError` says how many were lost since the last report,
        why, and where the quarantine file is.
        """
        self._wait_settled(timeout)
        self._metrics.publish(self._counts, self._spool.losses)
        losses = self._spool.losses
        now = losses.counts()
        new = now.since(self._reported or LossCounts())
        self._reported = now
        if new.lost_events or new.unsized_entries:
            raise SdkError(losses.describe(new, self.settings.spool_max_bytes))

    def _wait_settled(self, timeout: float | None) -> None:
        """Wait until every event accepted (or left in the spool) is acknowledged or lost."""
        sender = self._sender
        target = self._counts.accepted_total + sender.leftover_events
        deadline = None if timeout is None else time.monotonic() + timeout
        sender.wake()
        delay = 0.0005
        while sender.settled_events < target:
            if sender.fatal is not None:
                raise SdkError("the SDK sender thread failed") from sender.fatal
            if not sender.is_alive():
                raise SdkError("the SDK sender thread is not running (logger closed?)")
            if deadline is not None and time.monotonic() >= deadline:
                pending = sender.pending_summary()
                raise TimeoutError(
                    f"flush timed out after {timeout:g}s: {target - sender.settled_events} "
                    f"events are not acknowledged by the broker at "
                    f"{self.kafka.bootstrap_servers} ({pending['queued']} queued in memory, "
                    f"{pending['in_flight']} in flight, {pending['spooled']} spooled to disk "
                    f"at {self._spool.directory}); they are kept and re-sent"
                    + (
                        f". The disk spool refuses writes: {sender.spool_error}"
                        if sender.spool_error
                        else ""
                    )
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
            sender.wake()

    def close(self, timeout: float | None = None) -> CloseReport:
        """Flush (up to ``timeout``), then stop the sender; what is unacknowledged is spooled.

        ``timeout`` defaults to ``sdk.close_timeout_s`` so that leaving a ``with`` block never
        hangs on an unreachable broker.

        After a flush timeout nothing is lost: queued and in-flight events are written to the
        disk spool and the next logger started on the same ``spool_dir`` sends them first.

        Returns a :class:`~services.sdk.spool_losses.CloseReport`: the events kept in the disk
        spool, and those that can no longer be sent over the logger's life, by reason (also
        logged and counted). close() does not raise for them: it runs when a ``with`` block is
        left and at interpreter exit.
        """
        with self._lock:
            if self._intake.closed:
                return self._close_report()
            self._intake.closed = True
        _open_loggers.discard(self)
        if timeout is None:
            timeout = self.settings.close_timeout_s
        try:
            if self._sender.is_alive():
                self._wait_settled(timeout)
        except TimeoutError as exc:
            log.warning("%s", exc)
        finally:
            self._sender.stop()
            pending = self._spool.unread_events
            if pending:
                log.warning(
                    "%d events remain in the disk spool %s; a DecisionLogger started on it "
                    "sends them first",
                    pending,
                    self._spool.directory,
                )
        report = self._close_report()
        if report.lost_events or report.lost.unsized_entries:
            log.error(
                "DecisionLogger closed: %s",
                self._spool.losses.describe(report.lost, self.settings.spool_max_bytes),
            )
        return report

    def _close_report(self) -> CloseReport:
        losses = self._spool.losses
        quarantine = losses.quarantine_file
        return CloseReport(
            self._spool.unread_events,
            losses.counts(),
            str(self._spool.directory),
            None if quarantine is None else str(quarantine),
        )

    def __enter__(self) -> DecisionLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
