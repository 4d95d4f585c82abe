"""The gate's verdict: its checks and decision as records, and the sentence that sums them up.

Kept apart from the rule (:mod:`learner.gate`, which runs each check and words its detail):
what reads a verdict (the run, its report, ``gate_log``) needs neither the rule's settings nor
the estimator catalog, and the one line most people read is written in one place.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from learner.cpe.diagnostics import Diagnostics, fmt_count
from learner.cpe.estimate import Estimate

__all__ = [
    "GateCheck",
    "GateDecision",
    "few_samples",
    "flat_log_words",
    "fmt_num",
    "margin_words",
    "model_stands_in",
    "no_evidence",
    "rests_on_note",
    "verdict",
]


@dataclass(frozen=True)
class GateCheck:
    """One condition of the rule, whether it held, and why, in words."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    """The verdict: ``decision``, the ``reasons`` for it, a one-line ``sentence``.

    ``estimator`` is the estimate the decision rests on, whose ``lower_bound`` was compared
    with the baselines: the gate's estimator, or the model estimate (DM / FQE) when the gate
    estimator's importance weights carried no information."""

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


def margin_words(margin: float, margin_kind: str) -> str:
    """How a threshold's margin reads after its baseline: `` + 2% margin`` (``relative``),
    `` + margin 0.5`` (``absolute``), nothing for no margin."""
    if margin == 0:
        return ""
    return (
        f" + margin {fmt_num(margin)}" if margin_kind == "absolute" else f" + {margin:.0%} margin"
    )


def few_samples(diagnostics: Diagnostics, kind: str) -> str:
    """ "1.8 effective samples of 86 episodes" (``decisions`` for one-step data)."""
    unit = "decisions" if kind == "one_step" else "episodes"
    ess, n = diagnostics.effective_sample_size, diagnostics.n_units
    return f"{fmt_count(ess)} effective samples of {fmt_count(n)} {unit}"


def model_stands_in(label: str, doubts: list[str]) -> str:
    """Whether the model estimate ``label`` may decide alone: not when it has ``doubts``
    (the first is quoted), else the decision rests on it."""
    if doubts:
        return f"{label} is not trusted: {doubts[0].removesuffix('.')}"
    return (
        f"the decision rests on {label} alone, which is finite and carries no warning that "
        "doubts it"
    )


def no_evidence(kind: str) -> str:
    """What to say when no estimate can be trusted: the candidate cannot be shown better, and
    which data would help (for ``kind`` ``one_step`` or ``sequential``)."""
    more_episodes = (
        "shorter episodes (importance weights multiply over every step), or a larger eval "
        "split (more episodes)"
        if kind == "sequential"
        else "or a larger eval split (more decisions)"
    )
    return (
        "no estimate can be trusted, so the candidate cannot be shown better; what would help: "
        "more exploration in the logging policy (it rarely takes the candidate's actions), "
        + more_episodes
    )


def rests_on_note(ess: str, gate_label: str, model_label: str) -> str:
    """The publish sentence's note when the decision rests on the model estimate; ``ess`` is
    "1.8 effective samples of 86 episodes"."""
    return (
        f"{ess}: {gate_label}'s weights carry no information; the decision rests on {model_label}"
    )


def flat_log_words(logged: Estimate | float, kind: str) -> str:
    """Why nothing can be shown better when every logged unit earned the same return (the
    logged value's bootstrap interval has no width): the log holds no reward difference for any
    estimate to stand on -- e.g. a uniform logger in MountainCar never reaches the goal, and
    every episode ends at the time limit with the same sum of step penalties. Empty otherwise."""
    if not isinstance(logged, Estimate) or not logged.is_finite:
        return ""
    if logged.ci_high - logged.ci_low > 1e-9 * max(1.0, abs(logged.ci_high)):
        return ""
    unit = "episode" if kind == "sequential" else "decision"
    return (
        f"; every logged {unit} earned the same return, so the log holds no evidence that any "
        f"policy does better: log {unit}s that reach other outcomes (more, or more directed, "
        "exploration)"
    )


def verdict(
    checks: list[GateCheck],
    name: str,
    label: str,
    lb: float,
    logged: float,
    incumbent: float | None,
    version: str | None,
    note: str | None = None,
) -> GateDecision:
    """The decision the ``checks`` make: reject with the failed ones (the first in the
    sentence), or publish with all of them and a sentence that says by how much the lower bound
    ``lb`` of estimator ``name`` (``label`` in words) beats the baselines, and ends with
    ``note`` in brackets when given. ``version`` only makes the sentence name the published
    version."""
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
    if note:
        sentence += f" ({note})"
    return GateDecision(
        "publish", [c.detail for c in checks], sentence + ".", name, lb, logged, incumbent, checks
    )
