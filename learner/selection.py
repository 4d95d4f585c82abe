"""Choosing among candidates by held-out CPE, so that users do not tune by hand.

One trainer configuration is rarely best everywhere: the suite (``make bench
BENCH=learner_suite``) shows where the defaults hold and where they do not. A run can
therefore train a few configurations side by side (``[learner.selection] trainers``: overrides
of ``[learner.trainer]``) and serve each with a few explorations (``temperatures``); every
variant is exported and evaluated *as served* on the held-out eval split, and the one the CPE
ranks best goes to the gate. Exploration is then a choice the gate's estimate accounts for:
a hotter policy explores more (future CPE has support) and loses some value now, and the
estimate of each variant is the value of exactly what it would serve.

Choosing the best of ``K`` on the same eval split that then judges it would favour a lucky
interval (the winner's curse). Every variant's intervals are therefore computed at level
``1 - alpha / K`` (Bonferroni): with probability ``1 - alpha`` all ``K`` intervals hold at once,
so the chosen one's does too, whichever is chosen. The price is wider intervals, which is why
one variant (no selection) stays the default until the suite shows the gain is worth it.

The rule (:func:`choose`): a variant the gate would publish beats one it would reject; among
those, the highest lower bound of the estimate the decision rests on; ties go to the earlier
variant (the first is the plain ``[learner.trainer]`` settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from learner.trainers.config import TrainerSettings

__all__ = ["SelectionRow", "SelectionSettings", "Variant", "adjusted_alpha", "choose", "variants"]


def _plain_trainer() -> list[dict[str, Any]]:
    return [{}]


class SelectionSettings(BaseModel):
    """Which variants a run trains and evaluates (module doc); one by default."""

    model_config = ConfigDict(extra="forbid")

    trainers: list[dict[str, Any]] = Field(
        default_factory=_plain_trainer,
        min_length=1,
        description="Overrides of [learner.trainer], one configuration each, e.g. "
        "[{}, {algorithm = 'bcq'}]; {} is the trainer's own settings.",
    )
    temperatures: list[float] = Field(
        default_factory=list,
        description="Softmax temperatures each configuration is also served with (empty: its "
        "own exploration.temperature only).",
    )

    @field_validator("trainers")
    @classmethod
    def _known_trainer_fields(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, override in enumerate(value):
            try:
                TrainerSettings.model_validate(override)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"trainers[{i}].{where}: {first['msg']}") from None
        return value

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        for i, t in enumerate(value):
            if not t > 0:
                raise ValueError(f"temperatures[{i}]: must be > 0, got {t}")
        return value

    @property
    def count(self) -> int:
        """How many variants a run evaluates."""
        return len(self.trainers) * max(1, len(self.temperatures))


@dataclass(frozen=True)
class Variant:
    """One candidate configuration: its name in the report, which trainer configuration it
    shares its network with, and its effective trainer settings (exploration included)."""

    name: str
    trainer_index: int
    settings: TrainerSettings


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if nested else value
    return out


def _describe(override: dict[str, Any]) -> str:
    if not override:
        return "defaults"
    return ", ".join(f"{k}={v}" for k, v in sorted(override.items()))


def variants(trainer: TrainerSettings, selection: SelectionSettings) -> list[Variant]:
    """The variants of a run, trainer configurations in order, each with every temperature."""
    out = []
    for i, override in enumerate(selection.trainers):
        settings = TrainerSettings.model_validate(_merged(trainer.model_dump(), override))
        temperatures = selection.temperatures or [settings.exploration.temperature]
        for t in temperatures:
            exploration = settings.exploration.model_copy(update={"temperature": t})
            served = settings.model_copy(update={"exploration": exploration})
            name = _describe(override)
            if selection.temperatures:
                name += f", temperature {t:g}"
            out.append(Variant(name, i, served))
    return out


def adjusted_alpha(alpha: float, count: int) -> float:
    """Each of ``count`` variants' interval level, so all hold at once with ``1 - alpha``."""
    return alpha / max(1, count)


@dataclass(frozen=True)
class SelectionRow:
    """One variant as the report's selection table shows it. ``problem``: why it was not
    evaluated (its trainer diverged); then the numbers are NaN."""

    variant: str
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    publish: bool
    chosen: bool = False
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "estimator": self.estimator,
            "value": self.value if math.isfinite(self.value) else None,
            "ci_low": self.ci_low if math.isfinite(self.ci_low) else None,
            "ci_high": self.ci_high if math.isfinite(self.ci_high) else None,
            "publish": self.publish,
            "chosen": self.chosen,
            "problem": self.problem,
        }


def choose(rows: list[SelectionRow]) -> int:
    """Index of the variant to gate (module doc); rows with a ``problem`` only when all have."""

    def key(i: int) -> tuple[bool, bool, float, int]:
        row = rows[i]
        low = row.ci_low if math.isfinite(row.ci_low) else -math.inf
        return (row.problem is None, row.publish, low, -i)

    return max(range(len(rows)), key=key)
