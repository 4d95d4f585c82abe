"""Whether a valid event joins its open episode, or becomes a dead letter, by its type's rules.

The rules of ``sessionize.py``'s docstring that look at one episode's state: a decision for a
step already written (``late``), already taken (``duplicate_step``) or past the episode's end
(``after_episode_end``); a reward past its decision's window or for a written row (``late``); a
second end (``duplicate_end``) or an end before a written row (``late``). An event for a written
step in an episode that forgot event ids of that step is ``state_limit:event_ids`` instead of
``late`` (``state_limits.py``: it may be a redelivery). Each ``admit_*``
function either stores the event in the episode and returns ``True``, or hands it to
``reject(reason, detail, item)`` and returns ``False``. Rules that need more than the episode
(closed episodes, duplicate ``event_id``\\ s, when rows are final) stay in the state machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from services.sessionizer.episode_state import OpenEpisode, Pending
from services.sessionizer.state_limits import written_step_reason

__all__ = ["Reject", "admit_decision", "admit_end", "admit_reward"]

#: ``reject(reason, detail, item)``: make ``item`` a dead letter.
Reject = Callable[[str, str, Pending], None]

_FORGOT = (
    "; the episode forgot the event ids of that step (max_episode_event_ids), so this may be "
    "a redelivery it cannot recognise"
)


def _written(ep: OpenEpisode, step: int, detail: str, item: Pending, reject: Reject) -> None:
    """Reject an event for an already written ``step`` (``late``, or the id cap's reason)."""
    why = written_step_reason(ep, step)
    reject(why, detail if why == "late" else detail + _FORGOT, item)


def admit_decision(
    ep: OpenEpisode, item: Pending, window_ms: int, reject: Reject, summed: bool = True
) -> bool:
    """Store a decision; rewards of its step that came early but past its window are late."""
    ev = item.event
    step = ev["step"]
    if ep.emitted_step is not None and step <= ep.emitted_step:
        _written(
            ep,
            step,
            f"decision step {step} arrived after the row of step {ep.emitted_step} was written",
            item,
            reject,
        )
        return False
    if step in ep.decisions:
        taken = ep.decisions[step].event["event_id"]
        reject("duplicate_step", f"step {step} already has decision {taken!r}", item)
        return False
    if ep.end is not None:
        last_step = ep.end.event.get("last_step")
        known_max = max(ep.decisions, default=ep.emitted_step)
        if (last_step is not None and step > last_step) or (
            last_step is None and known_max is not None and step > known_max
        ):
            reject("after_episode_end", f"decision step {step} after episode_end", item)
            return False
    ep.decisions[step] = item
    window_end = ev["ts"] + window_ms
    pending = ep.rewards.get(step)
    if pending:
        kept: list[Pending] = []
        for reward in pending:
            if reward.event["ts"] > window_end:
                _reject_late_reward(reward, ev, window_ms, reject)
            elif summed and kept and _overflows(kept, reward, reject):
                pass  # dropping a late reward may change the running sum: check it again
            else:
                kept.append(reward)
        ep.pending_rewards -= len(pending) - len(kept)
        ep.rewards[step] = kept
    return True


def admit_reward(
    ep: OpenEpisode, item: Pending, window_ms: int, reject: Reject, summed: bool = True
) -> bool:
    """Store a reward (it may come before its decision and wait for it).

    ``summed``: rewards of a step are summed (aggregation ``sum``); then a reward that would
    make the step's sum of ``reward`` or of a metric non-finite is rejected (``invalid:reward``).
    """
    ev = item.event
    step = ev["step"]
    decision = ep.decisions.get(step)
    if decision is None and ep.emitted_step is not None and step <= ep.emitted_step:
        _written(ep, step, f"reward for step {step}: its row is already written", item, reject)
        return False
    if decision is not None and ev["ts"] > decision.event["ts"] + window_ms:
        _reject_late_reward(item, decision.event, window_ms, reject)
        return False
    stored = ep.rewards.get(step)
    if stored is None:
        ep.rewards[step] = [item]
    elif summed and _overflows(stored, item, reject):
        return False
    else:
        stored.append(item)
    ep.pending_rewards += 1
    return True


def _overflows(stored: list[Pending], item: Pending, reject: Reject) -> bool:
    """Reject ``item`` if adding it to the sums of ``stored`` (in arrival order, as the row
    builder adds) gives a non-finite value. Only runs for a step's second and later rewards."""
    ev = item.event
    total = 0.0
    for r in stored:
        total += r.event["reward"]
    if not math.isfinite(total + ev["reward"]):
        reject("invalid:reward", f"reward {ev['reward']!r}: the step's sum would overflow", item)
        return True
    metrics = ev.get("metrics")
    if metrics:
        for name, value in metrics.items():
            total = 0.0
            for r in stored:
                m = r.event.get("metrics")
                if m is not None:
                    total += m.get(name, 0.0)
            if not math.isfinite(total + value):
                reject(
                    "invalid:reward",
                    f"metrics.{name}={value!r}: the step's sum of the metric would overflow",
                    item,
                )
                return True
    return False


def _reject_late_reward(
    item: Pending, decision: dict[str, Any], window_ms: int, reject: Reject
) -> None:
    reject(
        "late",
        f"reward ts {item.event['ts']} is past the window of {window_ms} ms after "
        f"decision ts {decision['ts']}",
        item,
    )


def admit_end(ep: OpenEpisode, item: Pending, reject: Reject) -> bool:
    """Store the episode's end; decisions above its ``last_step`` become dead letters."""
    if ep.end is not None:
        reject("duplicate_end", f"episode already ended by {ep.end.event['event_id']!r}", item)
        return False
    last_step = item.event.get("last_step")
    if last_step is not None:
        if ep.emitted_step is not None and last_step < ep.emitted_step:
            reject(
                "late", f"last_step {last_step} is before the written step {ep.emitted_step}", item
            )
            return False
        for step in sorted(s for s in ep.decisions if s > last_step):
            reject(
                "after_episode_end", f"step {step} > last_step {last_step}", ep.decisions.pop(step)
            )
    ep.end = item
    return True
