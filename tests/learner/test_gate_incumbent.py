"""A deployed incumbent the run cannot evaluate makes the gate reject, not skip "beats it"."""

from __future__ import annotations

from pathlib import Path

import pytest

from learner.gate_log import read_gate_log
from learner.run import run_once
from services.registry import Registry
from tests.learner.conftest import bandit_rows, fast_settings, write_timeline

pytestmark = pytest.mark.integration


@pytest.fixture
def home_with_v1(tmp_path):
    """v1 published and CURRENT, then more (equally informative) data in the timeline."""
    write_timeline(tmp_path / "timeline", bandit_rows(1500, seed=0))
    settings = fast_settings(tmp_path, announce=False)
    assert run_once(settings, str(tmp_path / "timeline")).status == "published"
    write_timeline(tmp_path / "timeline", bandit_rows(1500, seed=1, start=10_000))
    return settings


def _tamper(settings) -> None:
    policy_file = Path(settings.registry_uri) / settings.policy_name / "v1" / "policy.pt"
    data = bytearray(policy_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    policy_file.write_bytes(bytes(data))


def _assert_rejected_naming_v1(settings, result, why: str) -> None:
    assert result.status == "rejected", result.sentence
    assert result.incumbent_version == "v1"
    reason = next(r for r in result.reasons if "incumbent v1" in r)
    assert "could not be evaluated" in reason and why in reason
    assert "gate.beat_incumbent=false" in reason and "CURRENT" in reason
    assert "incumbent v1" in result.sentence
    registry = Registry(settings.registry_uri, settings.policy_name)
    assert registry.current() == "v1" and registry.versions() == ["v1"]
    assert read_gate_log(settings.gate_log_uri)["decision"].to_pylist() == ["publish", "reject"]


def test_a_tampered_incumbent_rejects_the_candidate_and_keeps_current(home_with_v1, tmp_path):
    settings = home_with_v1
    _tamper(settings)
    result = run_once(settings, str(tmp_path / "timeline"))
    _assert_rejected_naming_v1(settings, result, "sha256")


def test_an_incumbent_whose_evaluation_fails_rejects_the_candidate(
    home_with_v1, tmp_path, monkeypatch
):
    def unevaluable(*args, **kwargs):
        raise ValueError("its actions are not offered in this data")

    monkeypatch.setattr("learner.run.evaluation.policy_probs_on", unevaluable)
    settings = home_with_v1
    result = run_once(settings, str(tmp_path / "timeline"))
    _assert_rejected_naming_v1(settings, result, "its actions are not offered")


def test_beat_incumbent_off_lets_a_candidate_past_a_tampered_incumbent(home_with_v1, tmp_path):
    settings = home_with_v1.model_copy(
        update={"gate": home_with_v1.gate.model_copy(update={"beat_incumbent": False})}
    )
    _tamper(settings)
    result = run_once(settings, str(tmp_path / "timeline"))
    assert result.status == "published", result.sentence
    assert Registry(settings.registry_uri, settings.policy_name).current() == "v2"
