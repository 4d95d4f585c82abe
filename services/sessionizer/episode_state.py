"""The sessionizer's state per partition, as named records, and its checkpoint form.

What a partition remembers between records: its open episodes (decisions and rewards not yet
written as rows, the episode's end if known, what was written, the event ids it remembers to
ignore redeliveries) and the ids of recently closed episodes. :func:`snapshot_state` turns it
into plain msgpack-able data for a checkpoint (``checkpoint.py``) and :func:`restore_state`
reads it back (``state_changes.py`` builds the incremental form from the same entries).

Checkpoint format (version 1), unchanged by the move to named records: NamedTuples are tuples,
which MessagePack writes as arrays, so a :class:`Pending` is the array
``[offset, batch_index, event]`` and an :class:`EpisodeEntry` the 9-element array of its fields in
order, exactly what the positional tuples of earlier releases wrote. Reading decodes arrays as
lists and names them again. The remembered event ids are still a plain list (oldest first); the
step each id belongs to is not stored: restoring gives the ids of pending events their step
again, and the others :data:`WRITTEN`, which is all the bounded id memory needs
(``state_limits.py``). An optional top-level ``forgot_through`` map (episode id -> the highest
step whose event ids the episode has forgotten) is written only when some episode forgot ids;
readers that predate it ignore it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from functools import partial
from typing import Any, NamedTuple

__all__ = [
    "END_STEP",
    "SNAPSHOT_VERSION",
    "WRITTEN",
    "EpisodeEntry",
    "OpenEpisode",
    "Pending",
    "RestoredState",
    "episode_entries",
    "new_pending",
    "restore_state",
    "snapshot_state",
]

SNAPSHOT_VERSION = 1
#: The "step" remembered with an ``episode_end``'s event id (an end has no step).
END_STEP = -1
#: The "step" of a restored event id whose event is no longer pending (written or rejected).
WRITTEN = -2


class Pending(NamedTuple):
    """An accepted event not yet written: where it came from and the event itself.

    ``offset`` is the Kafka offset of its record and ``batch_index`` its position in a batch
    record (``None`` for a record of one event): a dead letter made of it later names its
    source. (Not ``index``: that would hide ``tuple.index``.)
    """

    offset: int
    batch_index: int | None
    event: dict[str, Any]


#: ``new_pending((offset, batch_index, event))``: a :class:`Pending`, built in C. Calling the class
#: runs the Python-level ``__new__`` NamedTuples have (190 ns against 110 ns), once per event
#: on the sessionizer's hot path.
new_pending = partial(tuple.__new__, Pending)


class OpenEpisode:
    """An open episode: pending (not yet written) decisions and rewards, and what was written."""

    __slots__ = (
        "decisions",
        "emitted_count",
        "emitted_step",
        "end",
        "event_ids",
        "first_step",
        "forgot_through",
        "last_ts",
        "pending_rewards",
        "rewards",
    )

    def __init__(self) -> None:
        self.decisions: dict[int, Pending] = {}  # step -> its decision
        self.rewards: dict[int, list[Pending]] = {}  # step -> its rewards, in arrival order
        self.pending_rewards = 0  # rewards held in ``rewards`` (for the held-events cap)
        # Accepted event ids, oldest first -> their step (END_STEP for the end): duplicates are
        # ignored. Bounded: ids of events no longer pending are forgotten (state_limits.py).
        self.event_ids: dict[str, int] = {}
        self.forgot_through: int | None = None  # highest step of a forgotten id
        self.end: Pending | None = None  # the episode_end event
        self.last_ts = -1  # newest event time accepted (for the episode timeout)
        self.emitted_step: int | None = None  # step of the last row written
        self.emitted_count = 0  # rows written
        self.first_step: int | None = None  # step of the first row written


class EpisodeEntry(NamedTuple):
    """One open episode in a checkpoint (the 9-element array of format version 1)."""

    episode_id: str
    decisions: list[Pending]
    rewards: list[Pending]
    event_ids: list[str]
    end: Pending | None
    last_ts: int
    emitted_step: int | None
    emitted_count: int
    first_step: int | None


_episode_entry = partial(tuple.__new__, EpisodeEntry)  # as ``new_pending``: one per open episode


class RestoredState(NamedTuple):
    """A partition's state read back from a checkpoint."""

    clock: int
    episodes: OrderedDict[str, OpenEpisode]
    closed: OrderedDict[str, int]  # episode id -> clock when it closed, oldest first


