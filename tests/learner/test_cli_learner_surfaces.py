"""``learn --force``, ``learn``'s exit status and ``registry show``'s defaults, through the CLI.

The learner runs here stop at the data check (20 decisions, fewer eval episodes than
``min_eval_episodes``), so they are recorded verdicts without any training; the registry holds
the registry tests' tiny policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from learner.gate_log import read_gate_log
from services.cli.main import cli
from services.registry import Registry
from tests.learner.conftest import bandit_rows, write_timeline
from tests.learner.test_cli_learner import _config
from tests.registry.tiny_policy import manifest, policy_bytes

pytestmark = pytest.mark.integration


def _run(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args])


@pytest.fixture
def too_little_data(tmp_path) -> Path:
    """A home whose timeline is too small to train on: every run rejects, and says so."""
    write_timeline(tmp_path / "timeline", bandit_rows(20, seed=0))
    return tmp_path


def test_learn_force_runs_again_on_a_timeline_a_plain_run_skips(too_little_data):
    config = _config(too_little_data, min_eval_episodes=50)
    first = _run(config, "learn", "--once", "--no-progress")
    assert first.exit_code == 0 and "not enough data" in first.output, first.output
    plain = _run(config, "learn", "--once", "--no-progress")
    assert plain.exit_code == 0 and plain.output.startswith("Skipped: no new data"), plain.output
    forced = _run(config, "learn", "--once", "--no-progress", "--force")
    assert forced.exit_code == 0 and "not enough data" in forced.output, forced.output
    log = read_gate_log(str(too_little_data / "gate_log"))
    assert log["decision"].to_pylist() == ["reject", "reject"]
    assert len(set(log["table_version"].to_pylist())) == 1  # the same, unchanged timeline


def test_learn_exits_1_when_the_run_fails(too_little_data):
    reports = too_little_data / "reports"
    reports.write_text("a file where the reports directory should be\n")
    config = _config(too_little_data, min_eval_episodes=50, reports_dir=str(reports))
    result = _run(config, "learn", "--once", "--no-progress")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Nothing was published: the run failed"), result.output
    assert len(read_gate_log(str(too_little_data / "gate_log"))) == 0


@pytest.fixture
def v1_current_v2_stored(tmp_path) -> tuple[Path, Registry]:
    """A registry where v1 is CURRENT and the newer v2 is only stored."""
    registry = Registry(str(tmp_path / "registry"), "test")
    registry.publish(policy_bytes(0.0), manifest())
    registry.publish(policy_bytes(2.0), manifest(), promote=False)
    assert registry.versions() == ["v1", "v2"] and registry.current() == "v1"
    return _config(tmp_path), registry


def test_registry_show_without_a_version_shows_current(v1_current_v2_stored):
    config, registry = v1_current_v2_stored
    result = _run(config, "registry", "show")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["manifest"] == registry.manifest("v1")
    assert shown["is_current"] is True and shown["integrity"] == "ok"


def test_registry_show_exits_1_on_an_altered_policy_file(v1_current_v2_stored):
    config, registry = v1_current_v2_stored
    policy_file = Path(registry.uri) / "test" / "v1" / "policy.pt"
    data = bytearray(policy_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    policy_file.write_bytes(bytes(data))
    result = _run(config, "registry", "show", "v1")
    assert result.exit_code == 1, result.output
    shown = json.loads(result.output)
    assert shown["manifest"]["version"] == "v1"
    assert "sha256" in shown["integrity"] and "altered" in shown["integrity"]
