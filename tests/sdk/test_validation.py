"""Invalid input raises at the call, with the schema's message, and never reaches Kafka."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from schemas.events import validate_event
from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger, EventValidationError, LoggerClosedError
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration

_STATE = {"x": 1.0}


def _schema_message(**overrides) -> str:
    event = {
        "type": "decision",
        "event_id": "e1",
        "episode_id": "ep",
        "step": 0,
        "ts": 1,
        "state": _STATE,
        "action": "a",
        "possible_actions": ["a", "b"],
        "propensity": 0.5,
        "policy_version": "v1",
        **overrides,
    }
    with pytest.raises(EventValidationError) as info:
        validate_event(event)
    return str(info.value)


def test_invalid_events_raise_the_schemas_error_and_nothing_reaches_kafka(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
        with pytest.raises(EventValidationError) as info:
            logger.decision("ep", 0, _STATE, "a", ["a", "b"], 1.5, "v1", event_id="e1", ts=1)
        assert str(info.value) == _schema_message(propensity=1.5)
        assert info.value.field == "propensity"

        with pytest.raises(EventValidationError, match=r"action=.c.: must be one of"):
            logger.decision("ep", 0, _STATE, "c", ["a", "b"], 0.5, "v1")
        with pytest.raises(EventValidationError, match=r"state\.x.*finite"):
            logger.decision("ep", 0, {"x": float("nan")}, "a", ["a", "b"], 0.5, "v1")
        with pytest.raises(EventValidationError, match="reward"):
            logger.reward("ep", 0, float("inf"))
        with pytest.raises(EventValidationError, match="terminal"):
            logger.end_episode("ep", terminal="yes")  # type: ignore[arg-type]
        logger.flush(timeout=10)

    assert read_events(kafka, expected=1, timeout_s=2) == []
    assert registry.get_sample_value("policyloop_sdk_events_sent_total") == 0


def test_a_step_that_does_not_increase_raises_and_is_not_sent(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
        logger.decision("ep", 3, _STATE, "a", ["a", "b"], 0.5, "v1", event_id="first")
        with pytest.raises(EventValidationError, match=r"step.*must increase.*last step was 3"):
            logger.decision("ep", 3, _STATE, "a", ["a", "b"], 0.5, "v1", event_id="again")
        logger.flush(timeout=10)

    assert [e["event_id"] for _, e in read_events(kafka, expected=1)] == ["first"]


def test_logging_after_close_raises(kafka: KafkaSettings, sdk_settings, registry) -> None:
    logger = DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry)
    logger.close()
    with pytest.raises(LoggerClosedError, match="closed"):
        logger.reward("ep", 0, 1.0)
