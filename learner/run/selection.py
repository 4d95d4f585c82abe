"""Stages 5 and 6 of a run: evaluate every candidate as served, choose one, ask the gate.

With one candidate (the default) this is "evaluate it, ask the gate". With several
(:mod:`learner.selection`: trainer configurations x explorations), each is evaluated with
intervals at ``1 - alpha / K`` so that the chosen one's interval holds whichever is chosen, the
gate is asked about each against the same incumbent, and the rule of :func:`choose` picks the
one whose decision is reported, logged and acted on; the report shows them all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from learner.run.context import RunContext
from learner.run.evaluation import evaluate_incumbent, evaluate_served
from learner.run.gate import ask_gate
from learner.run.records import Candidate, Evaluation, GateResult, Incumbent, RunData
from learner.selection import SelectionRow, adjusted_alpha, choose

__all__ = ["Selected", "evaluate_and_choose"]

_NAN = float("nan")


@dataclass(frozen=True)
class Selected:
    """The chosen candidate, its evaluation and the gate's decision on it, and every
    variant's row (one row when the run had one candidate)."""

    candidate: Candidate
    evaluation: Evaluation
    gate_result: GateResult
    rows: list[SelectionRow]


def evaluate_and_choose(
    ctx: RunContext,
    data: RunData,
    candidates: list[Candidate],
    incumbent: Incumbent,
    *,
    progress: bool,
) -> Selected:
    """Evaluate each candidate that trained (at least one did), choose, and gate (module doc)."""
    s = ctx.settings
    cpe = s.cpe.model_copy(update={"alpha": adjusted_alpha(s.cpe.alpha, len(candidates))})
    judged: list[tuple[Evaluation, GateResult] | None] = []
    rows: list[SelectionRow] = []
    reward_hat = None
    inc = None
    for candidate in candidates:
        if candidate.trained.diverged:
            judged.append(None)
            reason = f"training diverged ({candidate.trained.divergence_reason})"
            rows.append(SelectionRow(candidate.variant, "n/a", _NAN, _NAN, _NAN, False,
                                     problem=reason))  # fmt: skip
            continue
        served = evaluate_served(ctx, data, candidate, cpe, progress=progress,
                                 reward_hat=reward_hat)  # fmt: skip
        if served.cpe.kind == "one_step":  # the reward model depends on the data only
            reward_hat = getattr(served.cpe.input, "reward_hat", None)
        if inc is None:
            inc = evaluate_incumbent(ctx, data, incumbent, reward_hat, progress=progress)
        evaluation = inc.with_candidate(served)
        gate_result = ask_gate(s, evaluation)
        judged.append((evaluation, gate_result))
        rows.append(_row(candidate.variant, evaluation, gate_result))
    best = choose(rows)
    chosen = judged[best]
    assert chosen is not None, "evaluate_and_choose needs a candidate that trained"
    rows[best] = replace(rows[best], chosen=True)
    return Selected(candidates[best], chosen[0], chosen[1], rows)


def _row(variant: str, evaluation: Evaluation, gate_result: GateResult) -> SelectionRow:
    """The row of one evaluated variant: the estimate its gate decision rests on."""
    decision = gate_result.decision
    estimate = evaluation.candidate.estimates.get(decision.estimator)
    if estimate is None:
        return SelectionRow(variant, decision.estimator, _NAN, _NAN, _NAN, decision.publish)
    return SelectionRow(variant, decision.estimator, estimate.value, estimate.ci_low,
                        estimate.ci_high, decision.publish)  # fmt: skip
