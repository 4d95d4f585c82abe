"""Incremental checkpoints: a partition's state written as the changes since the last commit.

Why: a full snapshot (``episode_state.snapshot_state``) rewrites every open episode and up to
``closed_memory_episodes`` closed ids at every commit, although between two commits most
episodes do not change. ``PartitionSessionizer.take_changes`` names the episodes that did
(opened, given an event, had rows written, closed), and the worker hands them to each commit
(``SealedBatch.changes``). :func:`snapshot_changes` turns them into a *changes* record;
:func:`merge_changes` applies one to the state it followed, giving exactly the snapshot that a
full checkpoint would have held, except for the order of the open episodes (changed ones move
to the back; the order only decides which episode the timeout scan looks at first).

A changes record is plain msgpack-able data: ``{"v": 1, "changes": True, "clock": ...,
"episodes": [entries of changed episodes still open], "removed": [changed episodes no longer
open], "closed_ids": [...], "closed_at": [...] (those among them now remembered as closed),
"forgot_through": {...}}``. Writing, chaining and compacting them is ``checkpoint.py``'s.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from services.sessionizer.episode_state import SNAPSHOT_VERSION, OpenEpisode, episode_entries

__all__ = ["merge_changes", "snapshot_changes"]


def snapshot_changes(
    clock: int,
    episodes: OrderedDict[str, OpenEpisode],
    closed: OrderedDict[str, int],
    changed: Iterable[str],
) -> dict[str, Any]:
    """The changes record of the episodes ``changed`` since the previous checkpoint."""
    changed = set(changed)
    entries, forgot = episode_entries(
        (episode_id, ep) for episode_id, ep in episodes.items() if episode_id in changed
    )
    gone = [episode_id for episode_id in changed if episode_id not in episodes]
    now_closed = _newly_closed(closed, {episode_id for episode_id in gone if episode_id in closed})
    return {
        "v": SNAPSHOT_VERSION,
        "changes": True,
        "clock": clock,
        "episodes": entries,
        "removed": gone,
        "closed_ids": now_closed,
        "closed_at": [closed[episode_id] for episode_id in now_closed],
        "forgot_through": forgot,
    }


def _newly_closed(closed: OrderedDict[str, int], ids: set[str]) -> list[str]:
    """``ids`` in the order they closed: episodes close at the back of ``closed``, so they are
    its last entries (walked from the back, never the whole closed memory)."""
    found: list[str] = []
    for episode_id in reversed(closed):
        if len(found) == len(ids):
            break
        if episode_id in ids:
            found.append(episode_id)
    found.reverse()
    return found


def merge_changes(
    snap: dict[str, Any], changes: dict[str, Any], closed_memory_episodes: int
) -> dict[str, Any]:
    """The full snapshot after ``changes`` (a :func:`snapshot_changes` record) on ``snap``.

    ``closed_memory_episodes`` trims the closed memory as the sessionizer does (oldest first).
    """
    if not changes.get("changes") or changes.get("v") != SNAPSHOT_VERSION:
        raise ValueError("not a changes record of snapshot version 1")
    touched = {entry[0] for entry in changes["episodes"]} | set(changes["removed"])
    episodes = [entry for entry in snap["episodes"] if entry[0] not in touched]
    episodes.extend(changes["episodes"])
    closed = OrderedDict(zip(snap["closed_ids"], snap["closed_at"], strict=True))
    for episode_id, at in zip(changes["closed_ids"], changes["closed_at"], strict=True):
        closed.pop(episode_id, None)
        closed[episode_id] = at
    while len(closed) > closed_memory_episodes:
        closed.popitem(last=False)
    forgot = {k: v for k, v in (snap.get("forgot_through") or {}).items() if k not in touched}
    forgot.update(changes.get("forgot_through") or {})
    merged: dict[str, Any] = {
        "v": SNAPSHOT_VERSION,
        "clock": changes["clock"],
        "episodes": episodes,
        "closed_ids": list(closed),
        "closed_at": list(closed.values()),
    }
    if forgot:
        merged["forgot_through"] = forgot
    return merged
