"""Timeline rows with known outcomes, written to a real Delta table as the sessionizer does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from deltalake import write_deltalake

from schemas.tables import TIMELINE_PARTITION_BY, rows_to_table

__all__ = ["episode_rows", "write_timeline"]


def episode_rows(
    episode_id: str,
    version: str,
    rewards: Sequence[float],
    first_ts: dt.datetime,
    *,
    end: str | None = "terminal",
) -> list[dict[str, Any]]:
    """One row per reward (one decision per step, one second apart).

    ``end`` is ``"terminal"``, ``"truncated"`` or None (the episode is not complete yet).
    """
    rows = []
    n = len(rewards)
    for step, reward in enumerate(rewards):
        ts = first_ts + dt.timedelta(seconds=step)
        last = step == n - 1
        rows.append(
            {
                "ds": ts.strftime("%Y-%m-%d"),
                "episode_id": episode_id,
                "step": step,
                "step_ordinal": step,
                "decision_id": f"{episode_id}/{step}",
                "ts": ts,
                "state": {"x": float(step)},
                "action": "0",
                "possible_actions": ["0", "1"],
                "propensity": 0.5,
                "action_probs": [0.5, 0.5],
                "reward": float(reward),
                "metrics": None,
                "reward_count": 1,
                "next_state": None if last else {"x": float(step + 1)},
                "next_action": None if last else "0",
                "possible_next_actions": None if last else ["0", "1"],
                "next_propensity": None if last else 0.5,
                "time_diff": None if last else 1,
                "time_since_first": step,
                "terminal": last and end == "terminal",
                "truncated": last and end == "truncated",
                "policy_version": version,
                "processed_at": ts,
            }
        )
    return rows


def write_timeline(uri: str, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to the Delta timeline at ``uri`` (created on first use)."""
    write_deltalake(uri, rows_to_table(rows), partition_by=TIMELINE_PARTITION_BY, mode="append")
