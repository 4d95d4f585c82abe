"""`policyloop simulate --policy NAME --workers K` serves a registry version in every worker."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from services.cli.main import cli
from services.registry import Registry
from tests.rollout.factory import publish
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration


def test_every_worker_serves_the_current_version_and_logs_its_true_propensities(kafka, tmp_path):
    registry = Registry(str(tmp_path / "registry"), "cartpole")
    version = publish(registry, promote=True, logits=[2.0, 0.0])  # P(push left) = 0.881
    env = {
        "POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "POLICYLOOP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "POLICYLOOP_SDK__SPOOL_DIR": str(tmp_path / "spool"),
        "POLICYLOOP_LEARNER__REGISTRY_URI": registry.uri,
    }
    result = CliRunner().invoke(
        cli,
        ["simulate", "--episodes", "6", "--policy", "cartpole", "--workers", "2", "--seed", "1"],
        env=env,
    )

    assert result.exit_code == 0, result.output
    assert "on 2 worker(s)" in result.output
    assert f"policy_version={version}: 6 episodes" in result.output
    played = int(re.search(r"\((\d+) decisions\)", result.output).group(1))
    events = [e for _, e in read_events(kafka, expected=2 * played + 6)]
    decisions = [e for e in events if e["type"] == "decision"]
    assert len(decisions) == played
    workers = {e["episode_id"].rsplit("-", 1)[0].rsplit("-", 1)[1] for e in decisions}
    assert workers == {"w0", "w1"}
    assert {e["policy_version"] for e in decisions} == {version}
    for e in decisions:
        probs = dict(zip(e["possible_actions"], e["action_probs"], strict=True))
        assert probs[0] == pytest.approx(0.8808, abs=1e-3)
        assert e["propensity"] == pytest.approx(probs[e["action"]])
