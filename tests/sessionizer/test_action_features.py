"""Action features logged with a decision reach its timeline row, through the real broker and
``policyloop sessionize`` writing real Delta; a timeline created before the column existed
gains it and keeps its older rows readable (null features)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from learner.data.files import pinned_files, scan
from schemas.tables import TIMELINE_PARTITION_BY, TIMELINE_SCHEMA, rows_to_table
from services.delta_tables import read_table
from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from services.sessionizer.sink import DeltaSink
from tests.learner.data.timeline_rows import episode_rows
from tests.sessionizer.workload import run_batch

pytestmark = pytest.mark.integration

FEATURES = {"0": {"color=red": 1.0, "price": 9.5}, "2": {"price": 3}}
#: The timeline as tables created before ``action_features`` have it.
OLD_SCHEMA = pa.schema(
    [f for f in TIMELINE_SCHEMA if f.name != "action_features"], metadata=TIMELINE_SCHEMA.metadata
)


def _log(kafka: KafkaSettings, spool: Path) -> None:
    """Episode ``feat``: two decisions with action features; episode ``plain``: one without."""
    with DecisionLogger(kafka=kafka, settings=SdkSettings(spool_dir=str(spool))) as logger:
        for step in range(2):
            logger.decision(
                "feat", step, {"x": 1.0}, 1, [0, 1, 2], 0.25, "v1", action_features=FEATURES
            )
        logger.end_episode("feat", True)
        logger.decision("plain", 0, {"x": 1.0}, 1, [0, 1, 2], 0.25, "v1")
        logger.end_episode("plain", True)
        logger.flush(30)


def _rows(table_uri: Path) -> dict[tuple[str, int], dict]:
    rows = read_table(DeltaTable(str(table_uri)), TIMELINE_SCHEMA).to_pylist()
    return {(r["episode_id"], r["step"]): r for r in rows}


def _features(row: dict) -> list[dict[str, float]] | None:
    value = row["action_features"]
    return None if value is None else [dict(m) for m in value]


ALIGNED = [{"color=red": 1.0, "price": 9.5}, {}, {"price": 3.0}]  # for possible actions 0, 1, 2


def test_logged_action_features_reach_their_timeline_rows_aligned_with_possible_actions(
    kafka, tmp_path
):
    _log(kafka, tmp_path / "spool")
    done = run_batch(kafka, tmp_path / "timeline")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(tmp_path / "timeline")
    assert rows[("feat", 0)]["possible_actions"] == ["0", "1", "2"]
    assert _features(rows[("feat", 0)]) == _features(rows[("feat", 1)]) == ALIGNED
    assert rows[("plain", 0)]["action_features"] is None


def _old_table(uri: Path) -> list[dict]:
    """A timeline written with the schema from before ``action_features``; its rows."""
    rows = episode_rows("old", [{"x": 0.0}, {"x": 1.0}], ["0", "1"], [1.0, 0.0])
    table = rows_to_table(rows, OLD_SCHEMA)
    write_deltalake(str(uri), table, partition_by=TIMELINE_PARTITION_BY, mode="append")
    assert "action_features" not in {f.name for f in DeltaTable(str(uri)).schema().fields}
    return rows


def test_a_timeline_from_before_action_features_gains_the_column_and_keeps_its_rows(
    kafka, tmp_path
):
    uri = tmp_path / "timeline"
    _old_table(uri)
    _log(kafka, tmp_path / "spool")
    done = run_batch(kafka, uri)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(uri)
    assert set(rows) == {("old", 0), ("old", 1), ("feat", 0), ("feat", 1), ("plain", 0)}
    assert rows[("old", 0)]["action_features"] is None and rows[("old", 1)]["reward"] == 0.0
    assert _features(rows[("feat", 1)]) == ALIGNED
    table = DeltaTable(str(uri))
    evolved = [h for h in table.history() if h.get("policyloop.operation") == "evolve"]
    assert [h["policyloop.columns"] for h in evolved] == ["action_features"]
    # the learner's reader (files of a pinned version, scanned by columns) reads old and new
    files = pinned_files(uri, None, None)
    scanned = [b.batch for b in scan(files, ["episode_id", "step", "reward"], 100)]
    assert sum(b.num_rows for b in scanned) == 5


def test_opening_an_evolved_timeline_again_adds_nothing(tmp_path):
    uri = tmp_path / "timeline"
    _old_table(uri)
    DeltaSink(str(uri), "g", "t")
    version = DeltaTable(str(uri)).version()
    DeltaSink(str(uri), "g", "t")
    assert DeltaTable(str(uri)).version() == version
    assert DeltaTable(str(uri)).schema().fields[-1].name == "action_features"
