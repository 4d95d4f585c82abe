"""Who may write a partition: generations (fencing tokens) recorded in the Delta table.

Why: a worker cut off from the broker keeps running after the group gave its partitions to
another worker (a *zombie*). Its Delta table and its checkpoint directory are still reachable,
so without a fence it would commit rows and state for partitions it no longer owns, and rows
would be doubled or lost. Kafka cannot stop it (it cannot even reach Kafka), so the table does.

Per partition the table records, as Delta transaction versions next to the offset and the
checkpoint number (``sink.py``):

* ``<group>:<topic>:<p>:generation``: the generation of the partition's current owner. A
  worker that is assigned the partition *claims* it in a Delta commit of its own, setting the
  generation to one more than the recorded one, before it loads any state.
* ``<group>:<topic>:<p>:checkpoint-generation``: the generation of the writer of the recorded
  checkpoint, which names its file (``checkpoint.py``): two writers never share a checkpoint
  name, so one cannot overwrite what the other's commit names.

Every commit of rows restates the writer's generation, and a writer commits a partition only
while the table still records its own generation. The check and the commit are made atomic by
Delta itself: a commit that sets a transaction id which another commit set since the snapshot
it was made on fails as a concurrent transaction (delta-rs's conflict checker, 1.6.6), so a
zombie's commit racing a claim either lands first (and the claimer reads it back) or fails and
the zombie finds itself fenced. Generations only grow, so a fenced writer can never become
current again without claiming anew (and then loading the state its successor left).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from deltalake import DeltaTable, Transaction

__all__ = [
    "Committed",
    "Fenced",
    "PartitionTxnIds",
    "claim_transactions",
    "commit_metadata",
    "commit_transactions",
    "new_writer_id",
    "read_committed",
    "txn_app_id",
]


def txn_app_id(group: str, topic: str, partition: int) -> str:
    """The Delta transaction id of one consumer group's progress on one partition."""
    return f"{group}:{topic}:{partition}"


@dataclass(frozen=True)
class PartitionTxnIds:
    """The Delta transaction ids that record one partition's progress and owner."""

    offset: str
    checkpoint: str
    checkpoint_generation: str
    generation: str

    @classmethod
    def of(cls, group: str, topic: str, partition: int) -> PartitionTxnIds:
        base = txn_app_id(group, topic, partition)
        return cls(
            base, f"{base}:checkpoint", f"{base}:checkpoint-generation", f"{base}:generation"
        )


@dataclass(frozen=True)
class Committed:
    """What the table records for one partition (``None``: nothing yet, or a table written
    before generations existed, whose checkpoints carry no generation in their name).

    After a claim, ``generation`` is the claimer's own.
    """

    offset: int | None
    checkpoint: int | None
    checkpoint_generation: int | None
    generation: int | None


@dataclass(frozen=True)
class Fenced:
    """A partition this writer lost: the table records a later owner's generation."""

    partition: int
    held: int | None
    recorded: int | None


def read_committed(table: DeltaTable, ids: PartitionTxnIds) -> Committed:
    """The partition's record in ``table``'s loaded snapshot."""
    return Committed(
        table.transaction_version(ids.offset),
        table.transaction_version(ids.checkpoint),
        table.transaction_version(ids.checkpoint_generation),
        table.transaction_version(ids.generation),
    )


def claim_transactions(ids: PartitionTxnIds, generation: int) -> list[Transaction]:
    """The transaction a claim commits: the partition's new owner generation."""
    return [Transaction(ids.generation, generation)]


def commit_transactions(
    ids: PartitionTxnIds, offset: int, checkpoint: int, generation: int
) -> list[Transaction]:
    """What a commit of rows records: offset, checkpoint, its writer, and the owner (restated,
    so that a claim made since the commit's snapshot makes the commit conflict)."""
    return [
        Transaction(ids.offset, offset),
        Transaction(ids.checkpoint, checkpoint),
        Transaction(ids.checkpoint_generation, generation),
        Transaction(ids.generation, generation),
    ]


def new_writer_id() -> str:
    """An id for one worker process, recorded in its Delta commits for whoever audits them."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def commit_metadata(
    writer: str, operation: str, generations: Mapping[int, int]
) -> dict[str, object]:
    """Custom commit-info fields: which writer, doing what (``claim`` or ``append``), under
    which generation per partition."""
    return {
        "policyloop.writer": writer,
        "policyloop.operation": operation,
        "policyloop.generations": {str(p): g for p, g in sorted(generations.items())},
    }
