"""Stage 6 of a run: ask the gate (:mod:`learner.gate`) about the evaluated candidate."""

from __future__ import annotations

from learner.cpe.estimate import Estimate
from learner.gate import decide
from learner.gate_verdict import GateDecision
from learner.run.records import Evaluation, GateResult, finite_or_none
from learner.settings import LearnerSettings

__all__ = ["ask_gate", "gate_decision", "gate_estimator_for"]


def gate_estimator_for(settings: LearnerSettings, kind: str) -> str:
    """The estimator the gate reads for this kind of data (``n/a`` before the data's kind is
    known, e.g. when a run rejects for lack of data)."""
    if kind == "one_step":
        return settings.gate.one_step_estimator
    if kind == "sequential":
        return settings.gate.sequential_estimator
    return "n/a"


def gate_decision(
    settings: LearnerSettings,
    evaluation: Evaluation,
    incumbent_estimate: Estimate | None,
    version: str | None = None,
) -> GateDecision:
    """The gate's decision on the candidate; ``version`` only makes the sentence name it.

    A deployed incumbent without an estimate (not loaded, not evaluated, or its CPE lacks the
    gate's estimator) is a problem the gate rejects on while ``gate.beat_incumbent`` is on.
    All of the incumbent's estimates go to the gate too: when the decision rests on another
    estimate than the gate estimator (FQE when the weights carry too few effective samples),
    the incumbent is judged by that same estimate."""
    candidate, incumbent = evaluation.candidate, evaluation.incumbent
    problem = evaluation.incumbent_problem
    if problem is None and evaluation.incumbent_version is not None and incumbent_estimate is None:
        name = gate_estimator_for(settings, candidate.kind)
        problem = f"its CPE has no {name} estimate"
    return decide(
        candidate.estimates,
        candidate.diagnostics,
        candidate.logged_value,
        incumbent_estimate,
        settings.gate,
        kind=candidate.kind,
        candidate_version=version,
        incumbent_version=evaluation.incumbent_version,
        incumbent_problem=problem,
        incumbent_estimates=dict(incumbent.estimates) if incumbent is not None else None,
    )


def ask_gate(settings: LearnerSettings, evaluation: Evaluation) -> GateResult:
    """The gate's decision on the candidate against the logged policy and the incumbent's
    estimate by the same estimator, with the numbers ``gate_log`` keeps."""
    candidate, incumbent = evaluation.candidate, evaluation.incumbent
    name = gate_estimator_for(settings, candidate.kind)
    incumbent_estimate = incumbent.estimates.get(name) if incumbent is not None else None
    diag = candidate.diagnostics
    return GateResult(
        decision=gate_decision(settings, evaluation, incumbent_estimate),
        gate_estimator=name,
        incumbent_estimate=incumbent_estimate,
        estimates=list(candidate.estimates.values()),
        logged_value=finite_or_none(candidate.logged_value.value),
        incumbent_value=finite_or_none(incumbent_estimate.value)
        if incumbent_estimate is not None
        else None,
        effective_sample_size=finite_or_none(diag.effective_sample_size),
        max_importance_weight=finite_or_none(diag.max_importance_weight),
        unsupported_share=finite_or_none(diag.unsupported_share),
    )
