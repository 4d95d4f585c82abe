"""Which rows of one episode are final at a given mark, and the rows themselves.

The rule (``sessionize.py``'s docstring): a row is final when its successor decision or the
episode's end is known and the mark (the watermark, quiet time or a batch run's end, see
``watermark.py``) has passed ``decision.ts + reward_window`` (with ``first``: or a reward
arrived). Rows are written in step order, so the first row that is not final stops the walk.
:func:`waiting_rows` counts, for batch mode's last stretch, the rows that the clock alone will
still make final. Kept apart from the state machine because it only reads and trims episodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.rows import TimelineRowBuilder
from services.sessionizer.episode_state import OpenEpisode, Pending
from services.sessionizer.outputs import Waiting

__all__ = ["waiting_rows", "write_final_rows"]


def write_final_rows(
    ep: OpenEpisode,
    mark: int,
    force: bool,
    window: int,
    first: bool,
    builder: TimelineRowBuilder,
    now_ms: int,
    out: list[dict[str, Any]],
) -> int:
    """Append the episode's final rows (all of them with ``force``) to ``out`` in step order and
    drop them from its state; returns how many were written."""
    if not ep.decisions:
        return 0
    if not force:  # fast exit: the earliest pending row is not final yet
        step0 = min(ep.decisions)
        if mark < ep.decisions[step0].event["ts"] + window and not (
            first and ep.rewards.get(step0)
        ):
            return 0
    steps = sorted(ep.decisions)
    end = ep.end
    end_last = end.event.get("last_step") if end is not None else None
    written = 0
    for i, step in enumerate(steps):
        decision = ep.decisions[step].event
        rewards = ep.rewards.get(step)
        if not force and mark < decision["ts"] + window and not (first and rewards):
            break
        if i + 1 < len(steps):
            nxt = ep.decisions[steps[i + 1]].event
        elif force or (end is not None and (end_last is None or end_last == step)):
            nxt = None
        else:
            break
        out.append(_row(builder, ep, decision, rewards, nxt, force, now_ms))
        written += 1
        del ep.decisions[step]
        if rewards is not None:
            del ep.rewards[step]
            ep.pending_rewards -= len(rewards)
    return written


def _row(
    builder: TimelineRowBuilder,
    ep: OpenEpisode,
    d: dict[str, Any],
    rewards: list[Pending] | None,
    nxt: dict[str, Any] | None,
    force: bool,
    now_ms: int,
) -> dict[str, Any]:
    """The row of decision ``d`` (``schemas.rows``) with its ``_last_event_ts``."""
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
    row = builder.row(d, reward_events, nxt, ep.emitted_count, ep.first_step, terminal, now_ms)
    row["_last_event_ts"] = last_ts
    ep.emitted_step = step
    ep.emitted_count += 1
    return row


def waiting_rows(episodes: Iterable[OpenEpisode], window: int, include_open: bool) -> Waiting:
    """Rows that can still become final by the clock alone, and episodes not ended.

    A row can become final by the clock when its successor decision or the episode's end is
    known; with ``include_open`` every pending decision counts, as closing every open episode
    (``--close-open-episodes``) would write them all.
    """
    rows, deadline, open_episodes = 0, -1, 0
    for ep in episodes:
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
