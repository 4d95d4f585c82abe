"""Rewards whose sum would overflow become dead letters, never a non-finite row."""

from __future__ import annotations

import math

import pytest

from services.sessionizer.sessionize import SessionConfig
from tests.sessionizer.factory import T0, decision, end, reward
from tests.sessionizer.test_sessionize_golden import WINDOW, run


@pytest.mark.parametrize("reward_first", [False, True])
def test_two_rewards_of_1e308_give_a_dead_letter_and_a_finite_row(reward_first: bool) -> None:
    d = decision("e", 0)
    rewards = [reward("e", 0, 1e308, event_id="r1"), reward("e", 0, 1e308, event_id="r2")]
    events = [*rewards, d] if reward_first else [d, *rewards]
    rows, dead, _ = run([*events, end("e", True, T0 + 500)], advance_to=T0 + WINDOW + 10_000)
    assert len(rows) == 1
    assert rows[0]["reward"] == 1e308 and rows[0]["reward_count"] == 1
    assert [(x.reason, x.event_type) for x in dead] == [("invalid:reward", "reward")]
    assert "overflow" in dead[0].detail


def test_metric_sums_that_would_overflow_are_dead_letters_too() -> None:
    d = decision("e", 0)
    r1 = reward("e", 0, 1.0, event_id="r1", metrics={"m": -1e308})
    r2 = reward("e", 0, 1.0, event_id="r2", metrics={"m": -1e308})
    rows, dead, _ = run([d, r1, r2, end("e", True, T0 + 500)], advance_to=T0 + 60_000)
    assert [x.reason for x in dead] == ["invalid:reward"]
    assert "metrics.m" in dead[0].detail
    assert rows[0]["metrics"] == {"m": -1e308} and math.isfinite(rows[0]["reward"])


def test_first_aggregation_does_not_sum_so_keeps_every_reward() -> None:
    config = SessionConfig(reward_window_ms=WINDOW, aggregation="first", episode_timeout_ms=60_000)
    d = decision("e", 0)
    r1, r2 = reward("e", 0, 1e308, event_id="r1"), reward("e", 0, 1e308, event_id="r2")
    rows, dead, _ = run(
        [d, r1, r2, end("e", True, T0 + 500)], config=config, advance_to=T0 + 60_000
    )
    assert dead == [] and rows[0]["reward"] == 1e308 and rows[0]["reward_count"] == 2


def test_ordinary_rewards_still_sum() -> None:
    d = decision("e", 0)
    rs = [reward("e", 0, v, event_id=f"r{v}") for v in (1.0, 2.5, -0.5)]
    rows, dead, _ = run([d, *rs, end("e", True, T0 + 500)], advance_to=T0 + 60_000)
    assert dead == [] and rows[0]["reward"] == 3.0 and rows[0]["reward_count"] == 3
