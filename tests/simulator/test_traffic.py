"""`policyloop simulate`: worker processes play episodes and log every one through the SDK."""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner

from services.cli.main import cli
from services.simulator.environments import EnvironmentRefused
from services.simulator.recommendation_env import ENV_ID
from services.simulator.traffic import FleetConnections, run_fleet
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration


def _settings(kafka, tmp_path) -> FleetConnections:
    return FleetConnections(
        kafka=kafka,
        sdk={"spool_dir": str(tmp_path / "spool"), "linger_ms": 5},
        registry_uri=str(tmp_path / "registry"),
    )


def test_two_worker_processes_log_every_decision_once_with_distinct_episode_ids(kafka, tmp_path):
    run = run_fleet(_settings(kafka, tmp_path), ENV_ID, 30, "uniform", workers=2, run_id="r1")

    events = [e for _, e in read_events(kafka, expected=3 * 30)]
    decisions = [e for e in events if e["type"] == "decision"]
    assert run.workers == 2 and len(run.stats.returns) == 30
    assert len(decisions) == run.decisions == 30
    assert len({e["event_id"] for e in events}) == len(events)
    by_worker = Counter(e["episode_id"].rsplit("-", 1)[0] for e in decisions)
    assert by_worker == {"r1-w0": 15, "r1-w1": 15}
    assert {e["policy_version"] for e in decisions} == {"uniform"}


def test_simulate_command_prints_episodes_and_mean_return_by_policy_version(kafka, tmp_path):
    env = {
        "POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "POLICYLOOP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "POLICYLOOP_SDK__SPOOL_DIR": str(tmp_path / "spool"),
    }
    result = CliRunner().invoke(
        cli, ["simulate", "--env", "CartPole-v1", "--episodes", "5", "--seed", "3"], env=env
    )

    assert result.exit_code == 0, result.output
    assert "played 5 episodes" in result.output
    assert "policy_version=uniform: 5 episodes, mean return" in result.output


def test_simulate_refuses_an_unknown_environment_naming_the_flag():
    result = CliRunner().invoke(cli, ["simulate", "--env", "Nope-v0", "--episodes", "1"])

    assert result.exit_code == 2
    assert "--env" in result.output and "Nope-v0" in result.output


def test_env_kwargs_reach_every_worker_process(kafka, tmp_path):
    run = run_fleet(
        _settings(kafka, tmp_path),
        "CartPole-v1",
        6,
        "uniform",
        workers=2,
        env_kwargs={"max_episode_steps": 3},
    )

    assert run.stats.lengths == [3] * 6


def test_run_fleet_refuses_a_continuous_action_env_before_starting_workers(tmp_path):
    with pytest.raises(EnvironmentRefused, match="Discrete action space"):
        connections = FleetConnections(registry_uri=str(tmp_path / "registry"))
        run_fleet(connections, "Pendulum-v1", 4, "uniform", workers=2)
