"""The gate_log Delta table: one validated row per run, read back without to_pyarrow_table."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from learner.cpe.estimate import Estimate
from learner.gate_log import (
    GateLogEntry,
    append_gate_log,
    last_logged_table_version,
    read_gate_log,
)
from schemas.tables import GATE_LOG_SCHEMA

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def _entry(**overrides) -> GateLogEntry:
    values = dict(
        run_id="run-1",
        policy_name="ranker",
        started_at=T0,
        finished_at=T0 + dt.timedelta(seconds=42),
        table_uri="/data/timeline",
        table_version=3,
        rows_used=120,
        episodes_used=40,
        algorithm="dqn_cql",
        gate_estimator="wdr",
        decision="publish",
        reasons=["WDR lower bound 1.2 exceeds logged value 1.0 by more than the margin"],
        estimates=[
            Estimate("wdr", 1.5, 1.2, 1.8, 1.5, []),
            Estimate("pdis", 1.4, 0.9, 2.0, 1.4, ["few"]),
        ],
        candidate_version="v2",
        incumbent_version="v1",
        logged_value=1.0,
        incumbent_value=1.1,
        effective_sample_size=33.0,
        max_importance_weight=4.0,
        unsupported_share=0.0,
        report_path="/reports/run-1.html",
    )
    values.update(overrides)
    return GateLogEntry(**values)


@pytest.mark.integration
def test_appended_run_reads_back_with_all_estimates(tmp_path):
    uri = str(tmp_path / "gate_log")
    append_gate_log(uri, [_entry()])
    table = read_gate_log(uri)
    assert table.schema.names == GATE_LOG_SCHEMA.names
    row = table.to_pylist()[0]
    assert row["decision"] == "publish" and row["candidate_version"] == "v2"
    assert [e["estimator"] for e in row["estimates"]] == ["wdr", "pdis"]
    assert row["estimates"][1]["warnings"] == ["few"]
    assert row["started_at"] == T0


@pytest.mark.integration
def test_each_run_appends_a_new_table_version(tmp_path):
    uri = str(tmp_path / "gate_log")
    first = append_gate_log(uri, [_entry()])
    later = T0 + dt.timedelta(hours=1)
    second = append_gate_log(
        uri,
        [
            _entry(
                run_id="run-2",
                decision="reject",
                candidate_version=None,
                started_at=later,
                finished_at=later,
            )
        ],
    )
    assert second == first + 1
    assert read_gate_log(uri)["run_id"].to_pylist() == ["run-1", "run-2"]


@pytest.mark.integration
def test_last_logged_table_version_is_that_of_the_latest_run_of_the_policy(tmp_path):
    uri = str(tmp_path / "gate_log")
    later = T0 + dt.timedelta(hours=1)
    append_gate_log(uri, [_entry(table_version=3)])
    append_gate_log(
        uri, [_entry(run_id="r2", table_version=5, started_at=later, finished_at=later)]
    )
    append_gate_log(uri, [_entry(run_id="r3", policy_name="other", table_version=9)])
    assert last_logged_table_version(uri, "ranker", "/data/timeline") == 5
    assert last_logged_table_version(uri, "ranker", "/elsewhere") is None
    assert last_logged_table_version(str(tmp_path / "missing"), "ranker", "/data/timeline") is None


@pytest.mark.integration
def test_nan_values_are_stored_as_null(tmp_path):
    uri = str(tmp_path / "gate_log")
    append_gate_log(uri, [_entry(logged_value=math.nan)])
    assert read_gate_log(uri)["logged_value"].to_pylist() == [None]


def test_unknown_decision_is_rejected_naming_the_field():
    with pytest.raises(ValueError, match=r"gate_log\.decision"):
        append_gate_log("/nonexistent", [_entry(decision="maybe")])


def test_publish_without_candidate_version_is_rejected():
    with pytest.raises(ValueError, match="candidate_version"):
        append_gate_log("/nonexistent", [_entry(candidate_version=None)])


def test_empty_reasons_are_rejected():
    with pytest.raises(ValueError, match="reasons"):
        append_gate_log("/nonexistent", [_entry(reasons=[])])
