"""The Delta ``rollout_log`` table: one row per rollout decision with its evidence.

Appending one row per decision is cheap (decisions are minutes apart) and gives auditors, the
demo's report and Grafana's SQL panels the full story: which step, what each side showed, the
test and the reason in words.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake

from schemas.tables import ROLLOUT_LOG_SCHEMA, rows_to_table
from services.delta_tables import ensure_table, open_table, read_table

__all__ = ["append_rollout_log", "read_rollout_log"]


def append_rollout_log(uri: str, row: dict[str, Any]) -> None:
    """Append ``row`` (the columns of :data:`ROLLOUT_LOG_SCHEMA`) to the table at ``uri``."""
    ensure_table(uri, ROLLOUT_LOG_SCHEMA)
    write_deltalake(uri, rows_to_table([row], ROLLOUT_LOG_SCHEMA), mode="append")


def read_rollout_log(uri: str, policy_name: str | None = None) -> pa.Table:
    """Every row (of ``policy_name`` when given), oldest first; empty if there is no table."""
    table = open_table(uri)
    if table is None:
        return ROLLOUT_LOG_SCHEMA.empty_table()
    filter_ = pc.field("policy_name") == policy_name if policy_name is not None else None
    rows = read_table(table, ROLLOUT_LOG_SCHEMA, filter=filter_)
    return rows.sort_by([("ts", "ascending")])
