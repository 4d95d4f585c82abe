"""Timeline rows: one row of ``schemas.tables.TIMELINE_SCHEMA`` from the events that make it.

A row joins a ``decision`` event, the ``reward`` events of its step and its successor (the
episode's next decision, or none for the episode's last row). *Which* events join and *when* a
row is final are the sessionizer's rules (``services/sessionizer/sessionize.py``); *what the row
holds* given those events is defined here, next to the table's schema, so that the schema and
its rows change together.

Rows are plain dicts keyed by column name (``schemas.tables.rows_to_table`` makes Arrow of
them). Building them is on the sessionizer's hot path (one row per decision), hence
:class:`TimelineRowBuilder` rather than a bare function: it memoizes the ``ds`` of each UTC day
and reuses the converted state and actions of the last successor, which is usually the next
row's decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from schemas.tables import ds_of

__all__ = ["TimelineRowBuilder"]

_DAY_MS = 86_400_000
_ds_by_day: dict[int, str] = {}


def _ds(ts_ms: int) -> str:
    """:func:`schemas.tables.ds_of` memoized per UTC day (a strftime per row is measurable)."""
    day = ts_ms // _DAY_MS
    ds = _ds_by_day.get(day)
    if ds is None:
        if len(_ds_by_day) > 100_000:
            _ds_by_day.clear()
        ds = _ds_by_day[day] = ds_of(day * _DAY_MS)
    return ds


def _float_map(m: dict[str, Any] | None) -> dict[str, float] | None:
    if m is None:
        return None
    return {k: float(v) for k, v in m.items()}


def _action_features(
    features: dict[str, dict[str, Any]] | None, actions: list[str]
) -> list[dict[str, float]] | None:
    """``action_features`` as the column holds it: aligned with the possible actions (as
    text), an empty map for an action the decision gave no features; null without the field."""
    if features is None:
        return None
    empty: dict[str, Any] = {}
    return [{k: float(v) for k, v in features.get(a, empty).items()} for a in actions]


def _actions(actions: list[Any]) -> list[str]:
    """``possible_actions`` as table text (``schemas.tables.action_text`` of each)."""
    return [a if type(a) is str else str(a) for a in actions]


class TimelineRowBuilder:
    """Builds timeline rows for one reward aggregation (``sum`` or ``first``).

    Not thread-safe (it caches the last conversion): one per sessionizer partition.
    """

    __slots__ = ("_converted", "_default_reward", "_first")

    def __init__(self, aggregation: Literal["sum", "first"], default_reward: float) -> None:
        self._first = aggregation == "first"
        self._default_reward = default_reward
        # The decision converted last (its state map, its possible actions as text): the next
        # row's decision is usually the previous row's successor, whose ``next_*`` columns
        # hold the same values, so they are converted once.
        self._converted: tuple[Any, dict[str, float] | None, list[str]] | None = None

    def row(
        self,
        decision: dict[str, Any],
        rewards: Sequence[dict[str, Any]] | None,
        successor: dict[str, Any] | None,
        step_ordinal: int,
        first_step: int,
        terminal: bool,
        processed_at_ms: int,
    ) -> dict[str, Any]:
        """The row of ``decision``.

        ``rewards``: the reward events joined to it, in arrival order (``first`` takes the
        first; none: ``default_reward``, ``reward_count`` 0, null ``metrics``).
        ``successor``: the episode's next decision, or ``None`` for its last row, which is
        ``terminal`` or else truncated. ``step_ordinal``: rows of the episode before this one;
        ``first_step``: the step of its first row.
        """
        step = decision["step"]
        if rewards:
            reward = 0.0
            metrics: dict[str, float] | None = None
            for r in rewards[:1] if self._first else rewards:
                reward += r["reward"]
                m = r.get("metrics")
                if m is not None:
                    if metrics is None:
                        metrics = {}
                    for k, v in m.items():
                        metrics[k] = metrics.get(k, 0.0) + v
            reward_count = len(rewards)
        else:
            reward = self._default_reward
            metrics = None
            reward_count = 0
        probs = decision.get("action_probs")
        conv = self._converted
        if conv is None or conv[0] is not decision:
            conv = (decision, _float_map(decision["state"]), _actions(decision["possible_actions"]))
        action = decision["action"]
        row = {
            "ds": _ds(decision["ts"]),
            "episode_id": decision["episode_id"],
            "step": step,
            "step_ordinal": step_ordinal,
            "decision_id": decision["event_id"],
            "ts": decision["ts"] * 1000,
            "state": conv[1],
            "action": action if type(action) is str else str(action),
            "possible_actions": conv[2],
            "propensity": float(decision["propensity"]),
            "action_probs": None if probs is None else [float(p) for p in probs],
            "reward": float(reward),
            "metrics": metrics,
            "reward_count": reward_count,
            "time_since_first": step - first_step,
            "policy_version": decision["policy_version"],
            "processed_at": processed_at_ms * 1000,
            "action_features": _action_features(decision.get("action_features"), conv[2]),
        }
        if successor is not None:
            conv = self._converted = (
                successor,
                _float_map(successor["state"]),
                _actions(successor["possible_actions"]),
            )
            action = successor["action"]
            row["next_state"] = conv[1]
            row["next_action"] = action if type(action) is str else str(action)
            row["possible_next_actions"] = conv[2]
            row["next_propensity"] = float(successor["propensity"])
            row["time_diff"] = successor["step"] - step
            row["terminal"] = False
            row["truncated"] = False
        else:
            row["next_state"] = None
            row["next_action"] = None
            row["possible_next_actions"] = None
            row["next_propensity"] = None
            row["time_diff"] = None
            row["terminal"] = terminal
            row["truncated"] = not terminal
        return row
