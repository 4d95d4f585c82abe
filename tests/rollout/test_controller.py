"""The staged-rollout controller on logged data with known outcomes (real Delta tables)."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from services.registry import Registry, TamperedPolicyError
from services.rollout.controller import RolloutController
from services.rollout.log_table import read_rollout_log
from services.rollout.plan import RolloutError
from tests.rollout.factory import publish
from tests.rollout.timeline import episode_rows, write_timeline

pytestmark = pytest.mark.integration


def _log_episodes(controller, clock, version, returns, prefix, **options):
    """Write one complete episode per return (3 steps each), starting one second from now."""
    first = clock.now
    rows = []
    for i, total in enumerate(returns):
        start = first + np.timedelta64(1 + i, "s").item()
        rows += episode_rows(f"{prefix}-{version}-{i}", version, [total / 3] * 3, start, **options)
    write_timeline(controller.timeline_uri, rows)


def _returns(mean, n, seed):
    return np.random.default_rng(seed).normal(mean, 3.0, n).tolist()


def _decisions(controller):
    log = read_rollout_log(controller.rollout_log_uri, "cartpole")
    return log["decision"].to_pylist(), log


def test_a_good_candidate_advances_through_every_step_to_promotion(controller, registry, clock):
    controller.start("v2", steps="10,50,100", min_episodes=40)
    assert registry.rollout()["fraction"] == 0.1
    for step, seed in ((0, 1), (1, 2)):
        clock.advance(minutes=1)
        _log_episodes(controller, clock, "v2", _returns(21.0, 40, seed), f"s{step}")
        _log_episodes(controller, clock, "v1", _returns(20.0, 40, seed + 10), f"s{step}")
        clock.advance(minutes=5)
        result = controller.evaluate()
        assert result.comparison.candidate.episodes == 40  # only this step's episodes
        assert result.comparison.incumbent.episodes == 40
        if step == 0:
            assert result.decision == "advance" and registry.rollout()["fraction"] == 0.5
    assert result.decision == "promote"
    assert registry.current() == "v2" and registry.rollout() is None
    decisions, log = _decisions(controller)
    assert decisions == ["start", "advance", "promote"]
    advance = log.slice(1, 1).to_pylist()[0]
    assert advance["fraction_before"] == 0.1 and advance["fraction_after"] == 0.5
    assert advance["candidate_episodes"] == 40 and advance["incumbent_episodes"] == 40
    assert advance["candidate_mean_return"] == pytest.approx(np.mean(_returns(21.0, 40, 1)))
    assert advance["incumbent_std_return"] == pytest.approx(np.std(_returns(20.0, 40, 11), ddof=1))
    assert advance["p_value"] >= 0.05 and advance["reason"]


def test_a_significantly_worse_candidate_is_rolled_back(controller, registry, clock):
    controller.start("v2", steps="5,25,50,100", min_episodes=200)
    clock.advance(minutes=1)
    _log_episodes(controller, clock, "v2", _returns(12.0, 30, 3), "a")
    _log_episodes(controller, clock, "v1", _returns(20.0, 30, 4), "a")
    clock.advance(minutes=5)
    result = controller.evaluate()
    assert result.decision == "rollback" and result.fraction_after == 0.0
    assert registry.rollout() is None and registry.current() == "v1"
    decisions, log = _decisions(controller)
    assert decisions == ["start", "rollback"]
    row = log.slice(1, 1).to_pylist()[0]
    assert row["p_value"] < 0.05 and row["statistic"] < 0
    assert "significantly worse" in row["reason"]


def test_it_holds_while_episodes_are_too_few_and_logs_the_hold_once(controller, registry, clock):
    controller.start("v2", steps="10,100", min_episodes=50)
    clock.advance(minutes=1)
    _log_episodes(controller, clock, "v2", _returns(20.0, 5, 5), "h")
    _log_episodes(controller, clock, "v1", _returns(20.0, 60, 6), "h")
    clock.advance(minutes=1)
    first, second = controller.evaluate(), controller.evaluate()
    assert first.decision == second.decision == "hold"
    assert "45 more candidate" in first.reason and "incumbent" not in first.reason.split("(")[0]
    assert registry.rollout()["fraction"] == 0.1
    assert _decisions(controller)[0] == ["start", "hold"]


def test_only_complete_episodes_that_began_in_the_step_count(controller, clock):
    _log_episodes(controller, clock, "v2", _returns(20.0, 7, 7), "early")  # before the start
    clock.advance(minutes=1)
    controller.start("v2", steps="10,100", min_episodes=50)
    clock.advance(minutes=1)
    _log_episodes(controller, clock, "v2", _returns(20.0, 4, 8), "open", end=None)
    _log_episodes(controller, clock, "v2", _returns(20.0, 3, 9), "cut", end="truncated")
    _log_episodes(controller, clock, "v2", _returns(20.0, 2, 10), "done")
    evidence = controller.status().comparison
    assert evidence.candidate.episodes == 3 + 2
    assert evidence.incumbent.episodes == 0


def test_start_refuses_a_second_rollout_and_the_current_version(controller, registry):
    with pytest.raises(RolloutError, match="is already CURRENT"):
        controller.start("v1")
    controller.start("v2", steps="10,100", min_episodes=10)
    with pytest.raises(RolloutError, match="already running"):
        controller.start("v2")


def test_start_refuses_a_tampered_candidate(controller, registry):
    from pathlib import Path

    path = Path(registry.uri) / "cartpole" / "v2" / "policy.pt"
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(TamperedPolicyError):
        controller.start("v2")
    assert registry.rollout() is None


def test_abort_sends_all_traffic_back_and_is_logged(controller, registry, clock):
    controller.start("v2", steps="10,100", min_episodes=10)
    clock.advance(seconds=1)
    result = controller.abort("operator said so")
    assert result.decision == "abort" and registry.rollout() is None
    decisions, log = _decisions(controller)
    assert decisions == ["start", "abort"]
    assert log["reason"].to_pylist()[-1] == "operator said so"


def test_a_tick_sets_the_rollout_gauges(controller, clock, metrics):
    controller.start("v2", steps="10,100", min_episodes=100)
    clock.advance(minutes=1)
    _log_episodes(controller, clock, "v2", [3.0, 5.0], "g")
    _log_episodes(controller, clock, "v1", [1.0, 2.0, 3.0], "g")
    clock.advance(minutes=1)
    controller.evaluate()

    def value(name, **labels):
        return metrics.get_sample_value(name, {"policy": "cartpole", **labels})

    assert value("policyloop_rollout_episodes", policy_version="v2", role="candidate") == 2
    assert value("policyloop_rollout_episodes", policy_version="v1", role="incumbent") == 3
    assert value("policyloop_rollout_mean_reward", policy_version="v2", role="candidate") == 4.0
    assert value("policyloop_rollout_mean_reward", policy_version="v1", role="incumbent") == 2.0
    assert value("policyloop_rollout_step_fraction", policy_version="v2") == 0.1
    assert value("policyloop_rollout_decisions_total", decision="hold") == 1
    assert value("policyloop_rollout_decisions_total", decision="start") == 1


def test_without_current_the_incumbent_is_the_uniform_fallback(controller, tmp_path):
    fresh = Registry(str(tmp_path / "fresh"), "cartpole")
    version = publish(fresh)
    other = RolloutController(
        fresh,
        controller.timeline_uri,
        controller.rollout_log_uri,
        controller.settings,
        metrics_registry=CollectorRegistry(),
    )
    result = other.start(version, steps="50,100", min_episodes=5)
    assert result.incumbent == "uniform"
    assert fresh.rollout()["plan"]["incumbent"] == "uniform"
