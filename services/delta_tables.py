"""Reading and creating Delta tables without the interpreter-abort of delta-rs issue 2184.

DeltaTable's own pyarrow conversions (``to_pyarrow_*``) can abort the interpreter at exit (exit
code 134) with deltalake 1.6; reading the table's parquet files with ``pyarrow.dataset`` exits
cleanly. Every reader in policyloop goes through :func:`read_table`.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from services.table_evolution import add_missing_columns

__all__ = ["ensure_table", "open_table", "read_table"]


def open_table(uri: str | os.PathLike[str], version: int | None = None) -> DeltaTable | None:
    """The Delta table at ``uri`` (at ``version`` when given), or ``None`` if there is none."""
    try:
        table = DeltaTable(str(uri))
    except TableNotFoundError:
        return None
    if version is not None:
        table.load_as_version(version)
    return table


def ensure_table(
    uri: str | os.PathLike[str],
    schema: pa.Schema,
    partition_by: list[str] | None = None,
    writer: str | None = None,
) -> DeltaTable:
    """Open the table for writing with ``schema``: created empty if it does not exist, given
    the nullable columns of ``schema`` it lacks if an earlier version created it
    (:mod:`services.table_evolution`; ``writer`` goes into that commit's info)."""
    table = open_table(uri)
    if table is not None:
        add_missing_columns(table, schema, writer)
        return table
    if not str(uri).startswith(("s3://", "gs://", "az://", "abfss://")):
        os.makedirs(uri, exist_ok=True)
    write_deltalake(str(uri), schema.empty_table(), partition_by=partition_by, mode="append")
    table = DeltaTable(str(uri))
    return table


def read_table(
    table: DeltaTable,
    schema: pa.Schema,
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,
) -> pa.Table:
    """Read ``table``'s current snapshot as a pyarrow Table with the given ``schema``.

    Partition columns are not stored in the parquet files, so they are restored from the
    table's add actions.
    """
    partition_cols = table.metadata().partition_columns
    file_uris = table.file_uris()
    if not file_uris:
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    partitioning = None
    if partition_cols:
        partitioning = pads.partitioning(
            pa.schema([schema.field(c) for c in partition_cols]), flavor="hive"
        )
    dataset = pads.dataset(file_uris, schema=schema, format="parquet", partitioning=partitioning)
    return dataset.to_table(columns=columns, filter=filter)
