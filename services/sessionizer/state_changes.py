"""Incremental checkpoints: a partition's state written as the changes since the last commit.

Why: a full snapshot (``episode_state.snapshot_state``) rewrites every open episode and up to
``closed_memory_episodes`` closed ids at every commit, although between two commits most
episodes do not change. ``PartitionSessionizer.take_changes`` names the episodes that did
(opened, given an event, had rows written, closed), and the worker hands them to each commit
(``SealedBatch.changes``). :func:`snapshot_changes` turns them into a *changes* record;
:func:`merge_chain` applies records, in order, to the full snapshot they follow and gives
exactly the snapshot a full checkpoint would have held. Chaining records to a base on disk is
``checkpoint_chain.py``'s; reading a chain back is ``checkpoint_load.py``'s.

A changes record is plain msgpack-able data::

    {"v": "changes-1", "clock": ..., "episodes": [entries of changed episodes still open],
     "moved": n, "removed": [changed episodes no longer open], "closed_ids": [...],
     "closed_at": [...] (those of them now remembered as closed, in closing order),
     "closed_count": len(closed memory), "forgot_through": {...}}

``v`` is not a snapshot version on purpose: a reader that knows only full snapshots refuses a
changes record (``restore_state`` raises) instead of restoring it as a partial state.

**Order of the open episodes.** The sessionizer keeps them least recent first and its timeout
scan stops at the first one not timed out, so the order is state too. An episode moves to the
back when an event reaches it, so the episodes moved since the last commit form a suffix of
the order. The last ``moved`` entries are the longest suffix of the order whose episodes all
changed: they go to the back in that order. The other entries changed in place (rows written,
no event) and keep their position. This is exact as long as every episode the sessionizer moves
is also one it names as changed (an event it accepts); an episode moved by an event it ignores
(a redelivered duplicate, a rejected event) keeps its earlier place in the merged state.

The closed memory is trimmed, oldest first, to ``closed_count`` (the writer's own length of it),
so the merge does not depend on the reader's ``closed_memory_episodes``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from services.sessionizer.episode_state import SNAPSHOT_VERSION, OpenEpisode, episode_entries

__all__ = ["CHANGES_VERSION", "is_changes", "merge_chain", "merge_changes", "snapshot_changes"]

#: The ``v`` of a changes record (never a snapshot version: see the module docstring).
CHANGES_VERSION = "changes-1"


def is_changes(record: dict[str, Any]) -> bool:
    """``record`` is a changes record (not a full snapshot)."""
    return record.get("v") == CHANGES_VERSION


def snapshot_changes(
    clock: int,
    episodes: OrderedDict[str, OpenEpisode],
    closed: OrderedDict[str, int],
    changed: Iterable[str],
) -> dict[str, Any]:
    """The changes record of the episodes ``changed`` since the previous checkpoint.

    Walks the changed episodes only (and the back of the order and of the closed memory),
    never every open episode: that is the point of it.
    """
    changed = set(changed)
    moved = _changed_suffix(episodes, changed)
    at_back = set(moved)
    in_place = sorted(e for e in changed if e in episodes and e not in at_back)
    entries, forgot = episode_entries((e, episodes[e]) for e in [*in_place, *moved])
    gone = sorted(e for e in changed if e not in episodes)
    now_closed = _newly_closed(closed, {e for e in gone if e in closed})
    return {
        "v": CHANGES_VERSION,
        "clock": clock,
        "episodes": entries,
        "moved": len(moved),
        "removed": gone,
        "closed_ids": now_closed,
        "closed_at": [closed[e] for e in now_closed],
        "closed_count": len(closed),
        "forgot_through": forgot,
    }


def _changed_suffix(episodes: OrderedDict[str, OpenEpisode], changed: set[str]) -> list[str]:
    """The longest suffix of the order whose episodes all changed, in order."""
    suffix: list[str] = []
    for episode_id in reversed(episodes):
        if episode_id not in changed:
            break
        suffix.append(episode_id)
    suffix.reverse()
    return suffix


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


def merge_changes(snap: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The full snapshot after one changes record on ``snap`` (:func:`merge_chain` of one)."""
    return merge_chain(snap, [changes])


def merge_chain(base: dict[str, Any], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The full snapshot after ``records`` (:func:`snapshot_changes` records, in commit order)
    on the full snapshot ``base``.

    One pass over the base and each record: a restart reading a long chain does not rebuild
    the open episodes once per record. Raises ``ValueError`` on a record that is not one.
    """
    episodes: OrderedDict[str, Any] = OrderedDict((entry[0], entry) for entry in base["episodes"])
    if "closed_ids" in base:
        closed = OrderedDict(zip(base["closed_ids"], base["closed_at"], strict=True))
    else:  # snapshots written before the flat form
        closed = OrderedDict((k, v) for k, v in base["closed"])
    forgot: dict[str, int] = dict(base.get("forgot_through") or {})
    clock = base["clock"]
    for record in records:
        if not is_changes(record):
            raise ValueError(f"not a changes record (v={record.get('v')!r})")
        entries = record["episodes"]
        for episode_id in record["removed"]:
            episodes.pop(episode_id, None)
            forgot.pop(episode_id, None)
        split = len(entries) - record["moved"]
        for entry in entries[:split]:  # changed in place: keeps its position
            episodes[entry[0]] = entry
            forgot.pop(entry[0], None)
        for entry in entries[split:]:  # moved to the back, in order
            episodes.pop(entry[0], None)
            episodes[entry[0]] = entry
            forgot.pop(entry[0], None)
        forgot.update(record["forgot_through"])
        for episode_id, at in zip(record["closed_ids"], record["closed_at"], strict=True):
            closed.pop(episode_id, None)
            closed[episode_id] = at
        while len(closed) > record["closed_count"]:
            closed.popitem(last=False)
        clock = record["clock"]
    merged: dict[str, Any] = {
        "v": SNAPSHOT_VERSION,
        "clock": clock,
        "episodes": list(episodes.values()),
        "closed_ids": list(closed),
        "closed_at": list(closed.values()),
    }
    if forgot:
        merged["forgot_through"] = forgot
    return merged
