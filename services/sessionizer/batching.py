"""The worker's pending batch: what each partition produced since the last seal, and when to seal.

Sessionizing and committing overlap: while one sealed batch is written to Delta
(``committer.py``), the next one collects here. A batch is *sealed* (detached from the live
state and handed to a commit) when :meth:`PendingBatch.due` says so: every ``batch_max_rows``
rows or ``batch_max_seconds``, stretched while a backlog waits or when only offsets moved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from services.sessionizer.checkpoint_chain import ChainPolicy, CheckpointChain, CheckpointRecord
from services.sessionizer.metrics import SessionizerMetrics
from services.sessionizer.outputs import DeadLetter
from services.sessionizer.sessionize import PartitionSessionizer
from services.sessionizer.settings import SessionizerSettings
from services.sessionizer.sink import PartitionBatch

__all__ = ["PartitionWork", "PendingBatch", "SealedBatch"]

_BEHIND_STRETCH = 10  # time batches while a backlog waits, in batch_max_seconds
_OFFSETS_ONLY_STRETCH = 10  # time batches holding only offsets (no row, no dead letter)


@dataclass
class PartitionWork:
    """One assigned partition: its sessionizer, how far it got, and its unsealed output."""

    sessionizer: PartitionSessionizer
    committed: int  # last offset recorded in Delta (-1: none)
    last_offset: int  # last offset processed
    checkpoint: int  # last checkpoint number handed to a commit (0: none)
    sealed_offset: int  # last offset handed to a commit
    rows: list[dict[str, Any]] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    acks: list[Any] = field(default_factory=list)  # Faust events awaiting their Delta commit
    #: The chain of its committed checkpoints (new: the next checkpoint is a base).
    chain: CheckpointChain = field(default_factory=CheckpointChain)


@dataclass
class SealedBatch:
    """One batch handed to the committer: everything it needs, detached from the live state."""

    parts: dict[int, PartitionWork]
    batches: list[PartitionBatch]
    #: Per partition, its checkpoint, taken at the seal: the full state or the changes since
    #: the previous one (``checkpoint_chain.py``).
    checkpoints: dict[int, CheckpointRecord]
    letters: list[tuple[int, DeadLetter]]
    acks: dict[int, list[Any]]
    #: Per partition, the episodes changed since the previous seal: all an incremental
    #: checkpoint has to write (``state_changes.py``).
    changes: dict[int, set[str]] = field(default_factory=dict)


class PendingBatch:
    """The assigned partitions (:attr:`parts`) and the work they hold that is not sealed yet."""

    def __init__(
        self, settings: SessionizerSettings, metrics: SessionizerMetrics, group: str
    ) -> None:
        self.parts: dict[int, PartitionWork] = {}
        #: Rows in the partitions' unsealed output.
        self.rows = 0
        #: Events counted by the sessionizers so far (every outcome).
        self.events_seen = 0
        #: A backlog waits: records kept waiting for longer than a time batch.
        self.behind = False
        self._max_rows = settings.batch_max_rows
        self._max_seconds = settings.batch_max_seconds
        self._chain_policy = ChainPolicy.of(settings)
        self._metrics = metrics
        self._group = group
        self._sealed_at = time.monotonic()
        self._caught_up_at = time.monotonic()

    def collect(self, part: PartitionWork) -> None:
        """Move a partition's new output (rows, dead letters, counts) into its pending batch."""
        out = part.sessionizer.take_output()
        if out.rows:
            part.rows.extend(out.rows)
            self.rows += len(out.rows)
        if out.dead_letters:
            part.letters.extend(out.dead_letters)
        if out.events:
            events = self._metrics.events
            for (etype, outcome), n in out.events.items():
                events(self._group, etype, outcome).inc(n)
                self.events_seen += n
        if out.limits:
            for limit, n in out.limits.items():
                self._metrics.state_limit(self._group, limit).inc(n)

    def track_backlog(self, records_waiting: bool, now: float) -> None:
        """Note whether records wait in the topic; :attr:`behind` after a time batch of it.

        A worker that keeps up empties what it fetched again and again; one that cannot never
        does.
        """
        if not records_waiting:
            self._caught_up_at = now
        self.behind = now - self._caught_up_at >= self._max_seconds

    def due(self) -> bool:
        """Time to seal a batch: enough rows, or ``batch_max_seconds`` since the last one.

        Every commit also checkpoints the episodes it changed, which while catching up on a
        backlog (most open episodes get events, so bases come often: ``checkpoint_chain.py``)
        costs about as much as the rows: rows become final all through a backlog (the
        watermark follows its event time), so every time batch carries some. So the time
        limit is stretched ``_BEHIND_STRETCH`` times while a backlog waits (latency is the
        backlog's anyway), and ``_OFFSETS_ONLY_STRETCH`` times when the batch would only record
        offsets (no row, no dead letter: nobody waits for it).
        """
        if self.rows >= self._max_rows:
            return True
        elapsed = time.monotonic() - self._sealed_at
        if elapsed < self._max_seconds * (_BEHIND_STRETCH if self.behind else 1):
            return False
        if self.rows or any(part.letters for part in self.parts.values()):
            return True
        return elapsed >= self._max_seconds * _OFFSETS_ONLY_STRETCH

    def seal(self) -> SealedBatch | None:
        """Detach what advanced since the last seal (``None``: nothing did).

        Each advanced partition gets the next checkpoint number and its checkpoint, taken now
        so the commit can save it while sessionizing goes on: its full state or the episodes
        that changed since its previous seal (``checkpoint_chain.py``).
        """
        self._sealed_at = time.monotonic()
        advanced = {
            p: part
            for p, part in self.parts.items()
            if part.last_offset > part.sealed_offset or part.rows or part.letters
        }
        if not advanced:
            # Acks of re-delivered records already in the table may still be pending.
            return None
        batches: list[PartitionBatch] = []
        checkpoints: dict[int, CheckpointRecord] = {}
        letters: list[tuple[int, DeadLetter]] = []
        acks: dict[int, list[Any]] = {}
        changes: dict[int, set[str]] = {}
        for p, part in advanced.items():
            part.checkpoint += 1
            batches.append(PartitionBatch(p, part.last_offset, part.checkpoint, part.rows))
            changes[p] = part.sessionizer.take_changes()
            checkpoints[p] = part.chain.record(
                part.checkpoint, part.sessionizer, changes[p], self._chain_policy
            )
            letters.extend((p, letter) for letter in part.letters)
            acks[p] = part.acks
            part.sealed_offset = part.last_offset
            part.rows, part.letters, part.acks = [], [], []
        self.rows = sum(len(part.rows) for part in self.parts.values())
        return SealedBatch(advanced, batches, checkpoints, letters, acks, changes)
