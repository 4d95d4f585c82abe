"""The event constructors build valid events with exactly the fields given."""

from __future__ import annotations

from schemas.event_builders import decision_event, episode_end_event, reward_event
from schemas.events import validate_event


def test_a_decision_has_its_optional_fields_only_when_given():
    plain = decision_event("d1", "e", 0, 5, {"x": 1.0}, "a", ["a", "b"], 0.5, "v1")
    validate_event(plain)
    assert "action_probs" not in plain and "context" not in plain
    full = decision_event(
        "d1", "e", 0, 5, {"x": 1.0}, "a", ["a", "b"], 0.5, "v1", [0.5, 0.5], {"user": "u"}
    )
    validate_event(full)
    assert full == {
        **plain,
        "action_probs": [0.5, 0.5],
        "context": {"user": "u"},
    }
    assert list(plain) == [
        "type", "event_id", "episode_id", "step", "ts", "state", "action", "possible_actions",
        "propensity", "policy_version",
    ]  # fmt: skip


def test_a_reward_and_an_end_have_their_optional_fields_only_when_given():
    reward = reward_event("r1", "e", 0, 6, 1.5)
    validate_event(reward)
    assert reward == {
        "type": "reward", "event_id": "r1", "episode_id": "e", "step": 0, "ts": 6, "reward": 1.5
    }  # fmt: skip
    assert reward_event("r1", "e", 0, 6, 1.5, {"m": 2.0})["metrics"] == {"m": 2.0}
    end = episode_end_event("x1", "e", 7, True)
    validate_event(end)
    assert end == {"type": "episode_end", "event_id": "x1", "episode_id": "e", "ts": 7,
                   "terminal": True}  # fmt: skip
    assert episode_end_event("x1", "e", 7, False, 3)["last_step"] == 3
