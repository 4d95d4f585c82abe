"""Event builders for the sessionizer tests: valid version-1 events with readable defaults."""

from __future__ import annotations

from typing import Any

from schemas.event_builders import decision_event, episode_end_event, reward_event

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def decision(episode: str, step: int, ts: int | None = None, **extra: Any) -> dict[str, Any]:
    event = decision_event(
        f"{episode}-d{step}",
        episode,
        step,
        T0 + step * 1000 if ts is None else ts,
        {"x": float(step), "y": 1.0},
        step % 2,
        [0, 1],
        0.5,
        "v1",
    )
    event.update(extra)
    return event


def reward(episode: str, step: int, value: float, ts: int | None = None, **extra: Any):
    event = reward_event(
        extra.pop("event_id", f"{episode}-r{step}-{value}"),
        episode,
        step,
        T0 + step * 1000 + 100 if ts is None else ts,
        value,
    )
    event.update(extra)
    return event


def end(episode: str, terminal: bool, ts: int, **extra: Any) -> dict[str, Any]:
    event = episode_end_event(f"{episode}-end", episode, ts, terminal)
    event.update(extra)
    return event
