"""Which checkpoints are written in full: a base, then a chain of changes records.

Why: a full checkpoint rewrites every open episode at every commit, although between two
commits most episodes do not change (10,000 open episodes, one of them given an event: the
full checkpoint is thousands of times larger than what changed). So checkpoint ``N`` of a
partition is either a *base* (the full state, ``PartitionSessionizer.snapshot``) or a *changes*
record (``state_changes.py``) of the episodes changed since checkpoint ``N - 1``, with the
number of its base inside (``"base": B``). The Delta commit that records ``N`` names the last
link of the chain ``B, B + 1, ..., N``; a restart reads exactly that chain
(``checkpoint_load.py``).

When a base is written (:class:`ChainPolicy`, settings ``checkpoint_base_every`` and
``checkpoint_chain_share``):

* as the first checkpoint a writer makes after it claimed the partition, so a chain never
  spans two writers: its links all carry the one generation in their names, a restart never
  has to choose between a zombie's files and its successor's, and a file left by a crash
  between its write and its Delta commit is never part of anyone's chain;
* once the chain holds ``checkpoint_base_every`` checkpoints (base included): a restart reads
  at most that many files, and the base's cost is spread over that many commits;
* once the changes records add up to ``checkpoint_chain_share`` of the base's bytes: a restart
  reads at most about ``1 + share`` full checkpoints' worth, and when most episodes change at
  every commit (a backlog), bases come often and the bytes per commit stay near a full
  checkpoint's, never far above.

Pruning deletes only files numbered before the committed chain's base (``committer.py``), so
every file a committed ``N`` depends on stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.sessionizer.sessionize import PartitionSessionizer
from services.sessionizer.settings import SessionizerSettings

__all__ = ["ChainPolicy", "CheckpointChain", "CheckpointRecord"]


@dataclass(frozen=True)
class ChainPolicy:
    """When a partition's next checkpoint is a base (see the module docstring)."""

    base_every: int
    chain_share: float

    @classmethod
    def of(cls, settings: SessionizerSettings) -> ChainPolicy:
        return cls(settings.checkpoint_base_every, settings.checkpoint_chain_share)


@dataclass(frozen=True)
class CheckpointRecord:
    """What checkpoint ``number`` of a partition holds: the full state when it is its own
    ``base``, else the changes since ``number - 1`` on the chain starting at ``base``."""

    number: int
    base: int
    data: dict[str, Any]

    @property
    def is_base(self) -> bool:
        return self.number == self.base


@dataclass
class CheckpointChain:
    """The chain of a partition's committed checkpoints, as its current writer made it.

    A new one (a partition just claimed) has no base, so the writer's first checkpoint is one.
    """

    base: int | None = None
    #: Checkpoints in the chain, base included.
    length: int = 0
    base_bytes: int = 0
    #: Bytes of the changes records after the base.
    changes_bytes: int = 0

    def wants_base(self, policy: ChainPolicy) -> bool:
        """The next checkpoint must be a base."""
        return (
            self.base is None
            or self.length >= policy.base_every
            or self.changes_bytes >= policy.chain_share * self.base_bytes
        )

    def record(
        self,
        number: int,
        sessionizer: PartitionSessionizer,
        changed: set[str],
        policy: ChainPolicy,
    ) -> CheckpointRecord:
        """Checkpoint ``number``, taken now from ``sessionizer``: a base, or the ``changed``
        episodes (its ``take_changes`` since the previous checkpoint) chained to the base."""
        if self.base is None or self.wants_base(policy):
            return CheckpointRecord(number, number, sessionizer.snapshot())
        data = sessionizer.snapshot_changes(changed)
        data["base"] = self.base
        return CheckpointRecord(number, self.base, data)

    def committed(self, record: CheckpointRecord, nbytes: int) -> None:
        """``record``, of ``nbytes`` on disk, is named by a Delta commit: the chain's new end."""
        if record.is_base:
            self.base, self.length = record.number, 1
            self.base_bytes, self.changes_bytes = nbytes, 0
        else:
            self.length += 1
            self.changes_bytes += nbytes
