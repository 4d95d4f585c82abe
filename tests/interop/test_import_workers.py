"""A large file is converted by several processes and still committed once, as one would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.cli.main import cli
from tests.interop.conftest import TS, rejects_of, table_rows, table_version

pytestmark = pytest.mark.integration

PARALLEL = {"POLICYLOOP_INTEROP__WORKERS": "2", "POLICYLOOP_INTEROP__PARALLEL_MIN_BYTES": "0"}


def _import(source: Path, table: Path, rejects: Path, env: dict[str, str]):
    argv = ["import", "rllib-json", str(source), "--table-uri", str(table), "--rejects-dir",
            str(rejects), "--actions", "0,1", "--ts", TS, "--episode-prefix", "p-"]  # fmt: skip
    return CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)


def _source(path: Path) -> Path:
    """300 episodes of 1-6 steps over 40 lines, with bad rows and a bad line."""
    steps = []
    for e in range(300):
        for t in range(e % 6 + 1):
            steps.append((e, t, t == e % 6))
    lines = []
    for start in range(0, len(steps), len(steps) // 40 + 1):
        chunk = steps[start : start + len(steps) // 40 + 1]
        lines.append(
            json.dumps(
                {
                    "obs": [[e / 10, t / 10] for e, t, _ in chunk],
                    "actions": [(e + t) % 2 for e, t, _ in chunk],
                    "rewards": [1.0] * len(chunk),
                    "eps_id": [e for e, _, _ in chunk],
                    "t": [t for _, t, _ in chunk],
                    "terminateds": [end and e % 4 != 0 for e, _, end in chunk],
                    "action_prob": [0.0 if (e * 7 + t) % 23 == 0 else 0.5 for e, t, _ in chunk],
                }
            )
        )
    lines.insert(5, "{broken")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_two_workers_write_the_same_rows_and_rejects_as_one_process(tmp_path):
    source = _source(tmp_path / "episodes.json")
    serial = _import(source, tmp_path / "serial", tmp_path / "serial-rejects", {})
    parallel = _import(source, tmp_path / "parallel", tmp_path / "parallel-rejects", PARALLEL)

    assert serial.exit_code == 0 and parallel.exit_code == 0, serial.output + parallel.output
    one, two = table_rows(tmp_path / "serial"), table_rows(tmp_path / "parallel")
    assert len(one) > 1000
    assert two == one
    assert table_version(tmp_path / "parallel") == 1  # one commit for both workers' files
    key = lambda r: (r.get("line"), r.get("index") or -1)  # noqa: E731
    assert sorted(rejects_of(tmp_path / "parallel-rejects"), key=key) == sorted(
        rejects_of(tmp_path / "serial-rejects"), key=key
    )
    assert len(rejects_of(tmp_path / "serial-rejects")) > 10


def test_a_failing_worker_leaves_no_rows_and_no_files(tmp_path):
    source = _source(tmp_path / "episodes.json")
    with source.open("a") as fh:
        fh.write(json.dumps({"obs": "BCJNGGhAdwAAAAAA", "actions": [0], "rewards": [1.0],
                             "eps_id": [9999], "t": [0], "action_prob": [0.5]}) + "\n")  # fmt: skip
    table = tmp_path / "timeline"
    result = _import(source, table, tmp_path / "rejects", PARALLEL)

    assert result.exit_code == 1
    assert "never unpickles" in result.output
    assert table_version(table) == 0
    assert list(table.rglob("*.parquet")) == []
    assert list((tmp_path / "rejects").glob("*")) == []


def test_two_workers_import_a_csv_with_bad_cells_as_one_process_does(tmp_path):
    lines = ["session,t,x,action,reward,p,done"]
    for e in range(200):
        for t in range(e % 5 + 1):
            x = "oops" if (e * 3 + t) % 31 == 0 else str(e + t / 10)
            session = "" if (e, t) == (17, 0) else f"s{e}"  # a row without its episode
            lines.append(f"{session},{t},{x},{(e + t) % 2},1.0,0.5,{str(t == e % 5).lower()}")
    source = tmp_path / "log.csv"
    source.write_text("\n".join(lines) + "\n")
    roles = ["episode_id=session", "step=t", "state=x", "action=action", "reward=reward",
             "propensity=p", "terminal=done"]  # fmt: skip
    flags = [f for role in roles for f in ("--column", role)] + ["--actions", "0,1", "--ts", TS]
    runs = {}
    for name, env in (("serial", {}), ("parallel", PARALLEL)):
        argv = ["import", "csv", str(source), "--table-uri", str(tmp_path / name),
                "--rejects-dir", str(tmp_path / f"{name}-rejects"), *flags]  # fmt: skip
        result = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        rejected = sorted(rejects_of(tmp_path / f"{name}-rejects"), key=lambda r: r["row"])
        runs[name] = (table_rows(tmp_path / name), rejected)
    assert runs["parallel"] == runs["serial"]
    assert {r["reason"] for r in runs["serial"][1]} == {"invalid:state", "invalid:episode_id"}
