"""The gate's verdict: its checks and decision as records, and the sentence that sums them up.

Kept apart from the rule (:mod:`learner.gate`, which runs each check and words its detail):
what reads a verdict (the run, its report, ``gate_log``) needs neither the rule's settings nor
the estimator catalog, and the one line most people read is written in one place.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["GateCheck", "GateDecision", "fmt_num", "verdict"]


@dataclass(frozen=True)
class GateCheck:
    """One condition of the rule, whether it held, and why, in words."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    """The verdict: ``decision``, the ``reasons`` for it, a one-line ``sentence``."""

    decision: Literal["publish", "reject"]
    reasons: list[str]
    sentence: str
    estimator: str
    lower_bound: float = float("nan")
    logged_value: float = float("nan")
    incumbent_value: float | None = None
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def publish(self) -> bool:
        return self.decision == "publish"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fmt_num(x: float) -> str:
    """A number as the verdict writes it: 4 significant digits, thousands grouped from 10,000,
    ``nan``/``inf`` as themselves."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 10_000 else f"{x:.4g}"


def verdict(
    checks: list[GateCheck],
    name: str,
    label: str,
    lb: float,
    logged: float,
    incumbent: float | None,
    version: str | None,
) -> GateDecision:
    """The decision the ``checks`` make: reject with the failed ones (the first in the
    sentence), or publish with all of them and a sentence that says by how much the lower bound
    ``lb`` of estimator ``name`` (``label`` in words) beats the baselines. ``version`` only
    makes the sentence name the published version."""
    failed = [c for c in checks if not c.passed]
    if failed:
        first = failed[0].detail
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        sentence = f"Rejected: {first}{more}."
        return GateDecision(
            "reject", [c.detail for c in failed], sentence, name, lb, logged, incumbent, checks
        )
    gain = (lb - logged) / abs(logged) if logged else float("inf")
    gain_words = f"by {gain:.0%}" if math.isfinite(gain) else f"by {fmt_num(lb - logged)}"
    head = f"Published {version}" if version else "Publish"
    sentence = (
        f"{head}: {label} lower bound {fmt_num(lb)} beats the logged policy's {fmt_num(logged)} "
        f"{gain_words}"
    )
    if incumbent is not None and not math.isclose(incumbent, logged):
        sentence += f" and the incumbent's {fmt_num(incumbent)}"
    if any(c.name == "model_fallback" for c in checks):
        sentence += " (too few effective samples for the weights alone: it rests on its model)"
    return GateDecision(
        "publish", [c.detail for c in checks], sentence + ".", name, lb, logged, incumbent, checks
    )
