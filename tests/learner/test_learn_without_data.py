"""`policyloop learn --once` with nothing (or too little) to learn from says why and what to do."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from services.cli.main import cli
from tests.learner.conftest import bandit_rows, write_timeline
from tests.learner.test_cli_learner import _config


def _learn(home: Path):
    return CliRunner().invoke(
        cli, ["--config", str(_config(home)), "learn", "--once"], catch_exceptions=False
    )


def test_learn_without_a_timeline_names_the_table_and_says_to_run_the_sessionizer(tmp_path):
    result = _learn(tmp_path)
    assert result.exit_code == 0, result.output
    assert f"no timeline table at {tmp_path / 'timeline'} (0 rows)" in result.output
    assert "Run `policyloop sessionize` first" in result.output
    assert "reward window" in result.output
    assert not (tmp_path / "registry" / "test" / "CURRENT").exists()


def test_learn_on_a_too_small_timeline_gives_the_row_count_and_the_likely_cause(tmp_path):
    write_timeline(tmp_path / "timeline", bandit_rows(7, seed=0))
    result = _learn(tmp_path)
    assert result.exit_code == 0, result.output
    assert f"not enough data in {tmp_path / 'timeline'} at version 0 (7 rows, 7 episodes" in (
        result.output
    )
    assert "min_eval_episodes" in result.output
    assert "Run `policyloop sessionize` first" in result.output
    assert not (tmp_path / "registry" / "test" / "CURRENT").exists()
