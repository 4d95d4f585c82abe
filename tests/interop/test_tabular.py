"""``policyloop import csv|parquet``: any table, with a column map as flags or a TOML file."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tests.interop.conftest import (
    rejects_of,
    row,
    run_import,
    table_rows,
    table_version,
    without_ids,
)

CSV = """session,pos,age,hour,item,click,p,done,time
s1,0,31,9,1,0,0.5,false,2024-03-05T10:00:00Z
s1,1,31,10,0,1,0.25,true,2024-03-05T10:00:05Z
s2,0,40,,1,1,0.5,true,2024-03-05T11:00:00Z
"""
MAP = [
    "--column", "episode_id=session", "--column", "step=pos", "--column", "state=age,hour",
    "--column", "action=item", "--column", "reward=click", "--column", "propensity=p",
    "--column", "terminal=done", "--column", "ts=time", "--actions", "0,1",
]  # fmt: skip
T0 = 1_709_632_800_000  # 2024-03-05T10:00:00Z


def _expected() -> list[dict]:
    day = {"ds": "2024-03-05"}
    return [
        row("s1", 0, {"age": 31.0, "hour": 9.0}, "1", 0.0, ordinal=0, ts=T0,
            successor=(1, {"age": 31.0, "hour": 10.0}, "0", 0.25), **day),
        row("s1", 1, {"age": 31.0, "hour": 10.0}, "0", 1.0, ordinal=1, ts=T0 + 5000,
            propensity=0.25, end="terminal", **day),
        row("s2", 0, {"age": 40.0}, "1", 1.0, ordinal=0, ts=T0 + 3_600_000, end="terminal", **day),
    ]  # fmt: skip


def test_csv_with_a_column_map_imports_to_exactly_the_expected_rows(tmp_path, table, rejects):
    source = tmp_path / "log.csv"
    source.write_text(CSV)
    result = run_import("csv", table, rejects, str(source), *MAP)
    assert result.exit_code == 0, result.output
    assert without_ids(table_rows(table)) == _expected()


def test_a_toml_column_map_works_like_the_flags(tmp_path, table, rejects):
    source = tmp_path / "log.csv"
    source.write_text(CSV)
    columns = tmp_path / "map.toml"
    columns.write_text(
        '[columns]\nepisode_id = "session"\nstep = "pos"\nstate = ["age", "hour"]\n'
        'action = "item"\nreward = "click"\npropensity = "p"\nterminal = "done"\nts = "time"\n'
    )
    result = run_import("csv", table, rejects, str(source), "--columns", str(columns),
                        "--actions", "0,1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert without_ids(table_rows(table)) == _expected()


def test_parquet_rows_without_episodes_are_one_step_episodes(tmp_path, table, rejects):
    source = tmp_path / "bandit.parquet"
    pq.write_table(
        pa.table({"x": [1.0, 2.0], "arm": ["a", "b"], "r": [0.0, 1.0], "p": [0.5, 0.5],
                  "shown": [["a", "b"], ["a", "b"]]}),
        source,
    )  # fmt: skip
    result = run_import(
        "parquet", table, rejects, str(source), "--column", "state=x", "--column", "action=arm",
        "--column", "reward=r", "--column", "propensity=p", "--column", "possible_actions=shown",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = sorted(table_rows(table), key=lambda r: int(r["episode_id"].rsplit("-", 1)[1]))
    assert [(r["state"], r["action"], r["terminal"], r["step"]) for r in rows] == [
        ({"x": 1.0}, "a", True, 0),
        ({"x": 2.0}, "b", True, 0),
    ]
    assert all(r["possible_actions"] == ["a", "b"] for r in rows)
    assert len({r["episode_id"] for r in rows}) == 2


def test_importing_the_same_file_again_adds_nothing(tmp_path, table, rejects):
    source = tmp_path / "log.csv"
    source.write_text(CSV)
    run_import("csv", table, rejects, str(source), *MAP)
    version = table_version(table)
    again = run_import("csv", table, rejects, str(source), *MAP)
    assert "already imported" in again.output
    assert table_version(table) == version


def test_bad_cells_reject_their_rows_with_reasons_and_the_good_ones_import(
    tmp_path, table, rejects
):
    source = tmp_path / "bad.csv"
    source.write_text(
        CSV
        + "s3,0,abc,9,1,0,0.5,true,2024-03-05T12:00:00Z\n"  # row 4: age is not a number
        + "s4,0,20,9,1,0,0.5\n"  # line 6: too few cells
        + "s5,0,20,9,1,0,2.0,true,2024-03-05T12:00:00Z\n"  # row 5: propensity 2
        + "s6,x,20,9,1,0,0.5,true,2024-03-05T12:00:00Z\n"  # row 6: step is not an integer
    )
    result = run_import("csv", table, rejects, str(source), *MAP)
    assert result.exit_code == 0, result.output
    found = {(r.get("row") or -r["line"], r["reason"]) for r in rejects_of(rejects)}
    assert found == {
        (4, "invalid:state"),
        (-6, "malformed"),
        (5, "invalid:propensity"),
        (6, "invalid:step"),
    }
    assert without_ids(table_rows(table)) == _expected()


def test_a_column_missing_from_the_file_is_an_error_naming_it(tmp_path, table, rejects):
    source = tmp_path / "log.csv"
    source.write_text(CSV)
    result = run_import("csv", table, rejects, str(source), *MAP, "--column", "reward=clicks")
    assert result.exit_code == 1
    assert "no column 'clicks' (mapped to reward)" in result.output


def test_without_a_propensity_column_the_import_says_to_log_them_or_name_the_logger(
    tmp_path, table, rejects
):
    source = tmp_path / "log.csv"
    source.write_text(CSV)
    at = MAP.index("propensity=p")
    no_propensity = MAP[: at - 1] + MAP[at + 1 :]
    refused = run_import("csv", table, rejects, str(source), *no_propensity)
    assert refused.exit_code == 1
    assert "no propensities" in refused.output and "--logger" in refused.output

    logged = run_import("csv", table, rejects, str(source), *no_propensity,
                        "--logger", "deterministic")  # fmt: skip
    assert logged.exit_code == 0, logged.output
    rows = table_rows(table)
    assert [(r["action"], r["propensity"], r["action_probs"]) for r in rows] == [
        ("1", 1.0, [0.0, 1.0]),
        ("0", 1.0, [1.0, 0.0]),
        ("1", 1.0, [0.0, 1.0]),
    ]
