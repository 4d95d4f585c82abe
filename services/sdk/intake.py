"""The caller's half of :class:`~services.sdk.logger.DecisionLogger`: what happens to a valid
event in the caller's thread (room in the queue, encoded size, increasing steps, packing, the
hand-over to the sender), under the queue's lock.

Why a module of its own: the logger validates one event per call, but a caller that logs many
decisions at once (the decision service: one batch per event-loop turn) pays the lock, the
counters and a call chain once per batch through :meth:`EventIntake.submit_many`, with the same
rules and errors per event as :meth:`EventIntake.submit`.

:func:`schemas.decision_outcome.outcome_valid` is the other half of that fast path: for a
decision whose caller-given fields already passed :func:`~schemas.events.validate_event`, it
accepts the fields the policy filled in when they are certainly valid, and says "not sure"
otherwise, so that the caller runs ``validate_event`` and the event is refused with the
contract's own error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from schemas.events import EpisodeStepTracker, EventValidationError
from schemas.wire import pack_event
from services.sdk.errors import LoggerClosedError, SdkError, queue_full_error
from services.sdk.event_queue import EventQueue
from services.sdk.metrics import CallerCounts
from services.sdk.sender import Sender
from services.sdk.settings import SdkSettings

__all__ = ["EventIntake"]

log = logging.getLogger("services.sdk.logger")  # its warnings are the logger's


def _refusal(
    take: Callable[[dict[str, Any], str, bool], None], event: dict[str, Any]
) -> Exception | None:
    """What ``take`` (``_put`` or ``submit``) raised for a non-final ``event``, or None."""
    try:
        take(event, event["episode_id"], False)
    except Exception as exc:
        return exc
    return None


class EventIntake:
    """Takes valid events into the queue (see the module doc); thread-safe through the
    queue's lock, which :class:`DecisionLogger` also holds to close."""

    def __init__(
        self,
        queue: EventQueue,
        sender: Sender,
        settings: SdkSettings,
        counts: CallerCounts,
        max_event_bytes: int,
        bootstrap_servers: str,
    ) -> None:
        self.queue = queue
        self.lock = queue.lock
        self.sender = sender
        self.settings = settings
        self.counts = counts
        self.tracker = EpisodeStepTracker(settings.max_open_episodes)
        self.max_queue = settings.queue_max_events
        self.max_event_bytes = max_event_bytes
        self.bootstrap_servers = bootstrap_servers
        self.closed = False  # set under ``lock`` by the logger's close

    def submit(self, event: dict[str, Any], episode_id: str, is_end: bool) -> None:
        """Queue one validated event, or wait, drop or raise as ``when_full`` says."""
        deadline: float | None = None
        while True:
            with self.lock:
                if self.closed:
                    raise self._closed_error(event)
                if len(self.queue) + self.sender.held_events < self.max_queue:
                    self._put(event, episode_id, is_end)
                    return
                if self.settings.when_full == "drop":
                    self.tracker.check(event)
                    dropped = self.counts.dropped
                    dropped["queue_full"] = so_far = dropped.get("queue_full", 0) + 1
                    break
            # Full: wait for the sender outside the lock (it takes the queue under it).
            if deadline is None:
                deadline = time.monotonic() + self.settings.block_timeout_s
                self.sender.wake()
            self._check_full_wait(event, deadline)
            time.sleep(0.0005)
        log.warning(
            "dropped a %s event of episode %s: the queue holds queue_max_events=%d events "
            "and when_full=drop (dropped so far: %d)",
            event["type"],
            episode_id,
            self.max_queue,
            so_far,
        )

    def submit_many(self, events: Sequence[dict[str, Any]]) -> list[Exception | None]:
        """:meth:`submit` of each validated, non-final event (keyed by its ``episode_id``), in
        order, under one hold of the lock while the queue has room; each gets None or the
        exception ``submit`` raised for it, so that one refusal is that event's alone."""
        results: list[Exception | None] = []
        with self.lock:
            if self.closed:
                return [self._closed_error(event) for event in events]
            queue, held = self.queue, self.sender
            for event in events:
                if len(queue) + held.held_events >= self.max_queue:
                    break  # full: the rest wait (or drop) one by one, outside the lock
                results.append(_refusal(self._put, event))
        results.extend(_refusal(self.submit, event) for event in events[len(results) :])
        return results

    def _put(self, event: dict[str, Any], episode_id: str, is_end: bool) -> None:
        """Size, step order, pack and queue one event (the caller holds ``lock``)."""
        packed = pack_event(event)  # under the lock: the packer is shared
        if len(packed) > self.max_event_bytes:
            raise EventValidationError(
                "event",
                f"{len(packed)} bytes",
                f"encoded event must be at most {self.max_event_bytes} bytes "
                "(sdk.record_max_bytes)",
                event["type"],
            )
        self.tracker.check(event)
        self.queue.put(episode_id, packed, is_end)
        self.counts.accepted[event["type"]] += 1

    def _closed_error(self, event: Mapping[str, Any]) -> LoggerClosedError:
        return LoggerClosedError(
            f"this DecisionLogger is closed; the {event['type']} event was not logged"
        )

    def _check_full_wait(self, event: Mapping[str, Any], deadline: float) -> None:
        """Raise if the sender died or the queue stayed full past ``block_timeout_s``."""
        if self.sender.fatal is not None:
            raise SdkError("the SDK sender thread failed") from self.sender.fatal
        if time.monotonic() < deadline:
            return
        raise queue_full_error(
            self.max_queue,
            self.settings.block_timeout_s,
            event["type"],
            self.bootstrap_servers,
            self.sender.spool_full,
            self.sender.spool_error,
        )
