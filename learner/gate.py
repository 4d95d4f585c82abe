"""The gate: publish a candidate only when the logs prove it beats what is deployed.

The rule, every part configurable in :class:`GateSettings`:

1. the gating estimator (default: DR for one-step data, weighted DR for sequential data) must
   have run and every number the decision reads must be finite -- a NaN or infinity anywhere
   (any estimate, the logged value, the incumbent's estimate, the diagnostics) rejects, because
   it means a broken model or broken data, not a close call;
2. the *lower* confidence bound of the estimate the decision rests on (below) must exceed the
   logged policy's value by the margin;
3. and the incumbent's estimate by the margin (when there is an incumbent; one that is deployed
   but could not be loaded or evaluated rejects: a candidate cannot be shown to beat it);
4. the diagnostics must pass: little probability on actions the logger never takes, optionally
   no single overwhelming importance weight, no broken model.

**Which estimate the decision rests on.** An importance-weighted estimate (IS, or the
importance-weighted correction of a DR estimate) is evidence only when its weights spread over
enough units: with fewer than ``min_effective_sample_size`` effective samples (long episodes,
near-deterministic candidates) its interval is degenerate and it is *uninformative* -- it
neither vetoes nor supports. The decision then rests on the model estimate the DR estimator
corrects (FQE for sequential data, DM for one-step) alone, provided that estimate is trusted:
finite and without doubts (no divergence, enough Bellman backups; see
:attr:`Estimate.doubts`) -- FQE's interval includes the model's own uncertainty (bagged FQE).
When no estimate can be trusted (a pure IS gate estimator, or a model in doubt, with too few
effective samples) the gate rejects and says what data would help. A model estimate chosen as
the gate estimator itself uses no weights and is held to the same trust.

A lower bound, not the point estimate: a candidate that is probably better is not enough, the
data must rule out "worse" at the chosen confidence. Every check is kept with its numbers in
words; the decision's ``reasons`` are the failed checks (reject) or the passed ones (publish),
``sentence`` is the verdict in one line for people and the report, and names the estimate the
decision rests on when it is not the gate estimator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from learner.cpe.diagnostics import Diagnostics, fmt_count
from learner.cpe.estimate import Estimate
from learner.gate_settings import MODEL_OF, GateSettings
from learner.gate_verdict import (
    GateCheck,
    GateDecision,
    few_samples,
    flat_log_words,
    fmt_num,
    margin_words,
    model_stands_in,
    no_evidence,
    rests_on_note,
    verdict,
)

if TYPE_CHECKING:
    from learner.cpe.base import Estimator


def _estimators() -> dict[str, type[Estimator[Any]]]:
    """The estimator catalog, imported on use: it imports torch (FQE)."""
    from learner.cpe.catalog import ESTIMATORS

    return ESTIMATORS


def estimator_label(name: str) -> str:
    """How people call an estimator (see :func:`learner.cpe.catalog.estimator_label`)."""
    from learner.cpe.catalog import estimator_label as label

    return label(name)


__all__ = ["MODEL_OF", "GateSettings", "decide"]


@dataclass(frozen=True)
class _Basis:
    """The estimate the decision rests on (``name``; None when none can be trusted), the check
    that says why, and whether that estimate reads importance weights."""

    name: str | None
    check: GateCheck
    uses_weights: bool


def _value(x: Estimate | float) -> float:
    return float(x.value) if isinstance(x, Estimate) else float(x)


def _threshold(baseline: float, settings: GateSettings) -> float:
    if settings.margin_kind == "absolute":
        return baseline + settings.margin
    return baseline + settings.margin * abs(baseline)


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
    incumbent_estimates: Mapping[str, Estimate] | None = None,
) -> GateDecision:
    """Apply the gate's rule (module doc) to a candidate's CPE results.

    ``incumbent_estimate`` is the incumbent's estimate by the *same* (gate) estimator on the
    same evaluation data (None when nothing is deployed yet). When the decision rests on the
    model estimate, the incumbent's estimate by that model is taken from
    ``incumbent_estimates`` (all the incumbent's estimates by name) when given, so that both
    are judged alike. ``kind`` is inferred from the estimators when not given.
    ``candidate_version`` only makes the sentence name the version. ``incumbent_problem`` says
    why a deployed incumbent (``incumbent_version``) has no estimate; with ``beat_incumbent``
    on it fails the "beats the incumbent" check.
    """
    settings = settings or GateSettings()
    if not isinstance(estimates, Mapping):
        estimates = {e.estimator: e for e in estimates}
    kind = kind or _kind(list(estimates))
    name = settings.one_step_estimator if kind == "one_step" else settings.sequential_estimator
    logged = _value(logged_value)
    incumbent = None if incumbent_estimate is None else _value(incumbent_estimate)
    checks: list[GateCheck] = []

    if name not in estimates:
        label = estimator_label(name)
        checks.append(GateCheck("estimator", False, f"the gate's estimator {label} was not run"))
        return verdict(checks, name, label, float("nan"), logged, incumbent, candidate_version)

    # Which estimate the decision rests on (module doc), and the incumbent judged alike.
    basis = _basis(estimates, name, kind, diagnostics, settings)
    label = estimator_label(basis.name or name)
    incumbent_words = "the incumbent's estimate"
    if basis.name is not None and basis.name != name:
        same = (incumbent_estimates or {}).get(basis.name)
        if same is not None:
            incumbent = _value(same)
        incumbent_words = (
            f"the incumbent's {label if same is not None else estimator_label(name)} estimate"
        )
    lb = float(estimates[basis.name].ci_low) if basis.name is not None else float("nan")

    # 1. Finite everywhere.
    who = f"the incumbent {incumbent_version}" if incumbent_version else "the incumbent"
    checks.append(_finite_check(estimates, diagnostics, logged, incumbent, who))
    checks.append(basis.check)

    # 2. and 3. The lower bound against the baselines.
    margin = margin_words(settings.margin, settings.margin_kind)
    if math.isfinite(lb) and math.isfinite(logged):
        need = _threshold(logged, settings)
        ok = lb > need
        checks.append(
            GateCheck(
                "beats_logged",
                ok,
                f"{label} lower bound {fmt_num(lb)} {'>' if ok else '<='} the logged policy's "
                f"{fmt_num(logged)}{margin} ({fmt_num(need)})"
                + ("" if ok else flat_log_words(logged_value, kind)),
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
                f"{label} lower bound {fmt_num(lb)} {'>' if ok else '<='} {incumbent_words} "
                f"{fmt_num(incumbent)}{margin} ({fmt_num(need)})",
            )
        )

    # 4. Diagnostics.
    checks.extend(_diagnostic_checks(diagnostics, settings, basis.uses_weights))
    note = None
    if basis.name is not None and basis.name != name:
        note = rests_on_note(few_samples(diagnostics, kind), estimator_label(name), label)
    return verdict(
        checks, basis.name or name, label, lb, logged, incumbent, candidate_version, note
    )


def _finite_check(
    estimates: Mapping[str, Estimate],
    diagnostics: Diagnostics,
    logged: float,
    incumbent: float | None,
    who: str,
) -> GateCheck:
    """Every estimate, baseline and diagnostic a number (a NaN is a broken model or data)."""
    broken = [
        f"{estimator_label(n)} is {fmt_num(e.value)} [{fmt_num(e.ci_low)}, {fmt_num(e.ci_high)}]"
        for n, e in estimates.items()
        if not e.is_finite
    ]
    if not math.isfinite(logged):
        broken.append(f"the logged policy's value is {logged}")
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
    return GateCheck(
        "finite",
        not broken,
        "not a number: " + "; ".join(broken) + " -- a broken model or broken data"
        if broken
        else "every estimate, interval and diagnostic is a finite number",
    )


def _basis(
    estimates: Mapping[str, Estimate],
    name: str,
    kind: str,
    diagnostics: Diagnostics,
    settings: GateSettings,
) -> _Basis:
    """The estimate the decision rests on, and the check that says why (module doc)."""
    label = estimator_label(name)
    ess = diagnostics.effective_sample_size
    if not _estimators()[name].uses_weights:  # a model estimate gates by itself
        doubts = estimates[name].doubts
        check = GateCheck("evidence", not doubts, model_stands_in(label, doubts))
        return _Basis(None if doubts else name, check, False)
    if not math.isfinite(ess) or ess >= settings.min_effective_sample_size:
        detail = (
            f"{fmt_count(ess)} effective samples of {fmt_count(diagnostics.n_units)} >= the "
            f"required {fmt_count(settings.min_effective_sample_size)}"
        )
        return _Basis(name, GateCheck("effective_sample_size", True, detail), True)
    # Too few effective samples: the weights are uninformative, the model may decide alone.
    few = (
        f"{few_samples(diagnostics, kind)} (< the required "
        f"{fmt_count(settings.min_effective_sample_size)}): {label}'s importance weights carry "
        "no information, so it neither vetoes nor supports"
    )
    model_name = MODEL_OF.get(name)
    model = estimates.get(model_name) if model_name is not None else None
    if model_name is None:
        why = f"{label} has no model estimate to rest on"
    elif not settings.model_fallback:
        why = "gate.model_fallback is off, so no model estimate may stand in"
    elif model is None:
        why = f"{estimator_label(model_name)}, the model it corrects, was not run"
    else:
        doubts = model.doubts if model.is_finite else ["it is not a number"]
        why = model_stands_in(estimator_label(model_name), doubts)
        if not doubts:
            return _Basis(model_name, GateCheck("evidence", True, f"{few}; {why}"), False)
    return _Basis(None, GateCheck("evidence", False, f"{few}; {why}; {no_evidence(kind)}"), True)


def _diagnostic_checks(
    diagnostics: Diagnostics, settings: GateSettings, rests_on_weights: bool
) -> list[GateCheck]:
    """Support always (no estimate sees what unlogged actions earn); the weight cap only while
    the decision rests on importance weights (uninformative weights neither veto nor support)."""
    checks = []
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
    if rests_on_weights and settings.max_importance_weight is not None and math.isfinite(max_w):
        ok = max_w <= settings.max_importance_weight
        checks.append(
            GateCheck(
                "max_importance_weight",
                ok,
                f"largest importance weight {fmt_num(max_w)} {'<=' if ok else '>'} the allowed "
                f"{fmt_num(settings.max_importance_weight)}",
            )
        )
    return checks
