"""The exactly-once Delta sink: one append commit per batch, offsets as Delta transaction ids.

Why transaction ids: the Delta commit that appends a batch's rows also records, atomically,
``Transaction(app_id="<group>:<topic>:<partition>", version=<last offset whose effects the
batch holds>)`` for every partition that advanced. The table itself then says how far each
partition got, whatever killed the worker: :meth:`DeltaSink.claim` reads those versions back
on start or partition assignment, and the worker resumes after them. deltalake does not skip a
duplicate or older transaction version on its own (checked for 1.6.6), so the worker never
re-processes an offset at or below the recorded version.

The same commit records the number of the state checkpoint that goes with the rows
(``<app_id>:checkpoint``, ``checkpoint.py``) and the partition's owner generation
(``fencing.py``). A worker claims each partition it is assigned (one commit raising the
generation) and commits a partition only while the table records its own generation: a
worker that lost its partitions without knowing (cut off from the broker) is *fenced*, and its
rows for them are dropped instead of written twice or over its successor's.

A table created by an earlier version first gains the columns added since
(``services/table_evolution.py``, by ``ensure_table``), so that every commit carries the
current schema.

Rows are converted to Arrow by :func:`schemas.tables.rows_to_table` (pyarrow's C++ converter
in one pass), which is on the worker's hot path.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA, rows_to_table
from services.delta_tables import ensure_table
from services.sessionizer.fencing import (
    Committed,
    Fenced,
    PartitionTxnIds,
    claim_transactions,
    commit_metadata,
    commit_transactions,
    new_writer_id,
    read_committed,
)

__all__ = ["COMMIT_ATTEMPTS", "CommitOutcome", "DeltaSink", "PartitionBatch"]

#: Tries of a claim or an append that fails as a concurrent transaction, each on a fresh
#: snapshot (the table is re-read and ownership checked again before each).
COMMIT_ATTEMPTS = 5


@dataclass
class PartitionBatch:
    """Rows produced from one partition up to and including ``last_offset``.

    ``checkpoint`` numbers the state checkpoint saved with this commit: it grows with every
    commit, also when only the clock (not the offset) moved, so a checkpoint is never
    overwritten (see ``checkpoint.py``).
    """

    partition: int
    last_offset: int
    checkpoint: int
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class CommitOutcome:
    """One :meth:`DeltaSink.commit`: rows written, the partitions found fenced (their rows were
    not written), and how long it took."""

    rows: int
    fenced: list[Fenced]
    seconds: float


class DeltaSink:
    """Appends batches to the timeline with their partitions' offsets as transaction ids, for
    the partitions this writer has claimed and still owns."""

    def __init__(self, table_uri: str, group: str, topic: str, writer: str | None = None) -> None:
        self.table_uri = table_uri
        self.group = group
        self.topic = topic
        #: Recorded in every commit's info, so the table's history says who wrote what.
        self.writer = writer or new_writer_id()
        self._table: DeltaTable = ensure_table(
            table_uri, TIMELINE_SCHEMA, TIMELINE_PARTITION_BY, writer=self.writer
        )
        self._held: dict[int, int] = {}  # partition -> the generation this writer claimed

    def ids(self, partition: int) -> PartitionTxnIds:
        return PartitionTxnIds.of(self.group, self.topic, partition)

    def generation(self, partition: int) -> int | None:
        """The generation this writer holds for ``partition`` (``None``: not claimed)."""
        return self._held.get(partition)

    def claim(self, partitions: Iterable[int]) -> dict[int, Committed]:
        """Take ownership of ``partitions``: one commit raising each one's generation.

        Returns what the table records per partition as of that commit (with the new
        generation): no writer of an older generation can commit after it, so this is exactly
        where to resume. Retried on a fresh snapshot when a concurrent commit touched one of
        them (a zombie's last commit, which is then read back).
        """
        parts = sorted(set(partitions))
        if not parts:
            return {}
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            self._table.update_incremental()
            found = {p: read_committed(self._table, self.ids(p)) for p in parts}
            generations = {p: (found[p].generation or 0) + 1 for p in parts}
            txns = [t for p in parts for t in claim_transactions(self.ids(p), generations[p])]
            try:
                self._append(TIMELINE_SCHEMA.empty_table(), txns, "claim", generations)
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                continue
            self._held.update(generations)
            return {p: dataclasses.replace(found[p], generation=generations[p]) for p in parts}
        raise AssertionError("unreachable")  # pragma: no cover

    def fenced(self, partitions: Iterable[int]) -> list[Fenced]:
        """Re-read the table: the partitions among ``partitions`` this writer no longer owns
        (released: nothing more is written for them).

        :meth:`commit` commits on the snapshot read here, so a claim made after this check
        makes that commit conflict rather than slip in.
        """
        self._table.update_incremental()
        fenced = self._fenced(partitions)
        self.forget(f.partition for f in fenced)
        return fenced

    def _fenced(self, partitions: Iterable[int]) -> list[Fenced]:
        out = []
        for p in partitions:
            held = self._held.get(p)
            recorded = self._table.transaction_version(self.ids(p).generation)
            if held is None or recorded != held:
                out.append(Fenced(p, held, recorded))
        return out

    def commit(self, batches: Sequence[PartitionBatch]) -> CommitOutcome:
        """Write ``batches`` of the partitions this writer still owns in one Delta commit.

        A batch of no rows still commits its transaction ids, so progress over events that
        produced no row (rejected or still open) is recorded too. Fenced partitions are
        released: their batches are not written.
        """
        if not batches:
            return CommitOutcome(0, [], 0.0)
        started = time.perf_counter()
        partitions = [b.partition for b in batches]
        fenced = self._fenced(partitions)
        written = 0
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            lost = {f.partition for f in fenced}
            keep = [b for b in batches if b.partition not in lost]
            if not keep:
                break
            txns: list[Transaction] = []
            generations = {}
            for b in keep:
                generation = self._held[b.partition]
                generations[b.partition] = generation
                txns += commit_transactions(
                    self.ids(b.partition), b.last_offset, b.checkpoint, generation
                )
            rows = [r for b in keep for r in b.rows]
            try:
                self._append(rows_to_table(rows), txns, "append", generations)
            except CommitFailedError:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                fenced = self.fenced(partitions)  # a claim since the snapshot, or another cause
                continue
            written = len(rows)
            break
        self.forget(f.partition for f in fenced)  # found on the first snapshot
        return CommitOutcome(written, fenced, time.perf_counter() - started)

    def _append(
        self,
        data: pa.Table,
        txns: list[Transaction],
        operation: str,
        generations: dict[int, int],
    ) -> None:
        write_deltalake(
            self._table,
            data,
            mode="append",
            partition_by=TIMELINE_PARTITION_BY,
            commit_properties=CommitProperties(
                app_transactions=txns,
                custom_metadata=commit_metadata(self.writer, operation, generations),
            ),
        )

    def forget(self, partitions: Iterable[int]) -> None:
        """Stop holding partitions this worker no longer owns."""
        for p in partitions:
            self._held.pop(p, None)

    @property
    def version(self) -> int:
        return self._table.version()
