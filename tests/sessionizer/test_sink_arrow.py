"""The sink's Arrow conversion (``schemas.tables.rows_to_table``) gives exactly the table that
``schemas.tables`` defines: checked against each column converted on its own."""

from __future__ import annotations

import pyarrow as pa

from schemas.tables import TIMELINE_SCHEMA, rows_to_table
from schemas.wire import encode_batch
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from tests.sessionizer.factory import T0, decision, end, reward


def _rows() -> list[dict]:
    """Rows with every kind of value: maps (empty too), lists, nulls, metrics, text actions,
    action features (a list of maps)."""
    events = [
        decision("a", 0, state={}, action_probs=[0.5, 0.5]),
        reward("a", 0, 1.5, metrics={"clicks": 2.0, "cost": -1}),
        reward("a", 0, 2.0, event_id="a-r0-b"),
        decision("a", 1, action="left", possible_actions=["left", "right"]),
        end("a", True, ts=T0 + 2000),
        decision("b", 0, action_features={"1": {"price": 2}}, schema_version=2),
        end("b", False, ts=T0 + 500),
    ]
    sess = PartitionSessionizer(SessionConfig(reward_window_ms=1000))
    sess.process_record(encode_batch(events), 0, T0 + 3_600_000)
    sess.advance(T0 + 3_600_000)
    rows = sess.take_output().rows
    assert len(rows) == 3
    return rows


def _column_by_column(rows: list[dict]) -> pa.Table:
    """The reference: every column of the schema converted on its own (a missing key: null)."""
    columns = [pa.array([row.get(f.name) for row in rows], type=f.type) for f in TIMELINE_SCHEMA]
    return pa.Table.from_arrays(columns, schema=TIMELINE_SCHEMA)


def test_fast_conversion_equals_rows_to_table_including_its_schema():
    rows = _rows()
    fast, reference = rows_to_table(rows), _column_by_column(rows)
    assert fast.schema.equals(reference.schema, check_metadata=True)
    assert fast.schema.equals(TIMELINE_SCHEMA, check_metadata=True)
    assert fast.equals(reference)


def test_a_missing_column_becomes_a_null_as_in_rows_to_table():
    rows = _rows()
    for row in rows:
        del row["metrics"]
    assert rows_to_table(rows).equals(_column_by_column(rows))
    assert rows_to_table(rows).column("metrics").null_count == len(rows)


def test_no_rows_give_an_empty_table_of_the_schema():
    assert rows_to_table([]).equals(TIMELINE_SCHEMA.empty_table())
