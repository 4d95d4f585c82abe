"""Personalizer's ``actions[].features`` as a decision's ``action_features``, without HTTP: the
flattening rules, which actions are kept, and when the field is left out."""

from __future__ import annotations

import pytest

from schemas.events import EventValidationError
from services.decision.personalizer import action_features


def test_features_are_flattened_like_the_context():
    features = [{"color": "red", "size": {"w": 2, "h": 1.5}, "tags": ["new"], "sale": False,
                 "gone": None}]  # fmt: skip
    assert action_features([("a", features)], ["a"]) == {
        "a": {"color=red": 1.0, "size.w": 2, "size.h": 1.5, "tags.0=new": 1.0, "sale": 0.0}
    }


def test_several_feature_objects_of_an_action_merge_into_one_map():
    assert action_features([("a", [{"x": 1}, {"y": 2}])], ["a"]) == {"a": {"x": 1, "y": 2}}


def test_excluded_actions_and_actions_without_features_are_left_out():
    actions = [("a", [{"x": 1}]), ("b", [{"x": 2}]), ("c", None)]
    assert action_features(actions, ["a", "c"]) == {"a": {"x": 1}}


def test_a_rank_whose_actions_have_no_features_has_no_action_features():
    assert action_features([("a", None), ("b", None)], ["a", "b"]) is None


def test_a_feature_entry_that_is_not_an_object_names_its_action():
    with pytest.raises(EventValidationError) as info:
        action_features([("a", None), ("b", ["red"])], ["a", "b"])
    assert info.value.field == "actions[1].features[0]"
    assert "must be an object of features" in info.value.rule
