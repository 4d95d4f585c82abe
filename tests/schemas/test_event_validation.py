"""Every rule of the event contract gives an error naming the field, the value and the rule."""

from __future__ import annotations

import copy
import math

import pytest

from schemas.events import EpisodeStepTracker, EventValidationError, validate_event

DECISION = {
    "type": "decision",
    "event_id": "ev-1",
    "episode_id": "ep-1",
    "step": 3,
    "ts": 1_763_700_000_000,
    "state": {"x": 0.5, "y": -2.0},
    "action": "b",
    "possible_actions": ["a", "b"],
    "propensity": 0.25,
    "action_probs": [0.75, 0.25],
    "policy_version": "v1",
}
REWARD = {
    "type": "reward",
    "event_id": "ev-2",
    "episode_id": "ep-1",
    "step": 3,
    "ts": 1_763_700_000_100,
    "reward": 1.0,
}
END = {"type": "episode_end", "event_id": "ev-3", "episode_id": "ep-1", "ts": 1, "terminal": True}


def mutated(base, **changes):
    event = copy.deepcopy(base)
    for key, value in changes.items():
        if value is KeyError:
            del event[key]
        else:
            event[key] = value
    return event


INVALID = [
    ("missing-event-id", mutated(DECISION, event_id=KeyError), "event_id", "is required"),
    ("empty-episode-id", mutated(DECISION, episode_id=""), "episode_id", "non-empty string"),
    ("long-episode-id", mutated(DECISION, episode_id="e" * 257), "episode_id", "at most 256"),
    ("numeric-episode-id", mutated(DECISION, episode_id=7), "episode_id", "non-empty string"),
    ("negative-step", mutated(DECISION, step=-1), "step", "between 0"),
    ("float-step", mutated(DECISION, step=1.0), "step", "integer"),
    ("bool-step", mutated(DECISION, step=True), "step", "integer"),
    ("string-ts", mutated(DECISION, ts="now"), "ts", "integer"),
    ("nan-state", mutated(DECISION, state={"x": math.nan}), "state.x", "finite"),
    ("inf-state", mutated(DECISION, state={"x": math.inf}), "state.x", "finite"),
    ("string-state", mutated(DECISION, state={"x": "1"}), "state.x", "number"),
    ("state-not-map", mutated(DECISION, state=[1.0]), "state", "map"),
    (
        "too-many-features",
        mutated(DECISION, state={str(i): 0.0 for i in range(4097)}),
        "state",
        "at most 4096",
    ),
    (
        "action-not-possible",
        mutated(DECISION, action="c", action_probs=KeyError),
        "action",
        "one of possible_actions",
    ),
    (
        "huge-int-action",
        mutated(
            DECISION, action=2**64, possible_actions=[2**64], action_probs=KeyError, propensity=1.0
        ),
        "action",
        "64-bit",
    ),
    ("huge-int-state", mutated(DECISION, state={"x": 2**70}), "state.x", "64-bit"),
    ("float-action", mutated(DECISION, action=1.5), "action", "string or an integer"),
    (
        "no-possible-actions",
        mutated(DECISION, possible_actions=[]),
        "possible_actions",
        "non-empty",
    ),
    (
        "repeated-actions",
        mutated(DECISION, possible_actions=["a", "b", "b"]),
        "possible_actions",
        "repeat",
    ),
    (
        "zero-propensity",
        mutated(DECISION, propensity=0.0, action_probs=KeyError),
        "propensity",
        "0 < propensity <= 1",
    ),
    (
        "propensity-above-one",
        mutated(DECISION, propensity=1.5, action_probs=KeyError),
        "propensity",
        "0 < propensity <= 1",
    ),
    ("nan-propensity", mutated(DECISION, propensity=math.nan), "propensity", "finite"),
    (
        "probs-not-summing-to-one",
        mutated(DECISION, action_probs=[0.5, 0.25]),
        "action_probs",
        "sum to 1",
    ),
    ("probs-misaligned", mutated(DECISION, action_probs=[1.0]), "action_probs", "aligned"),
    (
        "negative-prob",
        mutated(DECISION, action_probs=[0.75, -0.25]),
        "action_probs[1]",
        "between 0 and 1",
    ),
    (
        "propensity-disagrees-with-probs",
        mutated(DECISION, propensity=0.5, action_probs=[0.5, 0.5]) | {"propensity": 0.3},
        "propensity",
        "must equal action_probs",
    ),
    ("unknown-field", mutated(DECISION, colour="red"), "colour", "not a field"),
    (
        "unknown-schema-version",
        mutated(DECISION, schema_version=3),
        "schema_version",
        "unsupported",
    ),
    ("nan-reward", mutated(REWARD, reward=math.nan), "reward", "finite"),
    ("bad-metric", mutated(REWARD, metrics={"clicks": math.inf}), "metrics.clicks", "finite"),
    ("terminal-not-bool", mutated(END, terminal=1), "terminal", "true or false"),
    ("unknown-type", mutated(END, type="click"), "type", "must be one of"),
]


@pytest.mark.parametrize(("case", "event", "field", "rule"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_event_error_names_field_value_and_rule(case, event, field, rule):
    with pytest.raises(EventValidationError) as info:
        validate_event(event)
    err = info.value
    assert err.field == field
    assert rule in err.rule
    assert field in str(err) and rule in str(err)
    assert err.reason in (
        f"invalid:{field.split('.')[0].split('[')[0]}",
        "unsupported_schema_version",
    )


def test_the_reference_events_are_valid():
    for event in (DECISION, REWARD, END):
        validate_event(event)


def test_integer_actions_are_valid():
    validate_event(mutated(DECISION, action=1, possible_actions=[0, 1], action_probs=[0.75, 0.25]))


def test_error_message_shows_the_offending_value():
    with pytest.raises(EventValidationError, match=r"decision\.propensity=1\.5"):
        validate_event(mutated(DECISION, propensity=1.5, action_probs=KeyError))


def test_step_tracker_rejects_a_step_that_does_not_increase():
    tracker = EpisodeStepTracker()
    tracker.check(mutated(DECISION, step=1))
    with pytest.raises(EventValidationError, match="must increase within an episode"):
        tracker.check(mutated(DECISION, step=1))


def test_step_tracker_forgets_an_ended_episode():
    tracker = EpisodeStepTracker()
    tracker.check(mutated(DECISION, step=5))
    tracker.check(END)
    tracker.check(mutated(DECISION, step=0))  # a fresh episode with the same id is accepted
    assert len(tracker) == 1


def test_step_tracker_memory_is_bounded():
    tracker = EpisodeStepTracker(max_open_episodes=10)
    for i in range(100):
        tracker.check(mutated(DECISION, episode_id=f"ep-{i}", step=0))
    assert len(tracker) == 10
