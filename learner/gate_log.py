"""The ``gate_log`` Delta table: one row per learner run, the audit trail of every gate decision.

Why a Delta table rather than a log file: people ask "why was v7 published?" or "why has nothing
been published for a week?" months later, from Spark, Trino or DuckDB; and the learner itself
reads it back to know which timeline version it last looked at (so a scheduled run skips when no
new data arrived).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake

from learner.cpe.estimate import Estimate
from schemas.tables import GATE_LOG_SCHEMA, rows_to_table
from services.delta_tables import ensure_table, open_table, read_table

__all__ = [
    "DECISIONS",
    "GateLogEntry",
    "append_gate_log",
    "last_logged_table_version",
    "read_gate_log",
]

DECISIONS = ("publish", "reject")


@dataclass(frozen=True)
class GateLogEntry:
    """One learner run; field meanings as in ``schemas.tables.GATE_LOG_SCHEMA``."""

    run_id: str
    policy_name: str
    started_at: dt.datetime
    finished_at: dt.datetime
    table_uri: str
    table_version: int
    rows_used: int
    episodes_used: int
    algorithm: str
    gate_estimator: str
    decision: str
    reasons: list[str]
    estimates: list[Estimate] = field(default_factory=list)
    candidate_version: str | None = None
    incumbent_version: str | None = None
    logged_value: float | None = None
    incumbent_value: float | None = None
    effective_sample_size: float | None = None
    max_importance_weight: float | None = None
    unsupported_share: float | None = None
    report_path: str | None = None

    def validate(self) -> None:
        """Raise ValueError naming the field and the rule it breaks."""
        if self.decision not in DECISIONS:
            raise ValueError(f"gate_log.decision {self.decision!r}: must be one of {DECISIONS}")
        if not self.reasons or not all(isinstance(r, str) and r for r in self.reasons):
            raise ValueError("gate_log.reasons: must be a non-empty list of non-empty sentences")
        for name in ("started_at", "finished_at"):
            value = getattr(self, name)
            if not isinstance(value, dt.datetime) or value.tzinfo is None:
                raise ValueError(f"gate_log.{name}: must be a timezone-aware datetime")
        if self.finished_at < self.started_at:
            raise ValueError("gate_log.finished_at: must not be before started_at")
        for name in ("table_version", "rows_used", "episodes_used"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"gate_log.{name}: must be ≥ 0")
        if self.decision == "publish" and not self.candidate_version:
            raise ValueError("gate_log.candidate_version: required when the decision is publish")

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["estimates"] = [asdict(e) for e in self.estimates]
        for key, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                row[key] = None  # "not computed" reads better as null than NaN in SQL engines
        return row


def append_gate_log(uri: str | os.PathLike[str], entries: Sequence[GateLogEntry]) -> int:
    """Append ``entries`` (validated first) to the table at ``uri``; returns its new version."""
    entries = list(entries)
    if not entries:
        raise ValueError("append_gate_log: entries must not be empty")
    for entry in entries:
        entry.validate()
    ensure_table(uri, GATE_LOG_SCHEMA)
    table = rows_to_table([e.to_row() for e in entries], GATE_LOG_SCHEMA)
    write_deltalake(str(uri), table, mode="append")
    reopened = open_table(uri)
    assert reopened is not None
    return reopened.version()


def read_gate_log(uri: str | os.PathLike[str], policy_name: str | None = None) -> pa.Table:
    """All runs recorded at ``uri`` (optionally of one policy), oldest first; empty if none."""
    table = open_table(uri)
    if table is None:
        return GATE_LOG_SCHEMA.empty_table()
    flt = pc.field("policy_name") == policy_name if policy_name is not None else None
    rows = read_table(table, GATE_LOG_SCHEMA, filter=flt)
    if rows.num_rows:
        rows = rows.sort_by([("finished_at", "ascending")])
    return rows


def last_logged_table_version(
    uri: str | os.PathLike[str], policy_name: str, table_uri: str
) -> int | None:
    """The timeline version the latest run of ``policy_name`` on ``table_uri`` read, if any."""
    rows = read_gate_log(uri, policy_name)
    if not rows.num_rows:
        return None
    mask = pc.equal(rows["table_uri"], table_uri)
    rows = rows.filter(mask)
    if not rows.num_rows:
        return None
    return int(rows["table_version"][rows.num_rows - 1].as_py())
