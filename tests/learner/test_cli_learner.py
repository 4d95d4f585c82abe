"""``policyloop learn``, ``cpe`` and ``registry`` through the real command line parser."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from services.cli.learn_cmd import parse_duration
from services.cli.main import cli
from services.registry import Registry
from tests.learner.conftest import bandit_rows, fast_settings, write_timeline

REPO_ROOT = Path(__file__).resolve().parents[2]


def _config(home: Path, **learner: object) -> Path:
    """A TOML config with the test's learner settings (small models, paths under ``home``)."""
    settings = fast_settings(home, announce=False, **learner).model_dump(mode="json")
    lines = ["[learner]"]
    nested = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            nested[key] = value
        elif value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    for section, values in nested.items():
        lines.append(f"[learner.{section}]")
        for key, value in values.items():
            if isinstance(value, dict):
                continue  # nested sub-sections keep their defaults unless given below
            if value is not None:
                lines.append(f"{key} = {json.dumps(value)}")
    lines.append("[learner.cpe.fqe]")
    for key, value in settings["cpe"]["fqe"].items():
        lines.append(f"{key} = {json.dumps(value)}")
    lines.append("[tables]")
    lines.append(f"timeline_uri = {json.dumps(str(home / 'timeline'))}")
    path = home / "policyloop.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _invoke(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A home with a timeline and one ``learn --once`` that published v1."""
    home = tmp_path_factory.mktemp("cli")
    write_timeline(home / "timeline", bandit_rows(1500, seed=0))
    config = _config(home)
    result = _invoke(config, "learn", "--once", "--no-progress")
    return home, config, result


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("2d", 172800)]
)
def test_durations_are_parsed_with_their_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1x", "m", "0s", "1h 30"])
def test_bad_durations_name_the_rule(text):
    with pytest.raises(ValueError, match="unit s, m, h or d"):
        parse_duration(text)


def test_learn_needs_exactly_one_of_once_or_every(tmp_path):
    result = CliRunner().invoke(cli, ["learn"])
    assert result.exit_code == 2 and "exactly one of --once or --every" in result.output


def test_learn_rejects_a_bad_every(tmp_path):
    result = CliRunner().invoke(cli, ["learn", "--every", "soon"])
    assert result.exit_code == 2 and "unit s, m, h or d" in result.output


@pytest.mark.integration
def test_learn_once_publishes_and_prints_report_and_metrics(learned):
    home, _, result = learned
    assert result.exit_code == 0, result.output
    assert "Published v1" in result.output
    assert f"report: {home / 'reports'}" in result.output
    assert "metrics:" in result.output


@pytest.mark.integration
def test_registry_list_marks_current(learned):
    _, config, _ = learned
    result = _invoke(config, "registry", "list", "--verify")
    assert result.exit_code == 0, result.output
    assert "v1" in result.output and "CURRENT" in result.output and "yes" in result.output


@pytest.mark.integration
def test_registry_show_prints_the_manifest(learned):
    _, config, _ = learned
    result = _invoke(config, "registry", "show", "v1")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["manifest"]["version"] == "v1" and shown["integrity"] == "ok"


@pytest.mark.integration
def test_cpe_of_a_registry_version_prints_a_row_per_estimator_with_its_value(learned):
    _, config, _ = learned
    result = _invoke(config, "cpe", "--policy", "v1")
    assert result.exit_code == 0, result.output
    as_json = json.loads(_invoke(config, "cpe", "--policy", "v1", "--json").output)
    rows = _table_rows(result.output)
    estimates = {**as_json["estimates"], "logged": as_json["logged_value"]}
    assert set(rows) == set(estimates) >= {"ips", "snips", "dm", "dr", "sndr", "switch_dr"}
    for name, estimate in estimates.items():
        low, high = estimate["ci_low"], estimate["ci_high"]
        assert rows[name][:2] == [f"{estimate['value']:,.4g}", f"[{low:,.4g}, {high:,.4g}]"], name
    assert "effective sample size" in result.output


