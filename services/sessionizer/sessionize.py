"""Pure sessionization of one partition: records in, timeline rows and dead letters out.

Why pure and synchronous: every rule of the timeline (ordering, reward join, closing, late and
bad events) lives here with an injectable clock, so the golden tests pin exact rows without a
broker, and the worker around it only moves bytes and commits. One :class:`PartitionSessionizer`
owns the episodes of one Kafka partition (events are keyed by ``episode_id``, so an episode
never spans partitions).

Definitions (docs/architecture.md "The timeline table", made precise):

* **Clock.** Time is event time: the partition clock is the largest ``ts`` accepted so far, or
  the ``now_ms`` handed to :meth:`PartitionSessionizer.advance` when that is later (the worker
  passes wall time minus a slack once a partition is caught up, so windows close when traffic
  stops). An event more than ``max_future_skew_ms`` ahead of ``now_ms`` is rejected
  (``invalid:ts``) so one bad clock cannot close every open episode.
* **Reward of a decision** = the reward events with the same (``episode_id``, ``step``) whose
  ``ts`` is at most ``reward_window_ms`` after the decision's ``ts``; aggregated by ``sum`` or
  ``first`` (first to arrive); ``metrics`` the same way. None → ``default_reward``,
  ``reward_count`` 0, ``metrics`` null. A reward may arrive before its decision; it waits.
* **A row is final** when (a) its successor decision (next ``step`` received) or the episode's
  end is known and (b) the clock passed ``decision.ts + reward_window_ms`` (with ``first``: or a
  reward arrived). Decisions may arrive out of order until then: the reward window is also the
  re-ordering window.
* **Closing.** ``episode_end`` marks the end (``terminal`` true → terminal row, false →
  truncated row); the episode closes once its last row is written. ``episode_timeout_ms`` of
  clock without an event closes it as truncated, windows or not.
* **Late** (dead letter ``late``): a reward past its window or for a row already written, and any
  event of an episode already closed (remembered for ``closed_memory_episodes`` episodes).
* **Duplicates**: an ``event_id`` already seen in the open episode is ignored and counted
  (outcome ``duplicate``). A second decision for a (episode, step) with another ``event_id``
  is a dead letter ``duplicate_step``; a second ``episode_end`` ``duplicate_end``; a decision
  after the end ``after_episode_end``; rewards whose decision never came ``orphan_reward``.
* Malformed records and invalid events go to dead letters with the reasons of
  :class:`schemas.wire.RecordDecodeError` and :class:`schemas.events.EventValidationError`.
  Nothing here raises on input.

State (``episode_state.py``) is exported with :meth:`snapshot` (plain msgpack-able data) and
rebuilt with :meth:`restore`; the worker checkpoints it next to each Delta commit (see
``checkpoint.py``). What a row holds, given the events it joins, is ``schemas/rows.py``.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from schemas.events import EventValidationError, validate_event
from schemas.rows import TimelineRowBuilder
from schemas.wire import RecordDecodeError, decode_record, encode_event
from services.sessionizer.admission import admit_decision, admit_end, admit_reward
from services.sessionizer.episode_state import (
    OpenEpisode,
    Pending,
    new_pending,
    restore_state,
    snapshot_state,
)
from services.sessionizer.outputs import DeadLetter, Output, Waiting

__all__ = ["PartitionSessionizer", "SessionConfig"]


@dataclass(frozen=True)
class SessionConfig:
    """The rules' parameters, in milliseconds (see the module docstring)."""

    reward_window_ms: int = 60_000
    aggregation: Literal["sum", "first"] = "sum"
    default_reward: float = 0.0
    episode_timeout_ms: int = 600_000
    closed_memory_episodes: int = 100_000
    max_future_skew_ms: int = 300_000

    def __post_init__(self) -> None:
        if self.aggregation not in ("sum", "first"):
            raise ValueError(f"aggregation={self.aggregation!r}: must be 'sum' or 'first'")
        if self.reward_window_ms < 0:
            raise ValueError(f"reward_window_ms={self.reward_window_ms}: must be >= 0")
        if self.episode_timeout_ms <= 0:
            raise ValueError(f"episode_timeout_ms={self.episode_timeout_ms}: must be > 0")


