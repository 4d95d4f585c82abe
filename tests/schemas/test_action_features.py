"""The decision's ``action_features`` (contract version 2): what the contract accepts and
refuses, how it is versioned, and the timeline form a row gives it."""

from __future__ import annotations

import math

import pytest

from schemas.action_features import MAX_ENTRIES, MAX_FEATURES_PER_ACTION
from schemas.event_builders import decision_event
from schemas.events import EventValidationError, validate_event
from schemas.rows import TimelineRowBuilder
from schemas.wire import decode_record, encode_batch
from tests.schemas.test_event_validation import DECISION, mutated

FEATURES = {"a": {"color=red": 1.0, "price": 9.5}, "b": {"price": 3}}
WITH_FEATURES = mutated(DECISION, action_features=FEATURES, schema_version=2)


def _error(event: dict) -> EventValidationError:
    with pytest.raises(EventValidationError) as info:
        validate_event(event)
    return info.value


def test_a_decision_with_action_features_at_schema_version_2_is_valid():
    validate_event(WITH_FEATURES)


def test_features_of_some_actions_only_are_valid():
    validate_event(mutated(WITH_FEATURES, action_features={"b": {}}))


def test_integer_actions_are_keyed_by_their_text():
    event = mutated(
        WITH_FEATURES,
        action=1,
        possible_actions=[0, 1],
        action_probs=[0.75, 0.25],
        action_features={"0": {"x": 1.0}, "1": {"x": 2.0}},
    )
    validate_event(event)


def test_an_event_without_action_features_is_still_valid_at_version_1_or_2():
    validate_event(DECISION)
    validate_event(mutated(DECISION, schema_version=1))
    validate_event(mutated(DECISION, schema_version=2))


def test_action_features_without_schema_version_2_are_refused_naming_the_version():
    for version in (KeyError, 1):
        err = _error(mutated(WITH_FEATURES, schema_version=version))
        assert err.field == "action_features"
        assert "needs schema_version 2" in err.rule
        assert err.reason == "invalid:action_features"


def test_an_event_of_a_version_not_spoken_is_refused_for_its_version_before_its_fields():
    err = _error(mutated(WITH_FEATURES, schema_version=3, colour="red"))
    assert err.field == "schema_version" and err.reason == "unsupported_schema_version"


WIDE = {f"f{i}": 1.0 for i in range(MAX_FEATURES_PER_ACTION + 1)}
INVALID = [
    ("not-a-map", ["a"], "action_features", "must be a map of action"),
    ("unknown-action", {"c": {"x": 1.0}}, "action_features['c']", "among possible_actions"),
    ("integer-key", {1: {"x": 1.0}}, "action_features[1]", "among possible_actions"),
    ("features-not-a-map", {"a": [1.0]}, "action_features.a", "map of feature name"),
    ("nan", {"a": {"x": math.nan}}, "action_features.a.x", "must be finite"),
    ("infinity", {"a": {"x": -math.inf}}, "action_features.a.x", "must be finite"),
    ("string-value", {"a": {"color": "red"}}, "action_features.a.color", "must be a number"),
    ("bool-value", {"a": {"x": True}}, "action_features.a.x", "must be a number"),
    ("nested-value", {"a": {"x": {"y": 1}}}, "action_features.a.x", "must be a number"),
    ("huge-int", {"a": {"x": 2**63}}, "action_features.a.x", "signed 64-bit"),
    ("empty-name", {"a": {"": 1.0}}, "action_features.a['']", "names must be 1-256"),
    ("long-name", {"a": {"n" * 257: 1.0}}, f"action_features.a['{'n' * 257}']", "1-256"),
    ("too-many-per-action", {"a": WIDE}, "action_features.a", f"at most {MAX_FEATURES_PER_ACTION}"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "value", "field", "rule"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_action_features_name_the_field_and_the_rule(case, value, field, rule):
    err = _error(mutated(WITH_FEATURES, action_features=value))
    assert err.field == field
    assert rule in err.rule
    assert rule in str(err) and str(err).startswith(f"decision.{field}=")
    assert err.reason == "invalid:action_features"


def test_too_many_features_in_all_are_refused():
    actions = [f"a{i}" for i in range(MAX_ENTRIES // MAX_FEATURES_PER_ACTION + 1)]
    full = {f"f{i}": 1.0 for i in range(MAX_FEATURES_PER_ACTION)}
    event = mutated(
        WITH_FEATURES,
        action=actions[0],
        possible_actions=actions,
        action_probs=KeyError,
        propensity=0.5,
        action_features=dict.fromkeys(actions, full),
    )
    err = _error(event)
    assert err.field == "action_features" and f"at most {MAX_ENTRIES} entries in all" in err.rule


def test_the_builder_marks_an_event_with_action_features_as_version_2():
    event = decision_event(
        "d", "e", 0, 5, {"x": 1.0}, "a", ["a", "b"], 0.5, "v1", None, None, FEATURES
    )
    validate_event(event)
    assert event["schema_version"] == 2 and event["action_features"] == FEATURES


def test_the_builder_leaves_an_event_without_action_features_at_version_1():
    event = decision_event("d", "e", 0, 5, {"x": 1.0}, "a", ["a", "b"], 0.5, "v1")
    assert "schema_version" not in event and "action_features" not in event


def test_a_batch_holding_a_version_2_event_keeps_the_version_1_envelope():
    record = encode_batch([WITH_FEATURES, DECISION])
    assert decode_record(record) == [WITH_FEATURES, DECISION]
    assert record.startswith(b"\x82\xaeschema_version\x01")  # what a version-1 reader checks


def _row(decision: dict) -> dict:
    return TimelineRowBuilder("sum", 0.0).row(decision, None, None, 0, 3, True, 0)


def test_a_row_holds_action_features_aligned_with_possible_actions():
    row = _row(mutated(WITH_FEATURES, possible_actions=["b", "a", "z"], action_probs=KeyError))
    assert row["possible_actions"] == ["b", "a", "z"]
    assert row["action_features"] == [{"price": 3.0}, {"color=red": 1.0, "price": 9.5}, {}]
    assert all(type(v) is float for f in row["action_features"] for v in f.values())


def test_a_row_of_a_decision_without_action_features_holds_null():
    assert _row(DECISION)["action_features"] is None
