"""Event builders for the sessionizer tests: valid version-1 events with readable defaults."""

from __future__ import annotations

from typing import Any

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def decision(episode: str, step: int, ts: int | None = None, **extra: Any) -> dict[str, Any]:
    event = {
        "type": "decision",
        "event_id": f"{episode}-d{step}",
        "episode_id": episode,
        "step": step,
        "ts": T0 + step * 1000 if ts is None else ts,
        "state": {"x": float(step), "y": 1.0},
        "action": step % 2,
        "possible_actions": [0, 1],
        "propensity": 0.5,
        "policy_version": "v1",
    }
    event.update(extra)
    return event


def reward(episode: str, step: int, value: float, ts: int | None = None, **extra: Any):
    event = {
        "type": "reward",
        "event_id": extra.pop("event_id", f"{episode}-r{step}-{value}"),
        "episode_id": episode,
        "step": step,
        "ts": T0 + step * 1000 + 100 if ts is None else ts,
        "reward": value,
    }
    event.update(extra)
    return event


def end(episode: str, terminal: bool, ts: int, **extra: Any) -> dict[str, Any]:
    event = {
        "type": "episode_end",
        "event_id": f"{episode}-end",
        "episode_id": episode,
        "ts": ts,
        "terminal": terminal,
    }
    event.update(extra)
    return event
