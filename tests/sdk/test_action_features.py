"""The SDK logs action features with a decision (contract version 2), from ``DecisionLogger``
and from ``PolicyClient.act`` / ``act_many``; invalid ones raise at the call."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from services.registry import Registry
from services.sdk import DecisionLogger, EventValidationError, PolicyClient
from services.sdk.policy_batch import ActRequest
from tests.rollout.factory import publish
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration

FEATURES = {"a": {"color=red": 1.0}, "b": {"price": 2.5}}
STATE = {"cart_position": 0.1, "cart_velocity": 0.0, "pole_angle": -0.02,
         "pole_angular_velocity": 0.3}  # fmt: skip


def test_a_decision_with_action_features_is_sent_with_them_as_a_version_2_event(
    kafka, sdk_settings
):
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=CollectorRegistry()) as lg:
        lg.decision("ep", 0, {"x": 1.0}, "a", ["a", "b"], 0.5, "v1", action_features=FEATURES)
        lg.decision("ep", 1, {"x": 1.0}, "a", ["a", "b"], 0.5, "v1")
        lg.flush(10)
    (_, first), (_, second) = read_events(kafka, expected=2)
    assert first["action_features"] == FEATURES and first["schema_version"] == 2
    assert "action_features" not in second and "schema_version" not in second


def test_invalid_action_features_raise_at_the_call_and_nothing_is_sent(kafka, sdk_settings):
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=CollectorRegistry()) as lg:
        with pytest.raises(EventValidationError) as info:
            lg.decision("ep", 0, {"x": 1.0}, "a", ["a", "b"], 0.5, "v1", action_features={"c": {}})
        assert info.value.field == "action_features['c']"
        assert "among possible_actions" in info.value.rule
        lg.flush(10)
    assert read_events(kafka, expected=1, timeout_s=2) == []


def _client(tmp_path, logger: DecisionLogger) -> PolicyClient:
    registry = Registry(str(tmp_path / "registry"), "cartpole")
    publish(registry, promote=True, logits=[1.5, 0.0])
    return PolicyClient(
        registry.uri,
        "cartpole",
        seed=4,
        logger=logger,
        metrics_registry=CollectorRegistry(),
        poll_interval_s=3600,
    )


def test_policy_client_act_and_act_many_log_the_action_features_they_are_given(
    tmp_path, kafka, sdk_settings
):
    features = {"0": {"left": 1.0}, "1": {"right": 1.0}}
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=CollectorRegistry()) as lg:
        with _client(tmp_path, lg) as client:
            client.act("ep-1", STATE, [0, 1], action_features=features)
            (act,) = client.act_many([ActRequest("ep-2", STATE, [0, 1], features)])
            assert not isinstance(act, Exception)
            client.act("ep-3", STATE, [0, 1])
        lg.flush(10)
    logged = {e["episode_id"]: e for _, e in read_events(kafka, expected=3)}
    assert logged["ep-1"]["action_features"] == logged["ep-2"]["action_features"] == features
    assert "action_features" not in logged["ep-3"]
