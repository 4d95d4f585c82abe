"""The Prometheus configuration and alert rules in deploy/ are valid for promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.monitoring_stack import require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture
def promtool() -> str:
    """promtool's path: a skip on a developer's machine, a failure under CI and make test."""
    return require_binary("promtool")


def test_alert_rules_pass_promtool_check_rules(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", str(DEPLOY / "rules.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_scrape_config_passes_promtool_check_config(promtool, tmp_path):
    # The config names the rules file by its in-container path; check it beside a copy.
    config = (
        (DEPLOY / "prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/rules.yml", str(DEPLOY / "rules.yml"))
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(config)
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_as_rules_test_yml_expects(promtool):
    """Rollout regression, refused versions, lost or quarantined SDK events, spool write
    failures and sessionizer state caps: each alert fires when it should and only then."""
    result = subprocess.run(
        [promtool, "test", "rules", str(DEPLOY / "rules_test.yml")],
        capture_output=True,
        text=True,
        cwd=DEPLOY,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
