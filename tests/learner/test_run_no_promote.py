"""``promote=False``: a version the gate publishes is stored, logged and announced, and CURRENT
stays where it was, so a staged rollout can take it from there."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from learner.gate_log import read_gate_log
from learner.run import run_once
from services.cli.main import cli
from services.registry import Registry
from tests.learner.conftest import bandit_rows, fast_settings, read_policy_updates, write_timeline
from tests.learner.test_cli_learner import _config

pytestmark = pytest.mark.integration


def test_unpromoted_publication_is_stored_logged_and_announced_but_current_is_kept(tmp_path, kafka):
    write_timeline(tmp_path / "timeline", bandit_rows(1500, seed=0))
    settings = fast_settings(tmp_path, promote=False)
    result = run_once(settings, str(tmp_path / "timeline"), kafka=kafka)
    assert result.status == "published", result.sentence
    assert result.published_version == "v1" and result.promoted is False
    registry = Registry(settings.registry_uri, settings.policy_name)
    assert registry.versions() == ["v1"] and registry.current() is None
    assert registry.verify("v1")["gate"]["decision"] == "publish"
    row = read_gate_log(settings.gate_log_uri).to_pylist()[0]
    assert row["decision"] == "publish" and row["candidate_version"] == "v1"
    assert "not promoted" in result.sentence
    messages = read_policy_updates(kafka)
    assert [(m["policy"], m["version"], m["promoted"]) for m in messages] == [("test", "v1", False)]


def test_learn_no_promote_flag_leaves_current_unset(tmp_path):
    write_timeline(tmp_path / "timeline", bandit_rows(1500, seed=0))
    config = _config(tmp_path)
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "learn", "--once", "--no-progress", "--no-promote"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "Published v1" in result.output and "not promoted" in result.output
    registry = Registry(str(tmp_path / "registry"), "test")
    assert registry.versions() == ["v1"] and registry.current() is None