def _table_rows(output: str) -> dict[str, list[str]]:
    """The cells after the first of each body row of the printed table, by that first cell."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0] and cells[0] != "estimator":
            assert cells[0] not in rows, f"two rows for {cells[0]!r}"
            rows[cells[0]] = cells[1:]
    return rows


TARGET_RIGHT = 0.85  # what the external policy puts on the action its decision rewards


def _target_probs(rows: list[dict], order: list[int] | None = None) -> pa.Table:
    """An external policy's probabilities, decision by decision: TARGET_RIGHT on the action that
    pays in that decision ("1" iff x > 0), the rest on the other. On any set of decisions it
    is worth exactly TARGET_RIGHT; the uniform logger is worth 0.5, and so is this policy's
    file joined to the wrong decisions. ``order`` writes the rows in that order."""
    probs = []
    for row in rows:
        p_one = TARGET_RIGHT if row["state"]["x"] > 0 else 1 - TARGET_RIGHT
        probs.append([1 - p_one, p_one])
    order = range(len(rows)) if order is None else order
    return pa.table(
        {
            "decision_id": [rows[i]["decision_id"] for i in order],
            "action_probs": [probs[i] for i in order],
        }
    )


def _cpe_json(config: Path, probs: str, *args: str) -> dict:
    result = _invoke(config, "cpe", "--target-probs", probs, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.integration
def test_cpe_of_external_target_probs_finds_their_true_value_not_the_loggers(learned, tmp_path):
    _, config, _ = learned
    path = tmp_path / "probs.parquet"
    pq.write_table(_target_probs(bandit_rows(1500, seed=0)), path)
    out = _cpe_json(config, str(path), "--all-data")
    assert out["scope"].startswith("all decisions") and out["rows"] == 1500
    for name in ("ips", "snips", "dr"):
        estimate = out["estimates"][name]
        assert estimate["ci_low"] < TARGET_RIGHT < estimate["ci_high"], name
        assert estimate["value"] > out["logged_value"]["ci_high"] + 0.2, name
    assert out["logged_value"]["ci_low"] < 0.5 < out["logged_value"]["ci_high"]


@pytest.mark.integration
def test_cpe_of_target_probs_does_not_depend_on_the_order_of_the_files_rows(learned, tmp_path):
    _, config, _ = learned
    rows = bandit_rows(1500, seed=0)
    shuffled = np.random.default_rng(7).permutation(len(rows)).tolist()
    pq.write_table(_target_probs(rows), tmp_path / "in_order.parquet")
    pq.write_table(_target_probs(rows, shuffled), tmp_path / "shuffled.parquet")
    in_order = _cpe_json(config, str(tmp_path / "in_order.parquet"))
    reordered = _cpe_json(config, str(tmp_path / "shuffled.parquet"))
    assert in_order["estimates"]["ips"]["value"] > 0.75  # joined, not ignored
    for key in ("estimates", "logged_value", "diagnostics", "rows"):
        assert reordered[key] == in_order[key], key


@pytest.mark.integration
def test_cpe_refuses_target_probs_missing_decisions(learned, tmp_path):
    _, config, _ = learned
    path = tmp_path / "few.parquet"
    pq.write_table(pa.table({"decision_id": ["b0/0"], "action_probs": [[0.5, 0.5]]}), path)
    result = CliRunner().invoke(cli, ["--config", str(config), "cpe", "--target-probs", str(path)])
    assert result.exit_code == 1 and "decision_id" in result.output


def test_cpe_needs_exactly_one_target():
    result = CliRunner().invoke(cli, ["cpe"])
    assert result.exit_code == 2 and "exactly one of --policy" in result.output


@pytest.mark.integration
def test_learn_once_again_without_new_data_skips(learned):
    _, config, _ = learned
    result = _invoke(config, "learn", "--once", "--no-progress")
    assert result.exit_code == 0 and "Skipped: no new data" in result.output


@pytest.mark.integration
def test_promote_and_rollback_move_current(learned):
    home, config, _ = learned
    settings = fast_settings(home)
    registry = Registry(settings.registry_uri, settings.policy_name)
    data, manifest = registry.load_bytes("v1")
    keep = {k: v for k, v in manifest.items() if k not in ("version", "sha256", "created_at")}
    registry.publish(data, keep, promote=False)  # v2, stored only
    promoted = _invoke(config, "registry", "promote", "v2")
    assert promoted.exit_code == 0 and "v1 -> v2" in promoted.output
    rolled = _invoke(config, "registry", "rollback")
    assert rolled.exit_code == 0 and "v2 -> v1" in rolled.output
    assert registry.current() == "v1"


@pytest.mark.integration
def test_registry_show_of_unknown_version_fails_clearly(learned):
    _, config, _ = learned
    result = CliRunner().invoke(cli, ["--config", str(config), "registry", "show", "v99"])
    assert result.exit_code == 1 and "no version 'v99'" in result.output


@pytest.mark.integration
def test_learn_every_runs_then_stops_cleanly_on_ctrl_c(tmp_path):
    write_timeline(tmp_path / "timeline", bandit_rows(300, seed=0))
    config = _config(tmp_path, min_eval_episodes=1)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "--config",
            str(config),
            "learn",
            "--every",
            "1h",
            "--no-progress",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            lines.append(line)
            if line.startswith("next run in") or not line:
                break
        assert any(line.startswith("next run in") for line in lines), "".join(lines)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    assert "stopped" in out.decode()


@pytest.mark.integration
def test_cpe_reads_target_probs_from_a_delta_table(learned, tmp_path):
    from deltalake import write_deltalake

    _, config, _ = learned
    rows = bandit_rows(1500, seed=0)
    uri = str(tmp_path / "probs_table")
    shuffled = np.random.default_rng(3).permutation(len(rows)).tolist()
    write_deltalake(uri, _target_probs(rows, shuffled))
    out = _cpe_json(config, uri)
    assert out["scope"].startswith("the eval split") and out["rows"] < 1500
    estimate = out["estimates"]["ips"]
    assert estimate["ci_low"] < TARGET_RIGHT < estimate["ci_high"]
    assert estimate["value"] > out["logged_value"]["ci_high"] + 0.2
