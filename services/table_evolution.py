"""Bring a table created by an earlier version up to the current schema, in place.

Why: our tables gain columns over time (the timeline's ``action_features`` in table schema
version 2, ``schemas/tables.py``), and a table created before one of them lacks it; Delta refuses
an append whose columns differ from the table's. Every writer opens its table through
:func:`services.delta_tables.ensure_table`, which calls :func:`add_missing_columns`: the
sessionizer's sink, the importer, the gate log and the rollout log alike.

Each added column is nullable, so the table gains it by one metadata commit (Delta's ``ADD
COLUMN``): no file is rewritten, files written before read the column as null
(``services.delta_tables.read_table`` and the learner's readers give the Arrow schema, which
fills absent columns with nulls), and later appends carry it.

Why an explicit commit when a writer opens the table rather than
``write_deltalake(schema_mode="merge")`` on every append: the appends on the hot path stay plain
(no schema comparison per commit), and the change is one commit of its own, named in the
table's history (``policyloop.operation`` = ``evolve``). Writers starting together may both
try: a conflicting commit is retried on a fresh snapshot, where the column is then found.

A sessionizer of an earlier version appends the old columns and is refused by the evolved table
(``SchemaMismatchError``; nothing is lost: its batch was not committed, and the partition's
next owner resumes from the table). So stop the old workers before starting new ones.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.schema import Field

__all__ = ["EVOLVE_ATTEMPTS", "add_missing_columns"]

log = logging.getLogger(__name__)

#: Tries of the metadata commit, each on a fresh snapshot.
EVOLVE_ATTEMPTS = 5


def add_missing_columns(table: DeltaTable, schema: pa.Schema, writer: str | None) -> list[str]:
    """Add to ``table`` (a snapshot just opened, as :func:`~services.delta_tables.ensure_table`
    passes it) the columns of ``schema`` it lacks, in one commit; their names.

    Only nullable columns can be added (rows already written have no value for them); a
    missing required column raises :class:`ValueError` naming it. ``writer`` (when given) is
    recorded in the commit's info, as the sessionizer records it in its own commits.
    """
    for attempt in range(1, EVOLVE_ATTEMPTS + 1):
        present = {f.name for f in table.schema().fields}
        missing = [f for f in schema if f.name not in present]
        if not missing:
            return []
        required = [f.name for f in missing if not f.nullable]
        if required:
            raise ValueError(
                f"the table at {table.table_uri} lacks the required columns {required}: "
                "only nullable columns can be added to an existing table"
            )
        names = [f.name for f in missing]
        try:
            table.alter.add_columns(
                [Field.from_arrow(f) for f in missing],
                commit_properties=CommitProperties(
                    custom_metadata={
                        **({"policyloop.writer": writer} if writer else {}),
                        "policyloop.operation": "evolve",
                        "policyloop.columns": ",".join(names),
                    }
                ),
            )
        except CommitFailedError:
            if attempt == EVOLVE_ATTEMPTS:
                raise
            table.update_incremental()  # another writer committed: look again
            continue
        log.info("table %s: added the columns %s (null in earlier rows)", table.table_uri, names)
        return names
    raise AssertionError("unreachable")  # pragma: no cover
