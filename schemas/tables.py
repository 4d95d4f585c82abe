"""Arrow schemas of the Delta tables: ``timeline``, ``gate_log`` and ``rollout_log``.

The timeline is ReAgent-compatible in meaning (ReAgent names: docs/architecture.md). Choices that
matter to readers in Spark, Trino, DuckDB or Polars:

* times are ``timestamp[us, UTC]`` (Delta's timestamp type); ``ds`` is the UTC date of ``ts`` as
  ``YYYY-MM-DD`` text and the partition column;
* ``state`` and ``metrics`` are sparse ``map<string, double>``; the learner densifies them;
* actions are text (integer actions on the wire are written as their decimal text) and
  ``action_probs`` is aligned with ``possible_actions``;
* ``time_diff`` and ``time_since_first`` are in steps, as in ReAgent;
* ``action_features`` (table schema version 2, nullable) is ``list<map<string, double>>``
  aligned with ``possible_actions``, like ``action_probs``, rather than a map keyed by action:
  a learner builds its per-action arrays positionally, the chosen action's entry is one
  lookup (Spark ``element_at(action_features, array_position(possible_actions, action))``,
  DuckDB ``action_features[list_position(possible_actions, action)]``), ``arrays_zip`` /
  ``list_zip`` pair it with the actions and probabilities, and every engine reads a list of
  maps (ReAgent's parametric actions have the same shape), while a map of maps reads in
  Polars as nested lists of key-value structs. Actions the decision gave no features have an
  empty map; decisions without features (and rows of tables from before version 2) are null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

__all__ = [
    "GATE_LOG_SCHEMA",
    "ROLLOUT_LOG_SCHEMA",
    "TIMELINE_KEY",
    "TIMELINE_PARTITION_BY",
    "TIMELINE_SCHEMA",
    "action_text",
    "ds_of",
    "rows_to_table",
]

_TS = pa.timestamp("us", tz="UTC")
_FLOAT_MAP = pa.map_(pa.string(), pa.float64())

TIMELINE_SCHEMA = pa.schema(
    [
        pa.field("ds", pa.string(), nullable=False),
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("step_ordinal", pa.int64(), nullable=False),
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        pa.field("state", _FLOAT_MAP, nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("possible_actions", pa.list_(pa.string()), nullable=False),
        pa.field("propensity", pa.float64(), nullable=False),
        pa.field("action_probs", pa.list_(pa.float64()), nullable=True),
        pa.field("reward", pa.float64(), nullable=False),
        pa.field("metrics", _FLOAT_MAP, nullable=True),
        pa.field("reward_count", pa.int32(), nullable=False),
        pa.field("next_state", _FLOAT_MAP, nullable=True),
        pa.field("next_action", pa.string(), nullable=True),
        pa.field("possible_next_actions", pa.list_(pa.string()), nullable=True),
        pa.field("next_propensity", pa.float64(), nullable=True),
        pa.field("time_diff", pa.int64(), nullable=True),
        pa.field("time_since_first", pa.int64(), nullable=False),
        pa.field("terminal", pa.bool_(), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("processed_at", _TS, nullable=False),
        # added in table schema version 2: nullable, so a table created before it gains it
        # by a metadata commit (services/table_evolution.py), older files as null
        pa.field("action_features", pa.list_(_FLOAT_MAP), nullable=True),
    ],
    metadata={"policyloop.table": "timeline", "policyloop.schema_version": "2"},
)
TIMELINE_PARTITION_BY = ["ds"]
TIMELINE_KEY = ("episode_id", "step")

_ESTIMATE = pa.struct(
    [
        pa.field("estimator", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("ci_low", pa.float64()),
        pa.field("ci_high", pa.float64()),
        pa.field("normalized", pa.float64()),
        pa.field("warnings", pa.list_(pa.string())),
    ]
)

GATE_LOG_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("policy_name", pa.string(), nullable=False),
        pa.field("started_at", _TS, nullable=False),
        pa.field("finished_at", _TS, nullable=False),
        pa.field("table_uri", pa.string(), nullable=False),
        pa.field("table_version", pa.int64(), nullable=False),
        pa.field("rows_used", pa.int64(), nullable=False),
        pa.field("episodes_used", pa.int64(), nullable=False),
        pa.field("algorithm", pa.string(), nullable=False),
        pa.field("candidate_version", pa.string(), nullable=True),
        pa.field("incumbent_version", pa.string(), nullable=True),
        pa.field("gate_estimator", pa.string(), nullable=False),
        pa.field("estimates", pa.list_(_ESTIMATE), nullable=False),
        pa.field("logged_value", pa.float64(), nullable=True),
        pa.field("incumbent_value", pa.float64(), nullable=True),
        pa.field("effective_sample_size", pa.float64(), nullable=True),
        pa.field("max_importance_weight", pa.float64(), nullable=True),
        pa.field("unsupported_share", pa.float64(), nullable=True),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("reasons", pa.list_(pa.string()), nullable=False),
        pa.field("report_path", pa.string(), nullable=True),
    ],
    metadata={"policyloop.table": "gate_log", "policyloop.schema_version": "1"},
)

#: One row per staged-rollout decision that is not a silent hold (start, hold, advance,
#: promote, rollback, abort) with the evidence it was taken on; returns are per episode.
ROLLOUT_LOG_SCHEMA = pa.schema(
    [
        pa.field("ts", _TS, nullable=False),
        pa.field("policy_name", pa.string(), nullable=False),
        pa.field("candidate_version", pa.string(), nullable=False),
        pa.field("incumbent_version", pa.string(), nullable=False),
        pa.field("step_index", pa.int32(), nullable=False),
        pa.field("steps", pa.list_(pa.float64()), nullable=False),
        pa.field("step_started_at", _TS, nullable=False),
        pa.field("fraction_before", pa.float64(), nullable=False),
        pa.field("fraction_after", pa.float64(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("candidate_episodes", pa.int64(), nullable=False),
        pa.field("candidate_mean_return", pa.float64(), nullable=True),
        pa.field("candidate_std_return", pa.float64(), nullable=True),
        pa.field("incumbent_episodes", pa.int64(), nullable=False),
        pa.field("incumbent_mean_return", pa.float64(), nullable=True),
        pa.field("incumbent_std_return", pa.float64(), nullable=True),
        pa.field("statistic", pa.float64(), nullable=True),
        pa.field("p_value", pa.float64(), nullable=True),
        pa.field("alpha", pa.float64(), nullable=False),
        pa.field("tolerance", pa.float64(), nullable=False),
        pa.field("min_episodes", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ],
    metadata={"policyloop.table": "rollout_log", "policyloop.schema_version": "1"},
)


def action_text(action: str | int) -> str:
    """How an action (text or integer on the wire) is written in tables and manifests."""
    return action if type(action) is str else str(action)


def ds_of(ts_ms: int) -> str:
    """The ``ds`` partition value (UTC date) of an event time in milliseconds."""
    return dt.datetime.fromtimestamp(ts_ms / 1000.0, tz=dt.UTC).strftime("%Y-%m-%d")


_row_types: dict[pa.Schema, pa.DataType] = {}
_TIMELINE_ROW = pa.struct(list(TIMELINE_SCHEMA))


def _row_type(schema: pa.Schema) -> pa.DataType:
    """The struct type of one row of ``schema`` (cached: built once per schema; the timeline's
    without even hashing the schema, which takes microseconds)."""
    if schema is TIMELINE_SCHEMA:
        return _TIMELINE_ROW
    row_type = _row_types.get(schema)
    if row_type is None:
        row_type = _row_types[schema] = pa.struct(list(schema))
    return row_type


def rows_to_table(rows: Iterable[dict[str, Any]], schema: pa.Schema = TIMELINE_SCHEMA) -> pa.Table:
    """Build an Arrow table of ``schema`` from row dicts (a missing key is a null; keys that
    are not columns are ignored).

    Map columns accept Python dicts; timestamp columns accept ``datetime`` objects or integer
    microseconds since the epoch. The rows are converted in one pass by pyarrow's C++
    converter, as one struct array split into the columns: about 2.5 µs per timeline row,
    which matters in the sessionizer's sink (its hot path).
    """
    if not isinstance(rows, list):
        rows = list(rows)
    if not rows:
        return schema.empty_table()
    return pa.Table.from_arrays(pa.array(rows, type=_row_type(schema)).flatten(), schema=schema)
