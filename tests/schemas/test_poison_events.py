"""Poison rows the contract used to admit: colliding action texts and vanishing propensities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas.events import MIN_PROPENSITY, EventValidationError, validate_event
from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings


def _decision(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "decision",
        "event_id": "e1",
        "episode_id": "ep",
        "step": 0,
        "ts": 1,
        "state": {"x": 1.0},
        "action": "a",
        "possible_actions": ["a", "b"],
        "propensity": 0.5,
        "policy_version": "v1",
        **overrides,
    }


def _error(event: dict[str, Any], **kwargs: Any) -> EventValidationError:
    with pytest.raises(EventValidationError) as info:
        validate_event(event, **kwargs)
    return info.value


@pytest.mark.parametrize("possible", [[1, "1"], ["a", 7, "7"], [-3, "b", "-3"]])
def test_possible_actions_must_be_distinct_as_table_text(possible: list[Any]) -> None:
    err = _error(_decision(action=possible[0], possible_actions=possible))
    assert err.reason == "invalid:possible_actions"
    assert "as table text" in err.rule


def test_mixed_but_distinct_action_texts_pass() -> None:
    validate_event(_decision(action=1, possible_actions=[1, "a", "01", 2]))


@pytest.mark.parametrize("propensity", [5e-324, 1e-300, MIN_PROPENSITY / 2])
def test_propensity_below_the_floor_is_rejected(propensity: float) -> None:
    err = _error(_decision(propensity=propensity))
    assert err.reason == "invalid:propensity"
    assert str(MIN_PROPENSITY) in err.rule


def test_propensity_at_the_floor_passes_and_the_floor_is_a_parameter() -> None:
    validate_event(_decision(propensity=MIN_PROPENSITY))
    validate_event(_decision(propensity=1e-9), min_propensity=1e-12)
    err = _error(_decision(propensity=0.001), min_propensity=0.01)
    assert err.field == "propensity"


def test_chosen_action_prob_below_the_floor_is_rejected() -> None:
    # propensity is within the tolerance of the chosen entry, but the entry itself is zero
    event = _decision(propensity=5e-5, action_probs=[0.0, 1.0])
    err = _error(event)
    assert err.field == "action_probs[0]"
    assert str(MIN_PROPENSITY) in err.rule


@pytest.fixture
def logger(tmp_path: Path):
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{find_free_port()}", topic_prefix="no")
    settings = SdkSettings(spool_dir=str(tmp_path / "spool"), max_block_ms=500)
    lg = DecisionLogger(kafka=kafka, settings=settings, registry=CollectorRegistry())
    yield lg
    lg.close(timeout=0.1)


def test_logger_rejects_colliding_action_texts(logger: DecisionLogger) -> None:
    with pytest.raises(EventValidationError) as info:
        logger.decision("ep", 0, {"x": 1.0}, 1, [1, "1"], 0.5, "v1")
    assert info.value.field == "possible_actions"


def test_logger_rejects_a_vanishing_propensity(logger: DecisionLogger) -> None:
    with pytest.raises(EventValidationError) as info:
        logger.decision("ep", 0, {"x": 1.0}, "a", ["a", "b"], 5e-324, "v1")
    assert info.value.field == "propensity"
