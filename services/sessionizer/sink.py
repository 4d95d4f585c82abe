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

Rows are converted to Arrow column by column: each column's values pulled out of the row
dicts by ``map(operator.itemgetter(name), rows)`` (no Python-level loop), then map and list
columns from flat keys, items and offsets. That is several times faster than ``pyarrow.array``
of Python dicts; it is on the worker's hot path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from operator import itemgetter
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA, rows_to_table
from services.delta_tables import ensure_table

__all__ = ["Committed", "DeltaSink", "PartitionBatch", "timeline_arrow", "txn_app_id"]

_GETTERS = [(itemgetter(f.name), f) for f in TIMELINE_SCHEMA]


def _offsets_and_mask(values: Sequence[Any]) -> tuple[pa.Array, pa.Array | None, list[Any]]:
    present = [v for v in values if v is not None]
    lengths = (0 if v is None else len(v) for v in values)
    offsets = pa.array(list(accumulate(lengths, initial=0)), pa.int32())
    mask = None
    if len(present) != len(values):
        mask = pa.array([v is None for v in values], pa.bool_())
    return offsets, mask, present


#: Columns whose values are often the very same objects as another column's (the sessionizer
#: gives a row's ``next_state`` the object of the next row's ``state``, and interns action
#: lists): converted together, each distinct object once.
_SHARED = {
    "state": "next_state",
    "possible_actions": "possible_next_actions",
}


def _shared_columns(columns: Sequence[Sequence[Any]], field: pa.Field) -> list[pa.Array]:
    """Columns of one nested type, converting each distinct object once (by identity)."""
    index_of: dict[int, int] = {}
    distinct: list[Any] = []
    all_indices = []
    for values in columns:
        indices = []
        for v in values:
            key = id(v)
            i = index_of.get(key)
            if i is None:
                i = index_of[key] = len(distinct)
                distinct.append(v)
            indices.append(i)
        all_indices.append(indices)
    total = sum(len(values) for values in columns)
    if len(distinct) * 4 > total * 3:  # little sharing: not worth the take
        return [_column(values, field) for values in columns]
    converted = _column(distinct, field)
    return [converted.take(pa.array(indices, pa.int32())) for indices in all_indices]


def _column(values: Sequence[Any], field: pa.Field) -> pa.Array:
    kind = field.type
    if pa.types.is_map(kind):
        offsets, mask, present = _offsets_and_mask(values)
        keys = pa.array(list(chain.from_iterable(m.keys() for m in present)), kind.key_type)
        items = pa.array(list(chain.from_iterable(m.values() for m in present)), kind.item_type)
        return pa.MapArray.from_arrays(offsets, keys, items, type=kind, mask=mask)
    if pa.types.is_list(kind):
        offsets, mask, present = _offsets_and_mask(values)
        flat = pa.array(list(chain.from_iterable(present)), kind.value_type)
        return pa.ListArray.from_arrays(offsets, flat, type=kind, mask=mask)
    return pa.array(values, type=kind)


def timeline_arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Timeline rows (dicts with every column, as the sessionizer writes them) as Arrow.

    Same result as :func:`schemas.tables.rows_to_table`, which it falls back to when a row
    lacks a column.
    """
    if not rows:
        return rows_to_table(rows)
    try:
        values = {f.name: list(map(get, rows)) for get, f in _GETTERS}
    except KeyError:
        return rows_to_table(rows)
    arrays = {}
    for first, second in _SHARED.items():
        field = TIMELINE_SCHEMA.field(first)
        arrays[first], arrays[second] = _shared_columns([values[first], values[second]], field)
    for _get, f in _GETTERS:
        if f.name not in arrays:
            arrays[f.name] = _column(values[f.name], f)
    return pa.Table.from_arrays([arrays[f.name] for f in TIMELINE_SCHEMA], schema=TIMELINE_SCHEMA)


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
        self._written: dict[int, int] = {}

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
            data = timeline_arrow(rows)
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
