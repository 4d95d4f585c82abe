"""Importing into a timeline created before a column was added (``action_features``, table
schema version 2): the table gains the column first, and old and imported rows read back."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA
from tests.interop.conftest import run_import, table_rows

OLD_SCHEMA = pa.schema(
    [f for f in TIMELINE_SCHEMA if f.name != "action_features"], metadata=TIMELINE_SCHEMA.metadata
)
CSV = "session,pos,age,item,click,p,done\ns1,0,31,1,0,0.5,false\ns1,1,32,0,1,0.5,true\n"
MAP = [
    "--column", "episode_id=session", "--column", "step=pos", "--column", "state=age",
    "--column", "action=item", "--column", "reward=click", "--column", "propensity=p",
    "--column", "terminal=done", "--actions", "0,1",
]  # fmt: skip


def test_an_import_into_a_timeline_from_before_action_features_adds_the_column_first(
    tmp_path, table, rejects
):
    write_deltalake(str(table), OLD_SCHEMA.empty_table(), partition_by=TIMELINE_PARTITION_BY,
                    mode="append")  # fmt: skip
    source = tmp_path / "log.csv"
    source.write_text(CSV)

    result = run_import("csv", table, rejects, str(source), *MAP)

    assert result.exit_code == 0, result.output
    delta = DeltaTable(str(table))
    assert delta.schema().fields[-1].name == "action_features"
    history = delta.history()  # newest first: the import commits after the column is added
    operations = [h.get("policyloop.operation") for h in history[:2]]
    assert operations == ["import", "evolve"]
    rows = table_rows(table)
    assert [(r["episode_id"], r["step"], r["action_features"]) for r in rows] == [
        ("s1", 0, None),
        ("s1", 1, None),
    ]
