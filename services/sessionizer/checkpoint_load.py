"""Reading a committed checkpoint back as the partition's full state, chain and all.

Why its own step: checkpoint ``N`` named by the table may be a changes record
(``checkpoint_chain.py``), which alone is not a state. Its file names its base ``B``; the
files ``B``, ``B + 1``, ..., ``N`` of the same writer (the generation the table records with
``N``) are read and merged in order (``state_changes.merge_chain``), giving exactly the state a
full checkpoint ``N`` would have held. Files of other writers, and files numbered after ``N``
(written by a worker that died before its Delta commit), are never read.

As for one file (``checkpoint.py``): only a checkpoint ``N`` that does not exist is "none". A
chain that cannot be completed (its base or a link missing, a link of another chain, a record
that does not merge) raises :class:`~services.sessionizer.checkpoint.CheckpointUnreadableError`
naming the file: resuming with empty or partial state would silently drop open episodes.
"""

from __future__ import annotations

from typing import Any

from services.sessionizer.checkpoint import CheckpointStore, CheckpointUnreadableError
from services.sessionizer.state_changes import is_changes, merge_chain

__all__ = ["load_state"]


def load_state(
    store: CheckpointStore, partition: int, number: int, generation: int | None
) -> dict[str, Any] | None:
    """The full state checkpoint ``number`` of ``partition`` (by the writer of ``generation``)
    stands for, or ``None`` if that file does not exist."""
    head = store.load(partition, number, generation)
    if head is None or not is_changes(head):
        return head
    base_number = head.get("base")
    if not isinstance(base_number, int) or not 0 <= base_number < number:
        raise _broken(
            store, partition, number, generation, f"names no valid base ({base_number!r})"
        )
    base = store.load(partition, base_number, generation)
    if base is None or is_changes(base):
        what = "is missing" if base is None else "is not a full checkpoint"
        raise _broken(store, partition, base_number, generation, f"the base of {number} {what}")
    links = [
        _link(store, partition, n, generation, base_number) for n in range(base_number + 1, number)
    ]
    links.append(head)
    try:
        return merge_chain(base, links)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _broken(
            store,
            partition,
            number,
            generation,
            f"its chain from {base_number} does not merge ({exc!r})",
        ) from exc


def _link(
    store: CheckpointStore, partition: int, number: int, generation: int | None, base: int
) -> dict[str, Any]:
    """Link ``number`` of the chain starting at ``base``."""
    record = store.load(partition, number, generation)
    if record is None:
        raise _broken(
            store, partition, number, generation, f"a link of the chain from {base} is missing"
        )
    if not is_changes(record) or record.get("base") != base:
        raise _broken(
            store, partition, number, generation, f"is not a link of the chain from {base}"
        )
    return record


def _broken(
    store: CheckpointStore, partition: int, number: int, generation: int | None, why: str
) -> CheckpointUnreadableError:
    return CheckpointUnreadableError(
        store.path(partition, number, generation), partition, number, why
    )
