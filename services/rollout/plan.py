"""The plan of a staged rollout, kept in the registry's ``ROLLOUT`` file next to the fraction.

Keeping the plan in the registry (not in the controller's memory) means any process — the
``watch`` loop, a one-off ``tick`` from cron, ``status`` on a laptop — sees and continues the
same rollout, and a restarted controller resumes where the last one stopped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from itertools import pairwise
from typing import Any

__all__ = ["RolloutError", "RolloutPlan", "parse_steps", "parse_time"]


class RolloutError(RuntimeError):
    """A rollout operation is refused; the message says why."""


def parse_steps(steps: str | Iterable[float]) -> tuple[float, ...]:
    """Percentages (``"5,25,50,100"`` or numbers) → fractions; ValueError naming the rule.

    Rules: numbers in (0, 100], strictly increasing, ending in 100, at least one below 100 (a
    step at 100 % has no incumbent traffic to compare with: reaching it means promotion).
    """
    if isinstance(steps, str):
        parts = [p.strip() for p in steps.split(",")]
        try:
            values = [float(p.rstrip("%")) for p in parts]
        except ValueError:
            raise ValueError(
                f"steps {steps!r}: must be comma-separated percentages, e.g. 5,25,50,100"
            ) from None
    else:
        values = [float(v) for v in steps]
    text = ",".join(f"{v:g}" for v in values)
    if not values:
        raise ValueError("steps: must list at least one percentage below 100, then 100")
    if any(not 0.0 < v <= 100.0 for v in values):
        raise ValueError(f"steps {text}: every step must be a percentage in (0, 100]")
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"steps {text}: must be strictly increasing")
    if values[-1] != 100.0:
        raise ValueError(f"steps {text}: must end in 100 (the candidate takes all traffic)")
    if len(values) < 2:
        raise ValueError(
            f"steps {text}: need at least one step below 100, where the candidate is compared "
            "with the incumbent"
        )
    return tuple(v / 100.0 for v in values)


def parse_time(text: str) -> dt.datetime:
    """An ISO-8601 time (as the registry writes it) as an aware UTC datetime."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


@dataclass(frozen=True)
class RolloutPlan:
    """What ``rollout start`` decided and how far the rollout got."""

    candidate: str
    incumbent: str  # CURRENT at start, or UNIFORM_VERSION ("uniform") when there was none
    steps: tuple[float, ...]  # fractions, the last one 1.0
    step_index: int
    min_episodes: int
    started_at: str  # ISO-8601 UTC, the rollout's start
    step_started_at: str  # ISO-8601 UTC, the current step's start

    @property
    def fraction(self) -> float:
        return self.steps[self.step_index]

    @property
    def next_fraction(self) -> float:
        return self.steps[self.step_index + 1]

    @property
    def step_started(self) -> dt.datetime:
        return parse_time(self.step_started_at)

    def advanced(self, now: dt.datetime) -> RolloutPlan:
        return replace(self, step_index=self.step_index + 1, step_started_at=now.isoformat())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["steps"] = list(self.steps)
        return out

    @classmethod
    def from_json(cls, raw: Any) -> RolloutPlan:
        if not isinstance(raw, dict):
            raise RolloutError("ROLLOUT plan: must be an object")
        try:
            plan = cls(
                candidate=str(raw["candidate"]),
                incumbent=str(raw["incumbent"]),
                steps=tuple(float(s) for s in raw["steps"]),
                step_index=int(raw["step_index"]),
                min_episodes=int(raw["min_episodes"]),
                started_at=str(raw["started_at"]),
                step_started_at=str(raw["step_started_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RolloutError(f"ROLLOUT plan: unreadable ({exc!r})") from None
        if not 0 <= plan.step_index < len(plan.steps):
            raise RolloutError(f"ROLLOUT plan: step_index {plan.step_index} outside the steps")
        return plan
