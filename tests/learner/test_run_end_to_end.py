"""A learner run on tiny Delta timeline tables: train, CPE, gate, publish, log, report, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from learner.gate_log import read_gate_log
from learner.run import run_once
from services.registry import Registry
from tests.learner.conftest import (
    bandit_rows,
    chain_rows,
    fast_settings,
    read_policy_updates,
    write_timeline,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def published_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("learner")


@pytest.fixture(scope="module")
def published(published_home):
    """One run on 1,500 uniformly logged bandit decisions where the best policy is known."""
    home = published_home
    version = write_timeline(home / "timeline", bandit_rows(1500, seed=0))
    settings = fast_settings(home, announce=False)
    return settings, version, run_once(settings, str(home / "timeline"))


def test_run_publishes_a_candidate_that_beats_the_logged_policy(published):
    settings, _, result = published
    assert result.status == "published", result.sentence
    assert result.published_version == "v1" and result.promoted
    assert Registry(settings.registry_uri, settings.policy_name).current() == "v1"
    assert result.sentence.startswith("Published v1")


def test_published_version_loads_verified_with_its_provenance(published, published_home):
    settings, table_version, _ = published
    _, manifest = Registry(settings.registry_uri, settings.policy_name).load("v1")
    assert manifest["trained_on"]["table_uri"] == str(published_home / "timeline")
    assert manifest["trained_on"]["table_version"] == table_version
    assert manifest["actions"] == ["0", "1"] and manifest["feature_names"] == ["x", "y"]
    assert manifest["gate"]["decision"] == "publish"
    assert "dr" in manifest["cpe"]["estimates"]
    assert set(manifest["exploration"]) >= {"temperature", "epsilon", "min_propensity"}


def test_served_module_prefers_the_rewarding_action_and_stays_stochastic(published):
    settings, _, _ = published
    module, _ = Registry(settings.registry_uri, settings.policy_name).load()
    probs = module({"x": 1.5, "y": 0.0}, [True, True])
    assert probs[1] > 0.9 and min(probs) > 0
    dense = module.probs_dense(torch.tensor([[-1.5, 0.0]]), torch.tensor([[True, True]]))
    assert dense[0, 0] > 0.9


def test_evaluated_probabilities_are_those_of_the_published_bytes(published):
    settings, _, result = published
    module, _ = Registry(settings.registry_uri, settings.policy_name).load("v1")
    eval_data = result.eval_data
    served = module.probs_dense(
        torch.from_numpy(eval_data.states), torch.from_numpy(eval_data.possible_mask)
    ).double()
    served = (served / served.sum(dim=1, keepdim=True)).detach().numpy()
    np.testing.assert_allclose(served, result.candidate_cpe.input.target_probs, rtol=1e-12)


def test_gate_log_records_the_decision_estimates_and_table_version(published):
    settings, table_version, result = published
    rows = read_gate_log(settings.gate_log_uri).to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert row["decision"] == "publish" and row["candidate_version"] == "v1"
    assert row["table_version"] == table_version and row["gate_estimator"] == "dr"
    assert {e["estimator"] for e in row["estimates"]} >= {"ips", "snips", "dm", "dr"}
    assert row["report_path"] == result.report_path
    assert row["logged_value"] == pytest.approx(0.5, abs=0.1)


def test_report_is_written_with_the_verdict_first(published):
    _, _, result = published
    text = Path(result.report_path).read_text()
    assert text.index(result.sentence.replace("'", "&#x27;")) < text.index("<h2")


def test_metrics_textfile_is_written_into_the_reports_dir(published):
    settings, _, result = published
    assert Path(result.metrics_target).parent == Path(settings.reports_dir)
    text = Path(result.metrics_target).read_text()
    assert 'policyloop_learner_published_version{policy="test"} 1.0' in text


def test_run_without_new_data_is_skipped(published, published_home):
    settings, _, _ = published
    again = run_once(settings, str(published_home / "timeline"))
    assert again.status == "skipped"
    assert len(read_gate_log(settings.gate_log_uri)) == 1


@pytest.fixture
def home_with_v1(tmp_path):
    write_timeline(tmp_path / "timeline", bandit_rows(1500, seed=0))
    settings = fast_settings(tmp_path, announce=False)
    assert run_once(settings, str(tmp_path / "timeline")).status == "published"
    return settings


def test_a_sessionizer_claim_without_rows_is_not_new_data(home_with_v1, tmp_path):
    """Each sessionizer start claims its partitions with a commit that holds no rows."""
    from services.sessionizer.sink import DeltaSink

    timeline = str(tmp_path / "timeline")
    DeltaSink(timeline, "group", "events").claim([0, 1])
    again = run_once(home_with_v1, timeline)
    assert again.status == "skipped", again.sentence
    assert "added no rows" in again.sentence
    assert len(read_gate_log(home_with_v1.gate_log_uri)) == 1


def test_new_data_with_an_equally_good_incumbent_is_rejected_and_current_kept(
    home_with_v1, tmp_path
):
    settings = home_with_v1
    write_timeline(tmp_path / "timeline", bandit_rows(300, seed=1, start=10_000))
    result = run_once(settings, str(tmp_path / "timeline"))
    assert result.status == "rejected"
    assert result.incumbent_version == "v1" and result.incumbent_cpe is not None
    assert any("incumbent" in reason for reason in result.reasons)
    registry = Registry(settings.registry_uri, settings.policy_name)
    assert registry.current() == "v1" and registry.versions() == ["v1"]
    assert read_gate_log(settings.gate_log_uri)["decision"].to_pylist() == ["publish", "reject"]


def test_failed_run_publishes_nothing_and_is_not_logged(tmp_path, monkeypatch):
    write_timeline(tmp_path / "timeline", bandit_rows(1500, seed=0))
    settings = fast_settings(tmp_path, announce=False)

    def broken(*args, **kwargs):
        raise RuntimeError("estimator exploded")

    monkeypatch.setattr("learner.run.evaluation.evaluate_policy", broken)
    result = run_once(settings, str(tmp_path / "timeline"))
    assert result.status == "failed" and "estimator exploded" in result.error
    assert Registry(settings.registry_uri, settings.policy_name).versions() == []
    assert len(read_gate_log(settings.gate_log_uri)) == 0
    assert 'outcome="failed",policy="test"} 1.0' in Path(result.metrics_target).read_text()


def test_failure_after_storing_the_version_discards_it(home_with_v1, tmp_path, monkeypatch):
    """The gate publishes v2 (beating the logged policy is enough here), the run stores it, and
    then the gate log cannot be written: v2 must be gone and CURRENT still v1."""
    settings = home_with_v1
    write_timeline(tmp_path / "timeline", bandit_rows(300, seed=1, start=10_000))
    settings = settings.model_copy(
        update={"gate": settings.gate.model_copy(update={"beat_incumbent": False})}
    )
    registry = Registry(settings.registry_uri, settings.policy_name)
    history = registry.history()
    seen = []

    def unwritable(uri, entries):
        seen.append(([(e.decision, e.candidate_version) for e in entries], registry.versions()))
        raise OSError("gate_log is read-only")

    monkeypatch.setattr("learner.run.outcome.append_gate_log", unwritable)
    result = run_once(settings, str(tmp_path / "timeline"))
    assert seen == [([("publish", "v2")], ["v1", "v2"])]  # stored when the log was written
    assert result.status == "failed" and "gate_log is read-only" in result.error
    assert registry.versions() == ["v1"] and registry.current() == "v1"
    assert not (Path(settings.registry_uri) / settings.policy_name / "v2").exists()
    assert registry.history() == history


def test_too_few_eval_episodes_reject_with_the_reason(tmp_path):
    write_timeline(tmp_path / "timeline", bandit_rows(20, seed=0))
    settings = fast_settings(tmp_path, announce=False, min_eval_episodes=50)
    result = run_once(settings, str(tmp_path / "timeline"))
    assert result.status == "rejected"
    assert "min_eval_episodes=50" in result.sentence
    assert read_gate_log(settings.gate_log_uri)["decision"].to_pylist() == ["reject"]
    assert Path(result.report_path).exists()


def test_sequential_run_with_a_better_policy_in_reach_publishes_it(tmp_path):
    """Four-step episodes, undiscounted: the uniform logger earns about 2 per episode, matching
    the sign of x every step earns 4. FQE gets enough Bellman backups (30 > 4 steps) for the
    gate to trust the model weighted DR rests on, so publishing is the only right verdict --
    on weighted DR, or on FQE alone when the weights carry too few effective samples."""
    write_timeline(tmp_path / "timeline", chain_rows(300, seed=0))
    settings = fast_settings(tmp_path, announce=False)
    fqe = settings.cpe.fqe.model_copy(update={"n_steps": 1500, "target_update_every": 50})
    cpe = settings.cpe.model_copy(update={"gamma": 1.0, "fqe": fqe})
    result = run_once(settings.model_copy(update={"cpe": cpe}), str(tmp_path / "timeline"))
    assert result.status == "published", result.sentence
    assert result.candidate_cpe.kind == "sequential"
    basis = result.candidate_cpe.estimates[result.gate_decision.estimator]
    logged = result.candidate_cpe.logged_value
    assert basis.estimator in {"wdr", "fqe"}
    assert logged.ci_low < 2.0 < logged.ci_high and basis.ci_low > logged.ci_high
    row = read_gate_log(settings.gate_log_uri).to_pylist()[0]
    assert row["decision"] == "publish" and row["gate_estimator"] == "wdr"
    assert {e["estimator"] for e in row["estimates"]} >= {"pdis", "wpdis", "wdr", "fqe"}
    assert Path(result.report_path).exists()


def test_published_version_is_announced_once_on_policy_updates(tmp_path, kafka):
    write_timeline(tmp_path / "timeline", bandit_rows(1500, seed=0))
    result = run_once(fast_settings(tmp_path), str(tmp_path / "timeline"), kafka=kafka)
    assert result.status == "published"
    messages = read_policy_updates(kafka)
    assert [(m["policy"], m["version"], m["promoted"]) for m in messages] == [("test", "v1", True)]
