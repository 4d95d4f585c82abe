"""Every writer opens its table through ``ensure_table``, which brings a table created by an
earlier version up to the current schema (``services/table_evolution.py``)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from services.delta_tables import ensure_table, read_table
from services.table_evolution import add_missing_columns

OLD = pa.schema([pa.field("id", pa.string(), nullable=False)])
NEW = pa.schema([*OLD, pa.field("note", pa.string(), nullable=True)])


def _old_table(uri: Path) -> None:
    write_deltalake(str(uri), pa.table({"id": ["a"]}, schema=OLD), mode="append")


def _evolutions(uri: Path) -> list[dict]:
    history = DeltaTable(str(uri)).history()
    return [h for h in history if h.get("policyloop.operation") == "evolve"]


def test_opening_an_older_table_adds_the_new_nullable_column_and_keeps_its_rows(tmp_path):
    uri = tmp_path / "t"
    _old_table(uri)
    table = ensure_table(uri, NEW, writer="tester")
    assert [f.name for f in table.schema().fields] == ["id", "note"]
    write_deltalake(str(uri), pa.table({"id": ["b"], "note": ["new"]}, schema=NEW), mode="append")
    rows = read_table(DeltaTable(str(uri)), NEW).sort_by("id").to_pylist()
    assert rows == [{"id": "a", "note": None}, {"id": "b", "note": "new"}]
    [evolved] = _evolutions(uri)
    assert evolved["policyloop.columns"] == "note" and evolved["policyloop.writer"] == "tester"


def test_opening_an_up_to_date_table_commits_nothing(tmp_path):
    uri = tmp_path / "t"
    ensure_table(uri, NEW)
    version = DeltaTable(str(uri)).version()
    ensure_table(uri, NEW)
    assert DeltaTable(str(uri)).version() == version and _evolutions(uri) == []


def test_a_missing_required_column_is_refused_by_name(tmp_path):
    uri = tmp_path / "t"
    _old_table(uri)
    required = pa.schema([*OLD, pa.field("count", pa.int64(), nullable=False)])
    with pytest.raises(ValueError, match=r"lacks the required columns \['count'\]"):
        ensure_table(uri, required)
    assert [f.name for f in DeltaTable(str(uri)).schema().fields] == ["id"]


def test_a_writer_that_opened_the_table_before_another_evolved_it_adds_nothing(tmp_path):
    uri = tmp_path / "t"
    _old_table(uri)
    first, second = DeltaTable(str(uri)), DeltaTable(str(uri))  # both saw the old schema
    assert add_missing_columns(first, NEW, "first") == ["note"]
    assert add_missing_columns(second, NEW, "second") == []  # its commit conflicts: looks again
    [evolved] = _evolutions(uri)
    assert evolved["policyloop.writer"] == "first"
