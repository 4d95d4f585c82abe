"""The gate: publish a candidate only when the logs prove it beats what is deployed.

The rule, every part configurable in :class:`GateSettings`:

1. the gating estimator (default: DR for one-step data, weighted DR for sequential data) must
   have run and every number the decision reads must be finite -- a NaN or infinity anywhere
   (any estimate, the logged value, the incumbent's estimate, the diagnostics) rejects, because
   it means a broken model or broken data, not a close call;
2. the candidate's *lower* confidence bound must exceed the logged policy's value by the margin;
3. and the incumbent's estimate by the margin (when there is an incumbent; one that is deployed
   but could not be loaded or evaluated rejects: a candidate cannot be shown to beat it);
4. the diagnostics must pass: enough effective samples, little probability on actions the
   logger never takes, optionally no single overwhelming importance weight, no broken model.

A lower bound, not the point estimate: a candidate that is probably better is not enough, the
data must rule out "worse" at the chosen confidence. Every check is kept with its numbers in
words; the decision's ``reasons`` are the failed checks (reject) or the passed ones (publish),
``sentence`` is the verdict in one line for people and the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from learner.cpe.diagnostics import Diagnostics, fmt_count
from learner.cpe.estimate import Estimate
from learner.gate_verdict import GateCheck, GateDecision, fmt_num, verdict

if TYPE_CHECKING:
    from learner.cpe.base import Estimator


def _estimators() -> dict[str, type[Estimator[Any]]]:
    """The estimator catalog, imported on use: it imports torch (FQE), and ``GateSettings``
    is part of the settings every CLI command loads."""
    from learner.cpe.catalog import ESTIMATORS

    return ESTIMATORS


def estimator_label(name: str) -> str:
    """How people call an estimator (see :func:`learner.cpe.catalog.estimator_label`)."""
    from learner.cpe.catalog import estimator_label as label

    return label(name)


__all__ = ["MODEL_OF", "GateSettings", "decide"]

#: The model estimate each doubly robust estimator corrects: when importance weights carry
#: little information (few effective samples) a DR estimate is essentially this model's.
MODEL_OF = {
    "dr": "dm",
    "sndr": "dm",
    "switch_dr": "dm",
    "seq_dr": "fqe",
    "wdr": "fqe",
    "magic": "fqe",
}


class GateSettings(BaseModel):
    """What a candidate must prove before it is published (see module doc)."""

    model_config = ConfigDict(extra="forbid")

    one_step_estimator: str = Field(default="dr", description="Gates one-step (bandit) runs.")
    sequential_estimator: str = Field(default="wdr", description="Gates sequential runs.")
    margin: float = Field(
        default=0.02, ge=0, description="How much the lower bound must exceed each baseline."
    )
    margin_kind: Literal["relative", "absolute"] = Field(
        default="relative",
        description="relative: margin x |baseline| (0.02 = 2%); absolute: in reward units.",
    )
    beat_incumbent: bool = Field(
        default=True, description="Also require beating the incumbent's estimate."
    )
    min_effective_sample_size: float = Field(default=100.0, ge=0)
    max_unsupported_share: float = Field(
        default=0.05, ge=0, le=1, description="Share of decisions with mass off the log's support."
    )
    max_importance_weight: float | None = Field(
        default=None, gt=0, description="Reject when any importance weight exceeds this."
    )
    model_fallback: bool = Field(
        default=True,
        description="When a doubly robust gate estimator has too few effective samples, "
        "accept it only if its own model's estimate (DM / FQE) lies within its interval "
        "(± max_model_disagreement), the model carries no warning, and both lower bounds "
        "clear the baselines; False rejects on too few effective samples alone.",
    )
    max_model_disagreement: float = Field(
        default=0.05,
        ge=0,
        description="model_fallback: the model's estimate must lie within the DR estimate's "
        "confidence interval widened by this share of the model's estimate.",
    )

    @field_validator("one_step_estimator", "sequential_estimator")
    @classmethod
    def _known(cls, name: str, info: ValidationInfo) -> str:
        from learner.cpe.catalog import estimator_by_name

        kind = "one_step" if info.field_name == "one_step_estimator" else "sequential"
        estimator_by_name(name, kind, field=str(info.field_name))
        return name


def _value(x: Estimate | float) -> float:
    return float(x.value) if isinstance(x, Estimate) else float(x)


def _threshold(baseline: float, settings: GateSettings) -> float:
    if settings.margin_kind == "absolute":
        return baseline + settings.margin
    return baseline + settings.margin * abs(baseline)


def _margin_words(settings: GateSettings) -> str:
    if settings.margin == 0:
        return ""
    if settings.margin_kind == "absolute":
        return f" + margin {fmt_num(settings.margin)}"
    return f" + {settings.margin:.0%} margin"


def _kind(names: Sequence[str]) -> Literal["one_step", "sequential"]:
    estimators = _estimators()
    kinds = {estimators[n].kind for n in names if n in estimators}
    if len(kinds) != 1:
        raise ValueError(
            "estimates: cannot tell one-step from sequential from estimators "
            f"{sorted(names)}; pass kind="
        )
    return kinds.pop()


def decide(
    estimates: Mapping[str, Estimate] | Sequence[Estimate],
    diagnostics: Diagnostics,
    logged_value: Estimate | float,
    incumbent_estimate: Estimate | float | None,
    settings: GateSettings | None = None,
    *,
    kind: Literal["one_step", "sequential"] | None = None,
    candidate_version: str | None = None,
    incumbent_version: str | None = None,
    incumbent_problem: str | None = None,
) -> GateDecision:
    """Apply the gate's rule (module doc) to a candidate's CPE results.

    ``incumbent_estimate`` is the incumbent's estimate by the *same* estimator on the same
    evaluation data (None when nothing is deployed yet). ``kind`` is inferred from the
    estimators when not given. ``candidate_version`` only makes the sentence name the version.
    ``incumbent_problem`` says why a deployed incumbent (``incumbent_version``) has no estimate;
    with ``beat_incumbent`` on it fails the "beats the incumbent" check.
    """
    settings = settings or GateSettings()
    if not isinstance(estimates, Mapping):
        estimates = {e.estimator: e for e in estimates}
    kind = kind or _kind(list(estimates))
    name = settings.one_step_estimator if kind == "one_step" else settings.sequential_estimator
    label = estimator_label(name)
    logged = _value(logged_value)
    incumbent = None if incumbent_estimate is None else _value(incumbent_estimate)
    checks: list[GateCheck] = []

    gate = estimates.get(name)
    if gate is None:
        checks.append(GateCheck("estimator", False, f"the gate's estimator {label} was not run"))
        return verdict(checks, name, label, float("nan"), logged, incumbent, candidate_version)

    # 1. Finite everywhere.
    broken = [
        f"{estimator_label(n)} is {fmt_num(e.value)} [{fmt_num(e.ci_low)}, {fmt_num(e.ci_high)}]"
        for n, e in estimates.items()
        if not e.is_finite
    ]
    if not math.isfinite(logged):
        broken.append(f"the logged policy's value is {logged}")
    who = f"the incumbent {incumbent_version}" if incumbent_version else "the incumbent"
    if incumbent is not None and not math.isfinite(incumbent):
        broken.append(f"{who}'s estimate is {incumbent}")
    for attr, words in (
        ("effective_sample_size", "the effective sample size"),
        ("max_importance_weight", "the largest importance weight"),
        ("unsupported_share", "the unsupported share"),
    ):
        if not math.isfinite(getattr(diagnostics, attr)):
            broken.append(f"{words} is {getattr(diagnostics, attr)}")
    if diagnostics.broken_share > 0:
        broken.append(
            f"the candidate's probabilities or model predictions are invalid in "
            f"{diagnostics.broken_share:.1%} of decisions"
        )
    checks.append(
        GateCheck(
            "finite",
            not broken,
            "not a number: " + "; ".join(broken) + " -- a broken model or broken data"
            if broken
            else "every estimate, interval and diagnostic is a finite number",
        )
    )

    lb = float(gate.ci_low)
    # 4a. Few effective samples: the estimate rests on its model (see _model_fallback).
    ess = diagnostics.effective_sample_size
    low_ess = math.isfinite(ess) and ess < settings.min_effective_sample_size
    fallback = _model_fallback(estimates, name, diagnostics, settings) if low_ess else None
    if fallback is not None:
        check, model_lb = fallback
        checks.append(check)
        if math.isfinite(model_lb) and model_lb < lb:
            lb = model_lb  # both must clear the baselines: the lower one speaks
            label = f"{label} / {estimator_label(MODEL_OF[name])}"
    if math.isfinite(lb) and math.isfinite(logged):
        need = _threshold(logged, settings)
        ok = lb > need
        checks.append(
            GateCheck(
                "beats_logged",
                ok,
                f"{label} lower bound {fmt_num(lb)} {'>' if ok else '<='} the logged policy's "
                f"{fmt_num(logged)}{_margin_words(settings)} ({fmt_num(need)})",
            )
        )
    if settings.beat_incumbent and incumbent_problem is not None:
        checks.append(
            GateCheck(
                "beats_incumbent",
                False,
                f"{who} could not be evaluated ({incumbent_problem}): a candidate cannot be "
                "shown to beat it; fix or roll back CURRENT, or set gate.beat_incumbent=false",
            )
        )
    elif settings.beat_incumbent and incumbent is not None and math.isfinite(lb + incumbent):
        need = _threshold(incumbent, settings)
        ok = lb > need
        checks.append(
            GateCheck(
                "beats_incumbent",
                ok,
                f"{label} lower bound {fmt_num(lb)} {'>' if ok else '<='} the incumbent's "
                f"estimate {fmt_num(incumbent)}{_margin_words(settings)} ({fmt_num(need)})",
            )
        )

    # 4. Diagnostics.
    if math.isfinite(ess) and fallback is None:
        ok = ess >= settings.min_effective_sample_size
        required = fmt_count(settings.min_effective_sample_size)
        checks.append(
            GateCheck(
                "effective_sample_size",
                ok,
                f"{fmt_count(ess)} effective samples of {fmt_count(diagnostics.n_units)} "
                f"{'>=' if ok else '<'} the required {required}",
            )
        )
    share = diagnostics.unsupported_share
    if math.isfinite(share):
        ok = share <= settings.max_unsupported_share
        checks.append(
            GateCheck(
                "support",
                ok,
                f"the candidate puts probability on actions the logger never takes in "
                f"{share:.1%} of decisions ({'<=' if ok else '>'} the allowed "
                f"{settings.max_unsupported_share:.1%})",
            )
        )
    max_w = diagnostics.max_importance_weight
    if settings.max_importance_weight is not None and math.isfinite(max_w):
        ok = max_w <= settings.max_importance_weight
        checks.append(
            GateCheck(
                "max_importance_weight",
                ok,
                f"largest importance weight {fmt_num(max_w)} {'<=' if ok else '>'} the allowed "
                f"{fmt_num(settings.max_importance_weight)}",
            )
        )
    return verdict(checks, name, label, lb, logged, incumbent, candidate_version)


def _model_fallback(
    estimates: Mapping[str, Estimate],
    name: str,
    diagnostics: Diagnostics,
    settings: GateSettings,
) -> tuple[GateCheck, float] | None:
    """The check that replaces "enough effective samples" for a doubly robust estimator, and
    its model's lower bound; None when the fallback does not apply (then ESS decides).

    With near-deterministic candidates and long episodes every importance weight but a few
    vanishes, so no amount of logs gives a large effective sample size; a DR estimate is then
    its model's estimate plus a noisy correction. It is accepted only when that correction is
    consistent with the model (the model's estimate lies within the DR interval, up to a small
    slack: the weighted evidence does not contradict it), the model itself carries no
    warning (converged, enough Bellman backups, finite), and -- applied by the caller -- the
    lower of the two lower bounds clears the baselines.
    """
    model_name = MODEL_OF.get(name)
    if not settings.model_fallback or model_name is None:
        return None
    model = estimates.get(model_name)
    if model is None or not model.is_finite:
        return None
    label, model_label = estimator_label(name), estimator_label(model_name)
    gate = estimates[name]
    slack = settings.max_model_disagreement * abs(model.value)
    low, high = gate.ci_low - slack, gate.ci_high + slack
    problems = []
    if not low <= model.value <= high:
        problems.append(
            f"its {model_label} model's {fmt_num(model.value)} lies outside {label}'s interval "
            f"[{fmt_num(gate.ci_low)}, {fmt_num(gate.ci_high)}] "
            f"± {settings.max_model_disagreement:.0%}: the weighted evidence contradicts the model"
        )
    if model.warnings:
        problems.append(f"the {model_label} model is not trusted: {model.warnings[0]}")
    few = (
        f"{fmt_count(diagnostics.effective_sample_size)} effective samples of "
        f"{fmt_count(diagnostics.n_units)} (< {fmt_count(settings.min_effective_sample_size)})"
    )
    if problems:
        detail = f"{few} are too few for {label} to stand on its weights, and " + "; ".join(
            problems
        )
        return GateCheck("model_fallback", False, detail), float(model.ci_low)
    detail = (
        f"{few} are too few for the weights alone, so {label} rests on its {model_label} "
        f"model: the model's {fmt_num(model.value)} lies within {label}'s interval "
        f"[{fmt_num(gate.ci_low)}, {fmt_num(gate.ci_high)}] "
        f"± {settings.max_model_disagreement:.0%} "
        f"and the lower of their lower bounds ({fmt_num(min(gate.ci_low, model.ci_low))}) must "
        "clear the baselines"
    )
    return GateCheck("model_fallback", True, detail), float(model.ci_low)