_ACCEPTED = {t: (t, "accepted") for t in ("decision", "reward", "episode_end")}


class PartitionSessionizer:
    """The sessionization state machine of one partition (see the module docstring)."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self._first = config.aggregation == "first"
        self.clock = -1
        self._episodes: OrderedDict[str, OpenEpisode] = OrderedDict()
        self._closed: OrderedDict[str, int] = OrderedDict()
        # (reward window end, sequence number, episode id): when to look at an episode again.
        self._deadlines: list[tuple[int, int, str]] = []
        self._seq = 0
        self._out = Output()
        self._rows = TimelineRowBuilder(config.aggregation, config.default_reward)
        self._reject_item = self._reject  # bound once: handed to the admit_* rules per event

    # ------------------------------------------------------------------ input
    def process_record(self, value: bytes | None, offset: int, now_ms: int) -> None:
        """Decode, validate and apply one Kafka record value. Never raises on bad input."""
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
        """Apply one already validated event."""
        etype = event["type"]
        episode_id = event["episode_id"]
        ts = event["ts"]
        if episode_id in self._closed:
            detail = f"episode {episode_id!r} is already closed"
            self._reject("late", detail, Pending(offset, index, event))
            return
        episode = self._episodes.get(episode_id)
        if episode is None:
            episode = self._episodes[episode_id] = OpenEpisode()
        else:
            self._episodes.move_to_end(episode_id)
        event_id = event["event_id"]
        if event_id in episode.event_ids:
            self._out.events[(etype, "duplicate")] += 1
            return
        item = new_pending((offset, index, event))
        window = self.config.reward_window_ms
        if etype == "decision":
            ok = admit_decision(episode, item, window, self._reject_item, not self._first)
            if ok:  # look at the episode again when the decision's reward window ends
                self._seq += 1
                heapq.heappush(self._deadlines, (ts + window, self._seq, episode_id))
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
        episode.event_ids.add(event_id)
        counts = self._out.events
        key = _ACCEPTED[etype]
        counts[key] = counts.get(key, 0) + 1
        if ts > episode.last_ts:
            episode.last_ts = ts
        if ts > self.clock:
            self.clock = ts
        self._emit_ready(episode_id, episode, False, now_ms)

    # ------------------------------------------------------------------ clock
    def advance(self, now_ms: int) -> None:
        """Move the clock to ``now_ms`` (if later) and write what became final or timed out."""
        if now_ms > self.clock:
            self.clock = now_ms
        clock = self.clock
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= clock:
            _, _, episode_id = heapq.heappop(deadlines)
            episode = self._episodes.get(episode_id)
            if episode is not None:
                self._emit_ready(episode_id, episode, False, now_ms)
        timeout = self.config.episode_timeout_ms
        while self._episodes:
            episode_id, episode = next(iter(self._episodes.items()))
            if clock - episode.last_ts < timeout:
                break
            self._emit_ready(episode_id, episode, True, now_ms)

    def waiting(self, include_open: bool = False) -> Waiting:
        """Rows that can still become final by the clock alone, and episodes not ended.

        A row can become final by the clock when its successor decision or the episode's end
        is known (see the module docstring); with ``include_open`` every pending decision
        counts, as :meth:`close_open` would write them all. Walks every open episode: for
        batch mode's last stretch, not for every record.
        """
        rows, deadline, open_episodes = 0, -1, 0
        window = self.config.reward_window_ms
        for ep in self._episodes.values():
            if ep.end is None:
                open_episodes += 1
            if not ep.decisions:
                continue
            steps = ep.decisions
            if ep.end is None and not include_open:
                last = max(steps)
                counted = [s for s in steps if s != last]
            else:
                counted = list(steps)
            for step in counted:
                rows += 1
                due = steps[step].event["ts"] + window
                if due > deadline:
                    deadline = due
        return Waiting(rows, deadline, open_episodes)

    def close_open(self, now_ms: int) -> None:
        """Close every open episode now, as truncated where it did not end (batch mode's
        ``--close-open-episodes``); later events of these episodes are ``late``."""
        self.advance(now_ms)
        for episode_id, episode in list(self._episodes.items()):
            self._emit_ready(episode_id, episode, True, now_ms)

    # ------------------------------------------------------------------ output
    def _emit_ready(self, episode_id: str, ep: OpenEpisode, force: bool, now_ms: int) -> None:
        """Write the episode's final rows in step order; close it when nothing is left."""
        if ep.decisions:
            window = self.config.reward_window_ms
            first = self._first
            clock = self.clock
            if not force:  # fast exit: the earliest pending row is not final yet
                step0 = min(ep.decisions)
                if clock < ep.decisions[step0].event["ts"] + window and not (
                    first and ep.rewards.get(step0)
                ):
                    return
            steps = sorted(ep.decisions)
            end = ep.end
            end_last = end.event.get("last_step") if end is not None else None
            for i, step in enumerate(steps):
                decision = ep.decisions[step].event
                rewards = ep.rewards.get(step)
                if not force and clock < decision["ts"] + window and not (first and rewards):
                    break
                if i + 1 < len(steps):
                    nxt = ep.decisions[steps[i + 1]].event
                elif force or (end is not None and (end_last is None or end_last == step)):
                    nxt = None
                else:
                    break
                self._write_row(ep, decision, rewards, nxt, force, now_ms)
                del ep.decisions[step]
                ep.rewards.pop(step, None)
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
        limit = self.config.closed_memory_episodes
        if limit:
            self._closed[episode_id] = self.clock
            while len(self._closed) > limit:
                self._closed.popitem(last=False)

    def _write_row(
        self,
        ep: OpenEpisode,
        d: dict[str, Any],
        rewards: list[Pending] | None,
        nxt: dict[str, Any] | None,
        force: bool,
        now_ms: int,
    ) -> None:
        """Append the row of decision ``d`` (``schemas.rows``) with its ``_last_event_ts``."""
        step = d["step"]
        if ep.first_step is None:
            ep.first_step = step
        last_ts = d["ts"]
        reward_events = None
        if rewards:
            reward_events = [r.event for r in rewards]
            for r in reward_events:
                if r["ts"] > last_ts:
                    last_ts = r["ts"]
        end = None if ep.end is None else ep.end.event
        terminal = False
        if nxt is not None:
            if nxt["ts"] > last_ts:
                last_ts = nxt["ts"]
        elif end is not None:
            # A forced close (timeout, close_open) before the announced last step truncates.
            terminal = end["terminal"] is True and not (
                force and end.get("last_step") not in (None, step)
            )
            if end["ts"] > last_ts:
                last_ts = end["ts"]
        row = self._rows.row(
            d, reward_events, nxt, ep.emitted_count, ep.first_step, terminal, now_ms
        )
        row["_last_event_ts"] = last_ts
        ep.emitted_step = step
        ep.emitted_count += 1
        self._out.rows.append(row)

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
        return snapshot_state(self.clock, self._episodes, self._closed)

    def restore(self, snap: dict[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` (``episode_state.py``: its format)."""
        state = restore_state(snap)
        self.clock = state.clock
        self._episodes = state.episodes
        self._closed = state.closed
        self._deadlines = []
        window = self.config.reward_window_ms
        for episode_id, ep in state.episodes.items():
            for pending in ep.decisions.values():
                self._seq += 1
                self._deadlines.append((pending.event["ts"] + window, self._seq, episode_id))
        heapq.heapify(self._deadlines)
