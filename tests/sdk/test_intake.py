"""The logger's batch entry for pre-checked decisions: ``outcome_valid`` never accepts what the
contract refuses, and ``DecisionLogger.checked_decisions`` logs or refuses each event as
``decision()`` would."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas.decision_outcome import outcome_valid
from schemas.event_builders import decision_event
from schemas.events import EventValidationError, validate_event
from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger, LoggerClosedError
from services.sdk.settings import SdkSettings
from tests.sdk.conftest import read_events

_STATE = {"x": 1.0, "y": -2.5}


def _event(**overrides: Any) -> dict[str, Any]:
    event = decision_event(
        "w.0.ep", "ep", 0, 1, _STATE, "b", ["a", "b", 3], 0.5, "v1", [0.25, 0.5, 0.25]
    )
    event.update(overrides)
    return event


_BAD_NUMBERS = [math.nan, math.inf, -math.inf, 0.0, -0.1, 1e-7, 1.5, True, 1, "0.5", None]
_OUTCOMES: dict[str, list[Any]] = {
    "event_id": ["", "x" * 257, 7, None, "x" * 256],
    "policy_version": ["", "v" * 257, 1, None, "v" * 256],
    "step": [-1, 2**53 + 1, True, 1.0, "1", None, 2**53],
    "propensity": [*_BAD_NUMBERS, 0.25, 0.50001],
    "action": ["c", 4, True, 3.0, None, "a", 3],
    "action_probs": [
        [0.25, 0.5],
        [0.25, 0.5, 0.25, 0.0],
        [0.5, 0.5, 0.5],
        [0.25, math.nan, 0.25],
        [0.25, 0.5, 0.25000001],
        [0.25, 0.5, 1e-7],
        (0.25, 0.5, 0.25),
        [0, 1, 0],
        [0.3, 0.5, 0.2],
        None,
    ],
}


@pytest.mark.parametrize("field", sorted(_OUTCOMES))
def test_outcome_valid_never_accepts_what_the_contract_refuses(field: str) -> None:
    for value in _OUTCOMES[field]:
        event = _event(**{field: value})
        if outcome_valid(event):
            validate_event(event)  # must not raise


def test_outcome_valid_is_unsure_of_pairs_of_odd_values_the_contract_may_refuse() -> None:
    fields = sorted(_OUTCOMES)
    for a, b in itertools.combinations(fields, 2):
        for va, vb in itertools.product(_OUTCOMES[a][:4], _OUTCOMES[b][:4]):
            event = _event(**{a: va, b: vb})
            if outcome_valid(event):
                validate_event(event)


def test_outcome_valid_accepts_what_a_policy_makes() -> None:
    assert outcome_valid(_event())
    assert outcome_valid(_event(action=3, propensity=0.25, action_probs=[0.5, 0.25, 0.25]))
    without_probs = _event()
    del without_probs["action_probs"]
    assert outcome_valid(without_probs)
    assert not outcome_valid(_event(action_probs=None))  # present but null: the contract says


@pytest.mark.integration
def test_checked_decisions_log_each_or_refuse_it_as_decision_would(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings], registry: CollectorRegistry
) -> None:
    events = [
        decision_event(f"e{i}", f"ep{i}", 0, 1, _STATE, "a", ["a", "b"], 0.5, "v1", [0.5, 0.5])
        for i in range(4)
    ]
    events[1]["propensity"] = 1e-7  # the policy's underflow: refused with the contract's error
    events[1]["action_probs"] = [1e-7, 1.0 - 1e-7]
    events[2]["step"] = 3
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
        logger.decision("ep2", 5, _STATE, "a", ["a", "b"], 0.5, "v1")
        results = logger.checked_decisions(events)
        assert results[0] is None and results[3] is None
        assert isinstance(results[1], EventValidationError)
        with pytest.raises(EventValidationError) as info:
            validate_event(events[1])
        assert str(results[1]) == str(info.value)
        assert isinstance(results[2], EventValidationError)  # step 3 after 5: as decision()
        assert "step" in str(results[2])
        logger.flush(timeout=10)
    ids = {event["event_id"] for _, event in read_events(kafka, expected=3, timeout_s=10)}
    assert len(ids) == 3 and {"e0", "e3"} <= ids and not {"e1", "e2"} & ids
    after = logger.checked_decisions(events[:1])
    assert isinstance(after[0], LoggerClosedError)
