"""The sink's fast Arrow conversion gives exactly the table ``schemas.tables`` defines."""

from __future__ import annotations

from schemas.tables import rows_to_table
from schemas.wire import encode_batch
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from services.sessionizer.sink import timeline_arrow
from tests.sessionizer.factory import T0, decision, end, reward


def _rows() -> list[dict]:
    """Rows with every kind of value: maps (empty too), lists, nulls, metrics, text actions."""
    events = [
        decision("a", 0, state={}, action_probs=[0.5, 0.5]),
        reward("a", 0, 1.5, metrics={"clicks": 2.0, "cost": -1}),
        reward("a", 0, 2.0, event_id="a-r0-b"),
        decision("a", 1, action="left", possible_actions=["left", "right"]),
        end("a", True, ts=T0 + 2000),
        decision("b", 0),
        end("b", False, ts=T0 + 500),
    ]
    sess = PartitionSessionizer(SessionConfig(reward_window_ms=1000))
    sess.process_record(encode_batch(events), 0, T0 + 3_600_000)
    sess.advance(T0 + 3_600_000)
    rows = sess.take_output().rows
    assert len(rows) == 3
    return rows


def test_fast_conversion_equals_rows_to_table_including_its_schema():
    rows = _rows()
    fast, reference = timeline_arrow(rows), rows_to_table(rows)
    assert fast.schema.equals(reference.schema, check_metadata=True)
    assert fast.equals(reference)


def test_a_missing_column_becomes_a_null_as_in_rows_to_table():
    rows = _rows()
    for row in rows:
        del row["metrics"]
    assert timeline_arrow(rows).equals(rows_to_table(rows))
