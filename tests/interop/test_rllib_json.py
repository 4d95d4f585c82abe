"""``policyloop import rllib-json``: RLlib's offline JSON, one SampleBatch per line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tests.interop.conftest import (
    rejects_of,
    row,
    run_import,
    table_rows,
    table_version,
    without_ids,
)

S = [{"obs_0": 0.5, "obs_1": -1.0}, {"obs_0": 0.25, "obs_1": 2.0}, {"obs_0": 1.0, "obs_1": 0.0}]


def _batch(**columns: Any) -> str:
    return json.dumps({"type": "SampleBatch", **columns})


def _two_episodes(path: Path) -> Path:
    """Episode 7: steps 0-2 over two lines, terminated; episode 8: steps 0-1, truncated."""
    lines = [
        _batch(
            obs=[[0.5, -1.0], [0.25, 2.0], [0.5, -1.0]],
            new_obs=[[0.25, 2.0], [1.0, 0.0], [0.25, 2.0]],
            actions=[1, 0, 0],
            rewards=[1.0, 0.5, 2.0],
            eps_id=[7, 7, 8],
            t=[0, 1, 0],
            terminateds=[False, False, False],
            truncateds=[False, False, False],
            action_prob=[0.5, 0.25, 0.5],
        ),
        _batch(
            obs=[[1.0, 0.0], [0.25, 2.0]],
            new_obs=[[0.0, 0.0], [0.0, 0.0]],
            actions=[1, 1],
            rewards=[3.0, -1.0],
            eps_id=[7, 8],
            t=[2, 1],
            terminateds=[True, False],
            truncateds=[False, True],
            action_logp=[math.log(0.75), math.log(0.5)],
        ),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


EXPECTED = [
    row("7", 0, S[0], "1", 1.0, ordinal=0, successor=(1, S[1], "0", 0.25)),
    row("7", 1, S[1], "0", 0.5, ordinal=1, propensity=0.25, successor=(2, S[2], "1", 0.75)),
    row("7", 2, S[2], "1", 3.0, ordinal=2, propensity=0.75, end="terminal"),
    row("8", 0, S[0], "0", 2.0, ordinal=0, successor=(1, S[1], "1", 0.5)),
    row("8", 1, S[1], "1", -1.0, ordinal=1, end="truncated"),
]


def test_batches_import_to_exactly_the_expected_rows(tmp_path, table, rejects):
    source = _two_episodes(tmp_path / "out.json")
    result = run_import("rllib-json", table, rejects, str(source), "--actions", "0,1")
    assert result.exit_code == 0, result.output
    rows = table_rows(table)
    assert without_ids(rows) == EXPECTED
    assert len({r["decision_id"] for r in rows}) == 5
    assert "5 rows written" in result.output


def test_importing_the_same_file_again_adds_nothing(tmp_path, table, rejects):
    source = _two_episodes(tmp_path / "out.json")
    run_import("rllib-json", table, rejects, str(source), "--actions", "0,1")
    version = table_version(table)
    copy = tmp_path / "copy-of-out.json"
    copy.write_bytes(source.read_bytes())

    again = run_import("rllib-json", table, rejects, str(source), str(copy), "--actions", "0,1")

    assert again.exit_code == 0, again.output
    assert again.output.count("already imported") == 2
    assert table_version(table) == version
    assert len(table_rows(table)) == 5


def test_bad_rows_are_rejected_with_their_reasons_and_the_good_ones_imported(
    tmp_path, table, rejects
):
    source = tmp_path / "bad.json"
    source.write_text(
        "\n".join(
            [
                _batch(
                    obs=[[0.5, -1.0], [0.25, 2.0], [1.0, 0.0], [0.5, -1.0], [1.0, 1.0]],
                    actions=[1, 0, 1, 5, 1],
                    rewards=[1.0, 0.5, 3.0, 1.0, 1.0],
                    eps_id=[7, 7, 7, 9, 7],
                    t=[0, 1, 1, 0, 3],
                    terminateds=[False, False, False, True, False],
                    action_prob=[0.5, 0.25, 0.5, 0.5, 1.5],
                ),
                "{not json",
                _batch(
                    obs=[[1.0, 0.0]],
                    actions=[1],
                    rewards=[3.0],
                    eps_id=[7],
                    t=[2],
                    terminateds=[True],
                    action_prob=[0.75],
                ),
                _batch(
                    obs=[[1.0, 0.0]],
                    actions=[1, 0],
                    rewards=[1.0],
                    eps_id=[3],
                    t=[0],
                    action_prob=[0.5],
                ),  # columns of different lengths
            ]
        )
        + "\n"
    )
    result = run_import("rllib-json", table, rejects, str(source), "--actions", "0,1")

    assert result.exit_code == 0, result.output
    reasons = {(r.get("line"), r.get("index")): r["reason"] for r in rejects_of(rejects)}
    assert reasons == {
        (1, 2): "duplicate_step",  # a second row for episode 7 step 1
        (1, 3): "invalid:action",  # 5 is not a possible action
        (1, 4): "invalid:propensity",  # 1.5 > 1
        (2, None): "malformed",  # not JSON
        (4, None): "malformed",  # columns of different lengths
    }
    assert all(r["source"] == str(source) and r["detail"] for r in rejects_of(rejects))
    assert [(r["episode_id"], r["step"]) for r in table_rows(table)] == [
        ("7", 0),
        ("7", 1),
        ("7", 2),
    ]
    assert "5 rejected" in result.output


def test_a_file_without_propensities_is_an_error_that_says_what_to_do(tmp_path, table, rejects):
    source = tmp_path / "noprop.json"
    source.write_text(_batch(obs=[[1.0]], actions=[0], rewards=[1.0], eps_id=[1], t=[0]) + "\n")
    result = run_import("rllib-json", table, rejects, str(source), "--actions", "0,1")
    assert result.exit_code == 1
    assert "no propensities" in result.output and "--logger uniform" in result.output
    assert table_rows(table) == [] if table.exists() else True

    uniform = run_import(
        "rllib-json", table, rejects, str(source), "--actions", "0,1", "--logger", "uniform"
    )
    assert uniform.exit_code == 0, uniform.output
    (only,) = table_rows(table)
    assert (only["propensity"], only["action_probs"]) == (0.5, [0.5, 0.5])


def test_a_pickled_column_is_refused_naming_it(tmp_path, table, rejects):
    source = tmp_path / "packed.json"
    packed = "BCJNGGhAdwAAAAAAAABJgAWVKgAAAAAAAACMBWJ1aWx0aW5zlIwFcHJpbnSUk5SMBWhlbGxvlIWUUpQu"
    source.write_text(
        _batch(obs=packed, actions=[0], rewards=[1.0], eps_id=[1], t=[0], action_prob=[1.0])
    )
    result = run_import("rllib-json", table, rejects, str(source), "--actions", "0,1")
    assert result.exit_code == 1
    assert "column 'obs'" in result.output and "never unpickles" in result.output


def test_older_dones_end_episodes_as_terminal_or_at_a_time_limit_as_truncated(
    tmp_path, table, rejects
):
    source = tmp_path / "old.json"
    source.write_text(
        _batch(
            obs=[[0.5, -1.0], [0.25, 2.0], [1.0, 0.0]],
            actions=[0, 1, 1],
            rewards=[1.0, 1.0, 1.0],
            eps_id=[1, 1, 2],
            t=[0, 1, 0],
            dones=[False, True, True],
            infos=[{}, {}, {"TimeLimit.truncated": True}],
            action_prob=[0.5, 0.5, 0.5],
        )
        + "\n"
    )
    result = run_import("rllib-json", table, rejects, str(source), "--actions", "0,1")
    assert result.exit_code == 0, result.output
    ends = [(r["episode_id"], r["step"], r["terminal"], r["truncated"]) for r in table_rows(table)]
    assert ends == [("1", 0, False, False), ("1", 1, True, False), ("2", 0, False, True)]
