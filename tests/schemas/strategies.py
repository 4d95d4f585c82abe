"""Hypothesis strategies that generate valid version-1 events (shared by the test suites)."""

from __future__ import annotations

from hypothesis import strategies as st

from schemas.events import LIMITS

ids = st.text(min_size=1, max_size=40)
names = st.text(min_size=1, max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
int64 = st.integers(-LIMITS["int_abs_max"], LIMITS["int_abs_max"])
#: What state and metrics values may be: a float, or an integer the wire must keep an integer.
numbers = st.one_of(finite, int64)
steps = st.integers(min_value=0, max_value=LIMITS["step_max"])
timestamps = st.integers(min_value=0, max_value=LIMITS["ts_max_ms"])
actions = st.one_of(st.text(min_size=1, max_size=20), int64)


@st.composite
def decisions(draw, with_probs: bool | None = None):
    possible = draw(st.lists(actions, min_size=1, max_size=8, unique_by=str))
    index = draw(st.integers(0, len(possible) - 1))
    event = {
        "type": "decision",
        "event_id": draw(ids),
        "episode_id": draw(ids),
        "step": draw(steps),
        "ts": draw(timestamps),
        "state": draw(st.dictionaries(names, numbers, max_size=10)),
        "action": possible[index],
        "possible_actions": possible,
        "policy_version": draw(ids),
    }
    if with_probs is None:
        with_probs = draw(st.booleans())
    if with_probs:
        weights = draw(
            st.lists(st.floats(0.01, 1.0), min_size=len(possible), max_size=len(possible))
        )
        total = sum(weights)
        probs = [w / total for w in weights]
        event["action_probs"] = probs
        event["propensity"] = probs[index]
    else:
        event["propensity"] = draw(st.floats(min_value=1e-6, max_value=1.0))
    if draw(st.booleans()):
        event["context"] = draw(st.dictionaries(names, st.text(max_size=30), max_size=3))
    if draw(st.booleans()):
        event["schema_version"] = 1
    return event


@st.composite
def rewards(draw):
    event = {
        "type": "reward",
        "event_id": draw(ids),
        "episode_id": draw(ids),
        "step": draw(steps),
        "ts": draw(timestamps),
        "reward": draw(numbers),
    }
    if draw(st.booleans()):
        event["metrics"] = draw(st.dictionaries(names, numbers, max_size=4))
    return event


@st.composite
def episode_ends(draw):
    event = {
        "type": "episode_end",
        "event_id": draw(ids),
        "episode_id": draw(ids),
        "ts": draw(timestamps),
        "terminal": draw(st.booleans()),
    }
    if draw(st.booleans()):
        event["last_step"] = draw(steps)
    return event


events = st.one_of(decisions(), rewards(), episode_ends())
