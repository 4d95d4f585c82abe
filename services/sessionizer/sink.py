"""The exactly-once Delta sink: one append commit per batch, offsets as Delta transaction ids.

Why transaction ids: the Delta commit that appends a batch's rows also records, atomically,
``Transaction(app_id="<group>:<topic>:<partition>", version=<last offset whose effects the
batch holds>)`` for every partition that advanced. The table itself then says how far each
partition got, whatever killed the worker: :meth:`DeltaSink.committed` reads those
versions back on start or partition assignment, and the worker resumes after them. deltalake
does not skip a duplicate or older transaction version on its own (checked for 1.6.6), so the
worker never re-processes an offset at or below the recorded version.

A second transaction id per partition, ``<app_id>:checkpoint``, records in the same commit the
number of the state checkpoint that goes with it (``checkpoint.py``).

A zombie guard: before committing, the sink re-reads the recorded checkpoint numbers of its
partitions; if another worker has changed one since this worker last wrote it, that partition
was taken over and its rows are dropped from the batch instead of being written twice.

Rows are converted to Arrow by :func:`schemas.tables.rows_to_table` (pyarrow's C++ converter
in one pass), which is on the worker's hot path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA, rows_to_table
from services.delta_tables import ensure_table

__all__ = ["Committed", "DeltaSink", "PartitionBatch", "txn_app_id"]


def txn_app_id(group: str, topic: str, partition: int) -> str:
    """The Delta transaction id of one consumer group's progress on one partition."""
    return f"{group}:{topic}:{partition}"


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
class Committed:
    """What the table records for one partition: last offset and checkpoint number."""

    offset: int | None
    checkpoint: int | None


class DeltaSink:
    """Appends batches to the timeline with their partitions' offsets as transaction ids."""

    def __init__(self, table_uri: str, group: str, topic: str) -> None:
        self.table_uri = table_uri
        self.group = group
        self.topic = topic
        self._table: DeltaTable = ensure_table(table_uri, TIMELINE_SCHEMA, TIMELINE_PARTITION_BY)
        self._written: dict[int, int | None] = {}  # checkpoint number this worker wrote last

    def app_id(self, partition: int) -> str:
        return txn_app_id(self.group, self.topic, partition)

    def committed(self, partitions: Iterable[int]) -> dict[int, Committed]:
        """What the table records per partition (``None`` fields: nothing yet)."""
        self._table.update_incremental()
        found = {}
        for p in partitions:
            offset = self._table.transaction_version(self.app_id(p))
            checkpoint = self._table.transaction_version(self.app_id(p) + ":checkpoint")
            found[p] = Committed(offset, checkpoint)
            self._written[p] = checkpoint
        return found

    def commit(self, batches: Sequence[PartitionBatch]) -> tuple[int, list[int], float]:
        """Write ``batches`` in one Delta commit; returns (rows written, partitions lost, secs).

        A batch of no rows still commits its transaction ids, so progress over events that
        produced no row (rejected or still open) is recorded too.
        """
        if not batches:
            return 0, [], 0.0
        started = time.perf_counter()
        self._table.update_incremental()
        lost = []
        keep = []
        for b in batches:
            recorded = self._table.transaction_version(self.app_id(b.partition) + ":checkpoint")
            if recorded != self._written.get(b.partition):
                lost.append(b.partition)
            else:
                keep.append(b)
        rows = [r for b in keep for r in b.rows]
        if keep:
            data = rows_to_table(rows)
            txns = []
            for b in keep:
                txns.append(Transaction(self.app_id(b.partition), b.last_offset))
                txns.append(Transaction(self.app_id(b.partition) + ":checkpoint", b.checkpoint))
            write_deltalake(
                self._table,
                data,
                mode="append",
                partition_by=TIMELINE_PARTITION_BY,
                commit_properties=CommitProperties(app_transactions=txns),
            )
            for b in keep:
                self._written[b.partition] = b.checkpoint
        return len(rows), lost, time.perf_counter() - started

    def forget(self, partitions: Iterable[int]) -> None:
        """Stop tracking partitions this worker no longer owns."""
        for p in partitions:
            self._written.pop(p, None)

    @property
    def version(self) -> int:
        return self._table.version()
