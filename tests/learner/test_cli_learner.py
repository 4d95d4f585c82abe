"""``policyloop learn``, ``cpe`` and ``registry`` through the real command line parser."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from learner.cli import parse_duration
from learner.registry import Registry
from services.cli.main import cli
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
def test_cpe_of_a_registry_version_prints_every_estimator(learned):
    _, config, _ = learned
    result = _invoke(config, "cpe", "--policy", "v1")
    assert result.exit_code == 0, result.output
    for name in ("ips", "snips", "dm", "dr", "sndr", "switch_dr", "logged"):
        assert name in result.output
    assert "effective sample size" in result.output


@pytest.mark.integration
def test_cpe_of_external_target_probs_as_json(learned, tmp_path):
    _, config, _ = learned
    rows = bandit_rows(1500, seed=0)
    # an external policy: always action "1" with probability 0.9
    table = pa.table(
        {
            "decision_id": [r["decision_id"] for r in rows],
            "action_probs": [[0.1, 0.9] for _ in rows],
        }
    )
    path = tmp_path / "probs.parquet"
    pq.write_table(table, path)
    result = _invoke(config, "cpe", "--target-probs", str(path), "--all-data", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["scope"].startswith("all decisions") and out["rows"] == 1500
    # true value: 0.9 * P(x > 0) + 0.1 * P(x <= 0) = 0.5
    assert out["estimates"]["ips"]["ci_low"] < 0.5 < out["estimates"]["ips"]["ci_high"]


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
    write_deltalake(
        uri,
        pa.table(
            {
                "decision_id": [r["decision_id"] for r in rows],
                "action_probs": [[0.5, 0.5] for _ in rows],
            }
        ),
    )
    result = _invoke(config, "cpe", "--target-probs", uri, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    # the uniform policy is the logger itself: every importance weight is 1
    assert out["diagnostics"]["max_importance_weight"] == pytest.approx(1.0)
    assert out["estimates"]["ips"]["value"] == pytest.approx(out["logged_value"]["value"])
