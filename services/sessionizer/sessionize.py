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

State is exported with :meth:`snapshot` (plain msgpack-able data) and rebuilt with
:meth:`restore`; the worker checkpoints it next to each Delta commit (see ``checkpoint.py``).
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.events import EventValidationError, validate_event
from schemas.tables import ds_of
from schemas.wire import RecordDecodeError, decode_record, encode_event

__all__ = [
    "DeadLetter",
    "Output",
    "PartitionSessionizer",
    "SessionConfig",
    "Waiting",
]


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


@dataclass(frozen=True)
class DeadLetter:
    """One rejected record or event: what to send to ``<prefix>.dlq``.

    ``value`` is the original record value when the whole record is rejected (``index`` None)
    or the record was a single event; for one event of a batch it is that event re-encoded
    alone (MessagePack round-trips what it decoded). ``offset``/``index`` locate the source.
    """

    reason: str
    detail: str
    value: bytes
    offset: int
    index: int | None
    event_type: str = "unknown"


@dataclass
class Output:
    """What processing produced since the last :meth:`PartitionSessionizer.take_output`.

    Each row carries ``_last_event_ts`` (ms): the newest event that went into it, from which
    the worker measures event-to-row latency; ``rows_to_table`` ignores the extra key.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    events: Counter = field(default_factory=Counter)  # (type, outcome) -> count


@dataclass(frozen=True)
class Waiting:
    """What still waits in a partition: rows that become final once the clock passes
    ``deadline_ms`` (the latest of their reward windows; -1 when none), and episodes whose end
    is unknown (their last row waits for a successor, the end, or the episode timeout)."""

    rows: int = 0
    deadline_ms: int = -1
    open_episodes: int = 0


class _Episode:
    """Open episode: pending (not yet written) decisions and rewards, and what was written."""

    __slots__ = (
        "decisions",
        "emitted_count",
        "emitted_step",
        "end",
        "event_ids",
        "first_step",
        "last_ts",
        "rewards",
    )

    def __init__(self) -> None:
        self.decisions: dict[int, tuple[int, int | None, dict]] = {}  # step -> (off, idx, ev)
        self.rewards: dict[int, list[tuple[int, int | None, dict]]] = {}
        self.event_ids: set[str] = set()
        self.end: tuple[int, int | None, dict] | None = None
        self.last_ts = -1
        self.emitted_step: int | None = None
        self.emitted_count = 0
        self.first_step: int | None = None


def _f(x: Any) -> float:
    return float(x)


_ACCEPTED = {t: (t, "accepted") for t in ("decision", "reward", "episode_end")}


def _float_map(m: dict[str, Any] | None) -> dict[str, float] | None:
    if m is None:
        return None
    return {k: float(v) for k, v in m.items()}


_DAY_MS = 86_400_000
_ds_by_day: dict[int, str] = {}


def _ds(ts_ms: int) -> str:
    """:func:`schemas.tables.ds_of` memoized per UTC day (a strftime per row is measurable)."""
    day = ts_ms // _DAY_MS
    ds = _ds_by_day.get(day)
    if ds is None:
        if len(_ds_by_day) > 100_000:
            _ds_by_day.clear()
        ds = _ds_by_day[day] = ds_of(day * _DAY_MS)
    return ds


def _actions(actions: list) -> list[str]:
    """``possible_actions`` as table text (``schemas.tables.action_text`` of each)."""
    return [a if type(a) is str else str(a) for a in actions]


class PartitionSessionizer:
    """The sessionization state machine of one partition (see the module docstring)."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self._first = config.aggregation == "first"
        self.clock = -1
        self._episodes: OrderedDict[str, _Episode] = OrderedDict()
        self._closed: OrderedDict[str, int] = OrderedDict()
        self._deadlines: list[tuple[int, int, str]] = []
        self._seq = 0
        self._out = Output()
        # The decision converted last for a row (state map, possible actions): the next row's
        # decision is usually the previous row's successor, whose ``next_*`` columns hold the
        # same values, so they are converted once.
        self._converted: tuple[Any, dict | None, list[str]] | None = None

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
                raw = value if single else self._encode(event)
                self._dead(err.reason, str(err), raw, offset, idx, etype)
                continue
            self.apply(event, offset, idx, now_ms)

    @staticmethod
    def _encode(event: Any) -> bytes:
        try:
            return encode_event(event)
        except Exception:  # cannot happen for decoded msgpack; never crash on input anyway
            return repr(event).encode("utf-8", "replace")

    def apply(self, event: dict, offset: int, index: int | None, now_ms: int) -> None:
        """Apply one already validated event."""
        etype = event["type"]
        episode_id = event["episode_id"]
        ts = event["ts"]
        if episode_id in self._closed:
            self._reject("late", f"episode {episode_id!r} is already closed", event, offset, index)
            return
        episode = self._episodes.get(episode_id)
        if episode is None:
            episode = self._episodes[episode_id] = _Episode()
        else:
            self._episodes.move_to_end(episode_id)
        event_id = event["event_id"]
        if event_id in episode.event_ids:
            self._out.events[(etype, "duplicate")] += 1
            return
        if etype == "decision":
            ok = self._add_decision(episode, event, offset, index)
        elif etype == "reward":
            ok = self._add_reward(episode, event, offset, index)
        else:
            ok = self._add_end(episode, event, offset, index)
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

    def _add_decision(self, ep: _Episode, ev: dict, offset: int, index: int | None) -> bool:
        step = ev["step"]
        if ep.emitted_step is not None and step <= ep.emitted_step:
            self._reject(
                "late",
                f"decision step {step} arrived after the row of step {ep.emitted_step} was written",
                ev,
                offset,
                index,
            )
            return False
        if step in ep.decisions:
            self._reject(
                "duplicate_step",
                f"step {step} already has decision {ep.decisions[step][2]['event_id']!r}",
                ev,
                offset,
                index,
            )
            return False
        if ep.end is not None:
            last_step = ep.end[2].get("last_step")
            known_max = max(ep.decisions, default=ep.emitted_step)
            if (last_step is not None and step > last_step) or (
                last_step is None and known_max is not None and step > known_max
            ):
                self._reject(
                    "after_episode_end",
                    f"decision step {step} after episode_end",
                    ev,
                    offset,
                    index,
                )
                return False
        ep.decisions[step] = (offset, index, ev)
        window_end = ev["ts"] + self.config.reward_window_ms
        pending = ep.rewards.get(step)
        if pending:
            kept = []
            for item in pending:
                if item[2]["ts"] > window_end:
                    self._reject_late_reward(item, ev)
                else:
                    kept.append(item)
            ep.rewards[step] = kept
        self._seq += 1
        heapq.heappush(self._deadlines, (window_end, self._seq, ev["episode_id"]))
        return True

    def _add_reward(self, ep: _Episode, ev: dict, offset: int, index: int | None) -> bool:
        step = ev["step"]
        decision = ep.decisions.get(step)
        if decision is None and ep.emitted_step is not None and step <= ep.emitted_step:
            self._reject(
                "late", f"reward for step {step}: its row is already written", ev, offset, index
            )
            return False
        if decision is not None and ev["ts"] > decision[2]["ts"] + self.config.reward_window_ms:
            self._reject_late_reward((offset, index, ev), decision[2])
            return False
        ep.rewards.setdefault(step, []).append((offset, index, ev))
        return True

    def _reject_late_reward(self, item: tuple[int, int | None, dict], decision: dict) -> None:
        offset, index, ev = item
        self._reject(
            "late",
            f"reward ts {ev['ts']} is past the window of {self.config.reward_window_ms} ms after "
            f"decision ts {decision['ts']}",
            ev,
            offset,
            index,
        )

    def _add_end(self, ep: _Episode, ev: dict, offset: int, index: int | None) -> bool:
        if ep.end is not None:
            self._reject(
                "duplicate_end",
                f"episode already ended by {ep.end[2]['event_id']!r}",
                ev,
                offset,
                index,
            )
            return False
        last_step = ev.get("last_step")
        if last_step is not None:
            if ep.emitted_step is not None and last_step < ep.emitted_step:
                self._reject(
                    "late",
                    f"last_step {last_step} is before the written step {ep.emitted_step}",
                    ev,
                    offset,
                    index,
                )
                return False
            for step in sorted(s for s in ep.decisions if s > last_step):
                o, i, d = ep.decisions.pop(step)
                self._reject("after_episode_end", f"step {step} > last_step {last_step}", d, o, i)
        ep.end = (offset, index, ev)
        return True

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
                due = steps[step][2]["ts"] + window
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
    def _emit_ready(self, episode_id: str, ep: _Episode, force: bool, now_ms: int) -> None:
        """Write the episode's final rows in step order; close it when nothing is left."""
        if ep.decisions:
            window = self.config.reward_window_ms
            first = self._first
            clock = self.clock
            if not force:  # fast exit: the earliest pending row is not final yet
                step0 = min(ep.decisions)
                if clock < ep.decisions[step0][2]["ts"] + window and not (
                    first and ep.rewards.get(step0)
                ):
                    return
            steps = sorted(ep.decisions)
            end = ep.end
            end_last = end[2].get("last_step") if end is not None else None
            for i, step in enumerate(steps):
                _, _, decision = ep.decisions[step]
                rewards = ep.rewards.get(step)
                if not force and clock < decision["ts"] + window and not (first and rewards):
                    break
                if i + 1 < len(steps):
                    nxt = ep.decisions[steps[i + 1]][2]
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
            for offset, index, ev in ep.rewards[step]:
                self._reject(
                    "orphan_reward",
                    f"no decision for step {step} of episode {episode_id!r} before it closed",
                    ev,
                    offset,
                    index,
                )
        del self._episodes[episode_id]
        limit = self.config.closed_memory_episodes
        if limit:
            self._closed[episode_id] = self.clock
            while len(self._closed) > limit:
                self._closed.popitem(last=False)

    def _write_row(
        self,
        ep: _Episode,
        d: dict,
        rewards: list | None,
        nxt: dict | None,
        force: bool,
        now_ms: int,
    ) -> None:
        step = d["step"]
        if ep.first_step is None:
            ep.first_step = step
        last_ts = d["ts"]
        if rewards:
            chosen = rewards[:1] if self._first else rewards
            reward = 0.0
            metrics: dict[str, float] | None = None
            for _, _, r in chosen:
                reward += r["reward"]
                m = r.get("metrics")
                if m is not None:
                    if metrics is None:
                        metrics = {}
                    for k, v in m.items():
                        metrics[k] = metrics.get(k, 0.0) + v
            for _, _, r in rewards:
                if r["ts"] > last_ts:
                    last_ts = r["ts"]
            reward_count = len(rewards)
        else:
            reward = self.config.default_reward
            metrics = None
            reward_count = 0
        probs = d.get("action_probs")
        conv = self._converted
        if conv is None or conv[0] is not d:
            conv = (d, _float_map(d["state"]), _actions(d["possible_actions"]))
        action = d["action"]
        row = {
            "ds": _ds(d["ts"]),
            "episode_id": d["episode_id"],
            "step": step,
            "step_ordinal": ep.emitted_count,
            "decision_id": d["event_id"],
            "ts": d["ts"] * 1000,
            "state": conv[1],
            "action": action if type(action) is str else str(action),
            "possible_actions": conv[2],
            "propensity": float(d["propensity"]),
            "action_probs": None if probs is None else [float(p) for p in probs],
            "reward": float(reward),
            "metrics": metrics,
            "reward_count": reward_count,
            "time_since_first": step - ep.first_step,
            "policy_version": d["policy_version"],
            "processed_at": now_ms * 1000,
        }
        if nxt is not None:
            conv = self._converted = (
                nxt,
                _float_map(nxt["state"]),
                _actions(nxt["possible_actions"]),
            )
            action = nxt["action"]
            row["next_state"] = conv[1]
            row["next_action"] = action if type(action) is str else str(action)
            row["possible_next_actions"] = conv[2]
            row["next_propensity"] = float(nxt["propensity"])
            row["time_diff"] = nxt["step"] - step
            row["terminal"] = False
            row["truncated"] = False
            if nxt["ts"] > last_ts:
                last_ts = nxt["ts"]
        else:
            row["next_state"] = None
            row["next_action"] = None
            row["possible_next_actions"] = None
            row["next_propensity"] = None
            row["time_diff"] = None
            terminal = (
                ep.end is not None
                and ep.end[2]["terminal"] is True
                and not (force and ep.end[2].get("last_step") not in (None, step))
            )
            row["terminal"] = terminal
            row["truncated"] = not terminal
            if ep.end is not None and ep.end[2]["ts"] > last_ts:
                last_ts = ep.end[2]["ts"]
        row["_last_event_ts"] = last_ts
        ep.emitted_step = step
        ep.emitted_count += 1
        self._out.rows.append(row)

    def _reject(self, reason: str, detail: str, ev: dict, offset: int, index: int | None) -> None:
        self._dead(reason, detail, self._encode(ev), offset, index, ev["type"])

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
        # Taken at every commit, so built from C-level copies: the (offset, index, event)
        # tuples and event dicts are shared, never copied (nothing mutates them once stored;
        # MessagePack writes tuples as arrays).
        episodes = []
        add = episodes.append
        for episode_id, ep in self._episodes.items():
            rewards = ep.rewards
            add(
                (
                    episode_id,
                    list(ep.decisions.values()),
                    [item for items in rewards.values() for item in items] if rewards else [],
                    list(ep.event_ids),
                    ep.end,
                    ep.last_ts,
                    ep.emitted_step,
                    ep.emitted_count,
                    ep.first_step,
                )
            )
        return {
            "v": 1,
            "clock": self.clock,
            "episodes": episodes,
            # Two flat lists (built in C) rather than pairs: up to closed_memory_episodes
            # entries are checkpointed with every commit.
            "closed_ids": list(self._closed),
            "closed_at": list(self._closed.values()),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot`."""
        if snap.get("v") != 1:
            raise ValueError(f"snapshot version {snap.get('v')!r}: this reader speaks 1")
        self.clock = snap["clock"]
        self._episodes = OrderedDict()
        self._deadlines = []
        window = self.config.reward_window_ms
        for item in snap["episodes"]:
            (episode_id, decisions, rewards, ids, end, last_ts, e_step, e_count, first) = item
            ep = _Episode()
            for offset, index, ev in decisions:
                ep.decisions[ev["step"]] = (offset, index, ev)
                self._seq += 1
                self._deadlines.append((ev["ts"] + window, self._seq, episode_id))
            for offset, index, ev in rewards:
                ep.rewards.setdefault(ev["step"], []).append((offset, index, ev))
            ep.event_ids = set(ids)
            ep.end = None if end is None else tuple(end)
            ep.last_ts, ep.emitted_step, ep.emitted_count, ep.first_step = (
                last_ts,
                e_step,
                e_count,
                first,
            )
            self._episodes[episode_id] = ep
        heapq.heapify(self._deadlines)
        if "closed_ids" in snap:
            self._closed = OrderedDict(zip(snap["closed_ids"], snap["closed_at"], strict=True))
        else:  # checkpoints written before the flat form
            self._closed = OrderedDict((k, v) for k, v in snap["closed"])
