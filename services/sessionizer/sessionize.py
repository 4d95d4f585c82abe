"""Pure sessionization of one partition: records in, timeline rows and dead letters out.

Why pure and synchronous: every rule of the timeline (ordering, reward join, closing, late and
bad events) lives here with an injectable clock, so the golden tests pin exact rows without a
broker, and the worker around it only moves bytes and commits. One :class:`PartitionSessionizer`
owns the episodes of one Kafka partition (events are keyed by ``episode_id``, so an episode
never spans partitions).

Definitions (docs/architecture.md "The timeline table", made precise):

* **Clock.** Time is event time: the partition's *watermark* is the newest ``ts`` accepted, an
  event counting at most up to its arrival (the ``now_ms`` handed with its record); an event more
  than ``max_future_skew_ms`` ahead of its arrival is rejected (``invalid:ts``). Windows and
  timeouts close on the watermark (:meth:`PartitionSessionizer.expire`, after every fetch);
  quiet time closes the windows of rows whose successor is known but never times an episode out;
  :meth:`PartitionSessionizer.advance` is a batch run's end of input. ``watermark.py`` defines
  all of this and says why.
* **Reward of a decision** = the reward events with the same (``episode_id``, ``step``) whose
  ``ts`` is at most ``reward_window_ms`` after the decision's ``ts``; aggregated by ``sum`` or
  ``first`` (first to arrive); ``metrics`` the same way. None → ``default_reward``,
  ``reward_count`` 0, ``metrics`` null. A reward may arrive before its decision; it waits.
* **A row is final** when (a) its successor decision (next ``step`` received) or the episode's
  end is known and (b) the mark passed ``decision.ts + reward_window_ms`` (with ``first``: or a
  reward arrived); ``emission.py``. Decisions may arrive out of order until then: the reward
  window is also the re-ordering window.
* **Closing.** ``episode_end`` marks the end (``terminal`` true → terminal row, false →
  truncated row); the episode closes once its last row is written. ``episode_timeout_ms`` of
  watermark without an event closes it as truncated, windows or not.
* **Late** (dead letter ``late``): a reward past its window or for a row already written, and any
  event of an episode already closed (remembered for ``closed_memory_episodes`` episodes).
* **Duplicates**: an ``event_id`` remembered by the open episode is ignored and counted
  (outcome ``duplicate``). A second decision for a (episode, step) with another ``event_id``
  is a dead letter ``duplicate_step``; a second ``episode_end`` ``duplicate_end``; a decision
  after the end ``after_episode_end``; rewards whose decision never came ``orphan_reward``.
* **Bounded state**: open episodes, events held per episode and remembered ids are capped
  (``state_limits.py``; dead letters ``state_limit:<cap>``).
* Malformed records and invalid events go to dead letters with the reasons of
  :class:`schemas.wire.RecordDecodeError` and :class:`schemas.events.EventValidationError`.
  Nothing here raises on input.

State (``episode_state.py``) is exported with :meth:`snapshot` (plain msgpack-able data) and
rebuilt with :meth:`restore`; the worker checkpoints it next to each Delta commit (see
``checkpoint.py``); :meth:`take_changes` names the episodes changed since the last commit.
What a row holds, given the events it joins, is ``schemas/rows.py``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from schemas.events import EventValidationError, validate_event
from schemas.rows import TimelineRowBuilder
from schemas.wire import RecordDecodeError, decode_record, encode_event
from services.sessionizer.admission import admit_decision, admit_end, admit_reward
from services.sessionizer.config import SessionConfig
from services.sessionizer.emission import waiting_rows, write_final_rows
from services.sessionizer.episode_state import (
    END_STEP,
    OpenEpisode,
    Pending,
    new_pending,
    restore_state,
    snapshot_state,
)
from services.sessionizer.outputs import DeadLetter, Output, Waiting
from services.sessionizer.state_changes import snapshot_changes
from services.sessionizer.state_limits import (
    EPISODE_EVENTS,
    EVENT_IDS,
    OPEN_EPISODES,
    forget_event_ids,
    held_events,
    reason,
)
from services.sessionizer.watermark import DeadlineQueue, quiet_mark

__all__ = ["PartitionSessionizer", "SessionConfig"]

_ACCEPTED = {t: (t, "accepted") for t in ("decision", "reward", "episode_end")}


class PartitionSessionizer:
    """The sessionization state machine of one partition (see the module docstring)."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self._first = config.aggregation == "first"
        #: The partition's watermark: event time in ms (``watermark.py``); -1 before any event.
        self.watermark = -1
        self._last_arrival = -1  # wall time of the newest record: quiet time starts after it
        self._episodes: OrderedDict[str, OpenEpisode] = OrderedDict()  # least recent first
        self._closed: OrderedDict[str, int] = OrderedDict()
        self._deadlines = DeadlineQueue()
        # Read once per event, so kept as plain attributes (the hot path).
        self._push_deadline = self._deadlines.push
        self._parked = self._deadlines.parked
        self._window = config.reward_window_ms
        self._max_open = config.max_open_episodes
        self._max_held = config.max_episode_events
        self._max_ids = config.max_episode_event_ids
        self._changed: set[str] = set()  # episodes changed since the last take_changes
        self._out = Output()
        self._rows = TimelineRowBuilder(config.aggregation, config.default_reward)
        self._reject_item = self._reject  # bound once: handed to the admit_* rules per event

    # ------------------------------------------------------------------ input
    def process_record(self, value: bytes | None, offset: int, now_ms: int) -> None:
        """Decode, validate and apply one Kafka record value, read at wall time ``now_ms``.
        Never raises on bad input."""
        if now_ms > self._last_arrival:
            self._last_arrival = now_ms
        try:
            events = decode_record(value)
        except RecordDecodeError as err:
            self._dead(err.reason, str(err), value or b"", offset, None, "unknown")
            return
        single = len(events) == 1  # then the record itself is the event's original bytes
        max_ts = now_ms + self.config.max_future_skew_ms
        for index, event in enumerate(events):
            idx = None if single else index
            try:
                validate_event(event)
                if event["ts"] > max_ts:
                    raise EventValidationError(
                        "ts",
                        event["ts"],
                        f"is more than {self.config.max_future_skew_ms} ms in the future",
                        event["type"],
                    )
            except EventValidationError as err:
                etype = event.get("type") if type(event) is dict else None
                etype = etype if etype in ("decision", "reward", "episode_end") else "unknown"
                raw = (value or b"") if single else self._encode(event)
                self._dead(err.reason, str(err), raw, offset, idx, etype)
                continue
            self.apply(event, offset, idx, now_ms)

    @staticmethod
    def _encode(event: Any) -> bytes:
        try:
            return encode_event(event)
        except Exception:  # cannot happen for decoded msgpack; never crash on input anyway
            return repr(event).encode("utf-8", "replace")

    def apply(self, event: dict[str, Any], offset: int, index: int | None, now_ms: int) -> None:
        """Apply one already validated event that arrived at wall time ``now_ms``."""
        etype = event["type"]
        episode_id = event["episode_id"]
        ts = event["ts"]
        if episode_id in self._closed:
            detail = f"episode {episode_id!r} is already closed"
            self._reject("late", detail, Pending(offset, index, event))
            return
        episode = self._episodes.get(episode_id)
        if episode is None:
            if len(self._episodes) >= self._max_open:
                detail = (
                    f"{len(self._episodes)} episodes are open in this partition "
                    f"(max_open_episodes={self._max_open}); episode {episode_id!r} is not opened"
                )
                self._limit(OPEN_EPISODES, detail, Pending(offset, index, event))
                return
            episode = self._episodes[episode_id] = OpenEpisode()
        else:
            self._episodes.move_to_end(episode_id)
            self._changed.add(episode_id)  # its place in the order is state (incremental ckpt)
        event_id = event["event_id"]
        ids = episode.event_ids
        if event_id in ids:
            self._out.events[(etype, "duplicate")] += 1
            return
        item = new_pending((offset, index, event))
        cap = self._max_held
        if len(ids) >= cap and held_events(episode) >= cap:  # ids include every held event
            detail = (
                f"episode {episode_id!r} holds {cap} events not yet written "
                f"(max_episode_events={cap})"
            )
            self._limit(EPISODE_EVENTS, detail, item)
            return
        window = self._window
        if etype == "decision":
            ok = admit_decision(episode, item, window, self._reject_item, not self._first)
            if ok:  # look at the episode again when the decision's reward window ends
                self._push_deadline(ts + window, episode_id)
        elif etype == "reward":
            ok = admit_reward(episode, item, window, self._reject_item, not self._first)
        else:
            ok = admit_end(episode, item, self._reject_item)
        if not ok:
            if (
                not episode.decisions
                and not episode.rewards
                and episode.end is None
                and episode.emitted_count == 0
            ):
                del self._episodes[episode_id]
            return
        ids[event_id] = END_STEP if etype == "episode_end" else event["step"]
        if len(ids) > self._max_ids:
            forgotten = forget_event_ids(episode, self._max_ids)
            if forgotten:
                self._out.limits[EVENT_IDS] += forgotten
        counts = self._out.events
        key = _ACCEPTED[etype]
        counts[key] = counts.get(key, 0) + 1
        if ts > episode.last_ts:
            episode.last_ts = ts
        if ts > self.watermark:  # event time, counted at most up to its arrival (watermark.py)
            self.watermark = ts if ts <= now_ms else max(self.watermark, now_ms)
        self._changed.add(episode_id)
        if self._parked and etype != "reward":  # may complete a row quiet time found waiting
            self._deadlines.unpark(episode_id)
        self._emit_ready(episode_id, episode, False, now_ms, self.watermark)

    # ------------------------------------------------------------------ clock
    def expire(self, idle_now_ms: int | None = None) -> None:
        """Write what the watermark made final or timed out (the worker calls this after every
        fetch and tick); with ``idle_now_ms`` (wall time minus the slack, for a caught-up
        partition) also close, on quiet time, the windows of rows whose successor is known."""
        mark = quiet_mark(self.watermark, idle_now_ms, self._last_arrival)
        self._close_due(mark, mark)
        self._time_out(self.watermark, mark)

    def advance(self, now_ms: int) -> None:
        """End of input (a batch run's end): close the windows and time out the episodes that
        are due as of ``now_ms``, without moving the watermark (a later run's replay is still
        judged on event time)."""
        mark = max(self.watermark, now_ms)
        self._close_due(mark, now_ms)
        self._time_out(mark, now_ms)

    def _close_due(self, mark: int, now_ms: int) -> None:
        """Look again at the episodes whose windows end at or before ``mark``."""
        episodes = self._episodes
        deadlines = self._deadlines
        window = self.config.reward_window_ms
        for due, episode_id in deadlines.pop_due(mark):
            episode = episodes.get(episode_id)
            if episode is None:
                continue
            self._emit_ready(episode_id, episode, False, now_ms, mark)
            pending = episode.decisions
            if pending and episode_id in episodes:
                earliest = pending[min(pending)].event["ts"] + window
                if earliest <= mark:  # due, but waits for its successor or end
                    deadlines.park(episode_id, min(due, earliest))

    def _time_out(self, mark: int, now_ms: int) -> None:
        """Close, as truncated, the episodes ``episode_timeout_ms`` of ``mark`` without events."""
        timeout = self.config.episode_timeout_ms
        while self._episodes:
            episode_id, episode = next(iter(self._episodes.items()))
            if mark - episode.last_ts < timeout:
                break
            self._emit_ready(episode_id, episode, True, now_ms, mark)

    def waiting(self, include_open: bool = False) -> Waiting:
        """Rows that can still become final by the clock alone, and episodes not ended
        (``emission.waiting_rows``; walks every open episode: for batch mode's last stretch)."""
        return waiting_rows(self._episodes.values(), self.config.reward_window_ms, include_open)

    def close_open(self, now_ms: int) -> None:
        """Close every open episode now, as truncated where it did not end (batch mode's
        ``--close-open-episodes``); later events of these episodes are ``late``."""
        self.advance(now_ms)
        for episode_id, episode in list(self._episodes.items()):
            self._emit_ready(episode_id, episode, True, now_ms, max(self.watermark, now_ms))

    # ------------------------------------------------------------------ output
    def _emit_ready(
        self, episode_id: str, ep: OpenEpisode, force: bool, now_ms: int, mark: int
    ) -> None:
        """Write the episode's rows final at ``mark`` in step order; close it when nothing is
        left."""
        pending = ep.decisions
        if pending:
            window = self.config.reward_window_ms
            if not force:  # fast exit, once per event: the earliest pending row is not final
                step0 = min(pending)
                if mark < pending[step0].event["ts"] + window and not (
                    self._first and ep.rewards.get(step0)
                ):
                    return
            out = self._out.rows
            if write_final_rows(ep, mark, force, window, self._first, self._rows, now_ms, out):
                self._changed.add(episode_id)
        if ep.decisions or not (force or ep.end is not None):
            return
        # closed: whatever rewards remain had no decision
        for step in sorted(ep.rewards):
            for item in ep.rewards[step]:
                self._reject(
                    "orphan_reward",
                    f"no decision for step {step} of episode {episode_id!r} before it closed",
                    item,
                )
        del self._episodes[episode_id]
        self._deadlines.forget(episode_id)
        self._changed.add(episode_id)
        limit = self.config.closed_memory_episodes
        if limit:
            self._closed[episode_id] = self.watermark
            while len(self._closed) > limit:
                self._closed.popitem(last=False)

    def _limit(self, limit: str, detail: str, item: Pending) -> None:
        """Turn an event away at a state cap: counted, and a dead letter ``state_limit:*``."""
        self._out.limits[limit] += 1
        self._reject(reason(limit), detail, item)

    def _reject(self, reason: str, detail: str, item: Pending) -> None:
        """Make an accepted (valid) event a dead letter, re-encoded alone."""
        event = item.event
        self._dead(
            reason, detail, self._encode(event), item.offset, item.batch_index, event["type"]
        )

    def _dead(
        self, reason: str, detail: str, value: bytes, offset: int, index: int | None, etype: str
    ) -> None:
        self._out.dead_letters.append(DeadLetter(reason, detail, value, offset, index, etype))
        self._out.events[(etype, "dlq")] += 1

    def take_output(self) -> Output:
        """Hand over (and forget) the rows, dead letters and counts produced so far."""
        out, self._out = self._out, Output()
        return out

    @property
    def open_episodes(self) -> int:
        return len(self._episodes)

    # ------------------------------------------------------------------ state
    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain data (msgpack-able); pending output is NOT included."""
        return snapshot_state(self.watermark, self._episodes, self._closed)

    def take_changes(self) -> set[str]:
        """The episodes opened, changed or closed since the last call (forgotten here): what an
        incremental checkpoint must write (``state_changes.py``); the rest is unchanged."""
        changed, self._changed = self._changed, set()
        return changed

    def snapshot_changes(self, changed: set[str]) -> dict[str, Any]:
        """The state of the ``changed`` episodes (from :meth:`take_changes`) as a changes
        record: :func:`~services.sessionizer.state_changes.merge_changes` applies it to the
        previous snapshot."""
        return snapshot_changes(self.watermark, self._episodes, self._closed, changed)

    def restore(self, snap: dict[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` (``episode_state.py``: its format)."""
        state = restore_state(snap)
        self.watermark = state.clock
        self._episodes = state.episodes
        self._closed = state.closed
        self._changed = set()
        window = self.config.reward_window_ms
        self._deadlines.reset(
            (pending.event["ts"] + window, episode_id)
            for episode_id, ep in state.episodes.items()
            for pending in ep.decisions.values()
        )
