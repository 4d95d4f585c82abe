"""Builds valid timeline rows for tests (the sessionizer's output format, written by hand)."""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["episode_rows"]

_EPOCH = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def episode_rows(
    episode_id: str,
    states: list[dict[str, float]],
    actions: list[str],
    rewards: list[float],
    *,
    possible: list[list[str]] | None = None,
    terminal: bool = True,
    day: int = 0,
    action_probs: list[list[float]] | None = None,
    propensities: list[float] | None = None,
    policy_version: str = "v0",
) -> list[dict[str, Any]]:
    """One episode's rows: row ``i`` links to row ``i+1``; the last row ends the episode
    (``terminal`` or truncated)."""
    n = len(states)
    possible = possible or [["0", "1"]] * n
    rows = []
    for i in range(n):
        ts = _EPOCH + dt.timedelta(days=day, seconds=i)
        last = i == n - 1
        probs = action_probs[i] if action_probs else None
        if propensities:
            propensity = propensities[i]
        elif probs:
            propensity = probs[possible[i].index(actions[i])]
        else:
            propensity = 1.0 / len(possible[i])
        rows.append(
            {
                "ds": ts.strftime("%Y-%m-%d"),
                "episode_id": episode_id,
                "step": i,
                "step_ordinal": i,
                "decision_id": f"{episode_id}/{i}",
                "ts": ts,
                "state": states[i],
                "action": actions[i],
                "possible_actions": possible[i],
                "propensity": propensity,
                "action_probs": probs,
                "reward": rewards[i],
                "metrics": None,
                "reward_count": 1,
                "next_state": None if last else states[i + 1],
                "next_action": None if last else actions[i + 1],
                "possible_next_actions": None if last else possible[i + 1],
                "next_propensity": None,
                "time_diff": None if last else 1,
                "time_since_first": i,
                "terminal": terminal and last,
                "truncated": (not terminal) and last,
                "policy_version": policy_version,
                "processed_at": ts,
            }
        )
    return rows
