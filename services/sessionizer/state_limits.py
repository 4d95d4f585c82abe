"""Bounded state: the caps on what one partition's sessionizer holds, and what happens at each.

Why caps: a partition's state lives in memory and is checkpointed with every commit, and what
fills it is decided by producers. A bug that opens a new episode per event, a flood of rewards
for one step, or one endless episode would otherwise grow it without bound until the worker is
killed for memory, and then every restart would load the same state again. Each cap has a
setting (``sessionizer.<name>``), a count in ``policyloop_sessionizer_state_limit_total{limit}``
and, where it turns an event away, a dead-letter reason of its own, so it is never silent:

* ``max_open_episodes`` (per partition): an event that would open one more episode is a dead
  letter ``state_limit:open_episodes``. Episodes already open go on; the newcomer is turned
  away rather than an open episode evicted, so a flood of new ids cannot cut the episodes it
  did not cause. Closed episodes (written, timed out) free their places.
* ``max_episode_events`` (per open episode): the events an episode holds, i.e. decisions and
  rewards not yet written and its end. One more is a dead letter
  ``state_limit:episode_events``; writing rows makes room again.
* ``max_episode_event_ids`` (per open episode): the event ids remembered to ignore redelivered
  events. Over the cap, the oldest ids of events no longer pending are forgotten (counted);
  ids of pending events never are, so a redelivered reward can never be counted twice. A later
  event that would be ``late`` for a step whose ids were forgotten may be a redelivery that can
  no longer be recognised: it is a dead letter ``state_limit:event_ids`` instead of ``late``.

Recently closed episodes are bounded separately by ``closed_memory_episodes`` (unchanged).
"""

from __future__ import annotations

from services.sessionizer.episode_state import OpenEpisode

__all__ = [
    "EPISODE_EVENTS",
    "EVENT_IDS",
    "OPEN_EPISODES",
    "forget_event_ids",
    "held_events",
    "reason",
    "written_step_reason",
]

#: The ``limit`` label of each cap (and the suffix of its dead-letter reason).
OPEN_EPISODES = "open_episodes"
EPISODE_EVENTS = "episode_events"
EVENT_IDS = "event_ids"

#: Pending ids moved to the back per call when they block the oldest forgettable ones: keeps a
#: call O(1) even when an episode holds more pending events than the id cap.
_ROTATIONS = 8


def reason(limit: str) -> str:
    """The dead-letter reason of a cap: ``state_limit:<limit>``."""
    return f"state_limit:{limit}"


def held_events(ep: OpenEpisode) -> int:
    """Events the episode holds: pending decisions and rewards, and its end."""
    return len(ep.decisions) + ep.pending_rewards + (ep.end is not None)


def _pending(ep: OpenEpisode, event_id: str, step: int) -> bool:
    """Whether ``event_id`` (remembered with ``step``) is an event the episode still holds."""
    decision = ep.decisions.get(step)
    if decision is not None and decision.event["event_id"] == event_id:
        return True
    rewards = ep.rewards.get(step)
    if rewards:
        for item in rewards:
            if item.event["event_id"] == event_id:
                return True
    end = ep.end
    return end is not None and end.event["event_id"] == event_id


def forget_event_ids(ep: OpenEpisode, cap: int) -> int:
    """Forget the oldest ids of events no longer pending until at most ``cap`` remain (or only
    pending ones block); returns how many were forgotten."""
    ids = ep.event_ids
    forgotten = 0
    rotations = 0
    while len(ids) > cap:
        event_id = next(iter(ids))
        step = ids.pop(event_id)
        if _pending(ep, event_id, step):
            ids[event_id] = step  # to the back: newer than the ids it was blocking
            rotations += 1
            if rotations >= _ROTATIONS:
                break
            continue
        forgotten += 1
        if step >= 0 and (ep.forgot_through is None or step > ep.forgot_through):
            ep.forgot_through = step
        elif step < 0:  # restored without its step: any step may be among the forgotten
            ep.forgot_through = max(ep.forgot_through or 0, ep.emitted_step or 0)
    return forgotten


def written_step_reason(ep: OpenEpisode, step: int) -> str:
    """The reason for an event that comes for a step already written: ``late``, unless the
    episode forgot event ids of that step (then it may be a redelivery it cannot recognise)."""
    if ep.forgot_through is not None and step <= ep.forgot_through:
        return reason(EVENT_IDS)
    return "late"
