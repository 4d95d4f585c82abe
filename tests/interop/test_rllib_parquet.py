"""``policyloop import rllib-parquet``: RLlib's tabular episodes, one row per step."""

from __future__ import annotations

from pathlib import Path

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

S = [{"obs_0": 0.5, "obs_1": -1.0}, {"obs_0": 0.25, "obs_1": 2.0}, {"obs_0": 1.0, "obs_1": 0.0}]


def _episodes(path: Path, **override: list) -> Path:
    columns = {
        "eps_id": ["a", "a", "b", "a"],
        "t": [0, 1, 0, 2],
        "obs": [[0.5, -1.0], [0.25, 2.0], [1.0, 0.0], [1.0, 0.0]],
        "actions": [0, 1, 1, 0],
        "rewards": [1.0, 2.0, 5.0, 3.0],
        "new_obs": [[0.25, 2.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        "terminateds": [False, False, True, False],
        "truncateds": [False, False, False, True],
        "action_prob": [0.5, 0.5, 0.25, 0.5],
    }
    columns.update(override)
    pq.write_table(pa.table(columns), path)
    return path


EXPECTED = [
    row("a", 0, S[0], "0", 1.0, ordinal=0, successor=(1, S[1], "1", 0.5)),
    row("a", 1, S[1], "1", 2.0, ordinal=1, successor=(2, S[2], "0", 0.5)),
    row("a", 2, S[2], "0", 3.0, ordinal=2, end="truncated"),
    row("b", 0, S[2], "1", 5.0, ordinal=0, propensity=0.25, end="terminal"),
]


def test_episodes_import_to_exactly_the_expected_rows(tmp_path, table, rejects):
    source = _episodes(tmp_path / "episodes.parquet")
    result = run_import("rllib-parquet", table, rejects, str(source), "--actions", "0,1")
    assert result.exit_code == 0, result.output
    assert without_ids(table_rows(table)) == EXPECTED


def test_importing_the_same_file_again_adds_nothing(tmp_path, table, rejects):
    source = _episodes(tmp_path / "episodes.parquet")
    run_import("rllib-parquet", table, rejects, str(source), "--actions", "0,1")
    version = table_version(table)
    again = run_import("rllib-parquet", table, rejects, str(source), "--actions", "0,1")
    assert "already imported" in again.output
    assert table_version(table) == version


def test_bad_rows_are_rejected_with_their_reasons_and_the_good_ones_imported(
    tmp_path, table, rejects
):
    source = _episodes(
        tmp_path / "bad.parquet",
        obs=[[0.5, -1.0], [0.25, float("nan")], [1.0, 0.0], [1.0, 0.0]],
        action_prob=[0.5, 0.5, 0.0, 0.5],
    )
    result = run_import("rllib-parquet", table, rejects, str(source), "--actions", "0,1")
    assert result.exit_code == 0, result.output
    assert {(r["row"], r["reason"]) for r in rejects_of(rejects)} == {
        (2, "invalid:state"),  # NaN observation
        (3, "invalid:propensity"),  # 0 is not a propensity
    }
    assert [(r["episode_id"], r["step"], r["time_diff"]) for r in table_rows(table)] == [
        ("a", 0, 2),  # the episode goes on without the refused step, as it does live
        ("a", 2, None),
    ]


def test_another_column_name_is_mapped_with_a_flag(tmp_path, table, rejects):
    original = pq.read_table(_episodes(tmp_path / "episodes.parquet"))
    source = tmp_path / "renamed.parquet"
    pq.write_table(original.rename_columns(["session", *original.column_names[1:]]), source)
    result = run_import(
        "rllib-parquet",
        table,
        rejects,
        str(source),
        "--actions",
        "0,1",
        "--column",
        "episode_id=session",
    )
    assert result.exit_code == 0, result.output
    assert without_ids(table_rows(table)) == EXPECTED