def snapshot_state(
    clock: int, episodes: OrderedDict[str, OpenEpisode], closed: OrderedDict[str, int]
) -> dict[str, Any]:
    """The state as plain data (msgpack-able), in format version 1.

    Taken at every commit, so built from C-level copies: the :class:`Pending` records and event
    dicts are shared, never copied (nothing mutates them once stored).
    """
    entries, forgot = episode_entries(episodes.items())
    snap: dict[str, Any] = {
        "v": SNAPSHOT_VERSION,
        "clock": clock,
        "episodes": entries,
        # Two flat lists (built in C) rather than pairs: up to closed_memory_episodes
        # entries are checkpointed with every commit.
        "closed_ids": list(closed),
        "closed_at": list(closed.values()),
    }
    if forgot:
        snap["forgot_through"] = forgot
    return snap


def episode_entries(
    items: Iterable[tuple[str, OpenEpisode]],
) -> tuple[list[EpisodeEntry], dict[str, int]]:
    """The checkpoint entries of ``(episode id, episode)`` pairs, and the ``forgot_through``
    map of those that forgot event ids."""
    entries: list[EpisodeEntry] = []
    forgot: dict[str, int] = {}
    add = entries.append
    for episode_id, ep in items:
        rewards = ep.rewards
        add(
            _episode_entry(
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
        )
        if ep.forgot_through is not None:
            forgot[episode_id] = ep.forgot_through
    return entries, forgot


def restore_state(snap: dict[str, Any]) -> RestoredState:
    """Read a :func:`snapshot_state` (as written, or decoded from MessagePack) back."""
    if snap.get("v") != SNAPSHOT_VERSION:
        raise ValueError(f"snapshot version {snap.get('v')!r}: this reader speaks 1")
    forgot = snap.get("forgot_through") or {}
    episodes: OrderedDict[str, OpenEpisode] = OrderedDict()
    for item in snap["episodes"]:
        entry = EpisodeEntry._make(item)
        ep = OpenEpisode()
        ids = ep.event_ids = dict.fromkeys(entry.event_ids, WRITTEN)
        for pending in entry.decisions:
            decision = Pending._make(pending)
            step = decision.event["step"]
            ep.decisions[step] = decision
            if decision.event["event_id"] in ids:
                ids[decision.event["event_id"]] = step
        for pending in entry.rewards:
            reward = Pending._make(pending)
            step = reward.event["step"]
            ep.rewards.setdefault(step, []).append(reward)
            if reward.event["event_id"] in ids:
                ids[reward.event["event_id"]] = step
        ep.pending_rewards = len(entry.rewards)
        ep.end = None if entry.end is None else Pending._make(entry.end)
        if ep.end is not None and ep.end.event["event_id"] in ids:
            ids[ep.end.event["event_id"]] = END_STEP
        ep.last_ts = entry.last_ts
        ep.emitted_step = entry.emitted_step
        ep.emitted_count = entry.emitted_count
        ep.first_step = entry.first_step
        ep.forgot_through = forgot.get(entry.episode_id)
        episodes[entry.episode_id] = ep
    if "closed_ids" in snap:
        closed = OrderedDict(zip(snap["closed_ids"], snap["closed_at"], strict=True))
    else:  # checkpoints written before the flat form
        closed = OrderedDict((k, v) for k, v in snap["closed"])
    return RestoredState(snap["clock"], episodes, closed)
