"""Stage 7 of a run: what it leaves behind -- a rejection, or a publication.

Both write the report and then the ``gate_log`` row (which names the report). A publication is
ordered so that the registry only changes for a reason that is written down: store the version
unpromoted, write the report and the ``gate_log`` row, and only then swap ``CURRENT`` (or, with
``promote = false``, announce it for a staged rollout). Until the row is written the stored
version is the run's to discard (:func:`discard`) should anything fail.
"""

from __future__ import annotations

import logging
from typing import Any

from learner.gate_log import GateLogEntry, append_gate_log
from learner.run.context import RunContext, utc_now
from learner.run.gate import gate_decision, gate_estimator_for
from learner.run.manifest import candidate_manifest
from learner.run.records import Candidate, Evaluation, GateResult, Incumbent, RunData, RunResult
from learner.selection import SelectionRow

__all__ = ["discard", "publish", "reject", "reject_before_gate"]

log = logging.getLogger(__name__)


def reject_before_gate(
    ctx: RunContext,
    data: RunData,
    sentence: str,
    reasons: list[str],
    *,
    algorithm: str,
    train_result: Any = None,
) -> RunResult:
    """A rejection for a reason the gate never saw (too little data, divergence)."""
    ctx.ledger.decide("reject", sentence=sentence, reasons=reasons)
    run = RunResult(
        ctx.run_id,
        "rejected",
        sentence,
        reasons,
        algorithm=algorithm,
        incumbent_version=ctx.registry.current(),
        train_result=train_result,
        **data.result_fields(),
    )
    run.report_path = ctx.ledger.write_report()
    _log(ctx, run, decision="reject", gate_estimator=gate_estimator_for(ctx.settings, data.kind))
    return run


def reject(
    ctx: RunContext,
    data: RunData,
    candidate: Candidate,
    incumbent: Incumbent,
    evaluation: Evaluation,
    gate_result: GateResult,
    selection: list[SelectionRow],
) -> RunResult:
    """The gate's rejection: reasons are the checks that failed."""
    run = _gated_result(ctx, data, candidate, incumbent, evaluation, gate_result, selection)
    ctx.ledger.decide("reject")
    run.report_path = ctx.ledger.write_report()
    _log(ctx, run, decision="reject", **gate_result.gate_log_fields())
    return run


def publish(
    ctx: RunContext,
    data: RunData,
    candidate: Candidate,
    incumbent: Incumbent,
    evaluation: Evaluation,
    gate_result: GateResult,
    selection: list[SelectionRow],
) -> RunResult:
    """Store unpromoted, write the report and ``gate_log``, then promote (or announce)."""
    s = ctx.settings
    run = _gated_result(ctx, data, candidate, incumbent, evaluation, gate_result, selection)
    manifest = candidate_manifest(
        s, ctx.run_id, data, candidate, incumbent, evaluation, gate_result, selection
    )
    ctx.say("publishing")
    stored = ctx.stored_version = ctx.registry.publish(
        evaluation.policy_bytes, manifest, promote=False
    )
    run.published_version = stored
    # the same decision; the sentence now names the version
    decision = gate_decision(s, evaluation, gate_result.incumbent_estimate, stored)
    run.sentence, run.gate_decision = decision.sentence, decision
    if not s.promote:
        run.sentence += (
            f" It was not promoted: CURRENT stays {incumbent.version or 'unset'} until "
            f"`policyloop rollout start {stored}` or `registry promote`."
        )
    ctx.ledger.decide("publish", sentence=run.sentence, candidate_version=stored)
    run.report_path = ctx.ledger.write_report()
    _log(ctx, run, decision="publish", candidate_version=stored, **gate_result.gate_log_fields())
    if s.promote:
        ctx.registry.promote(stored)
        run.promoted = True
    else:  # kept for a staged rollout: stored, verified, logged and announced, CURRENT unchanged
        ctx.registry.announce_stored(stored)
    ctx.stored_version = None  # logged as published: no longer ours to discard
    run.status = "published"
    return run


def discard(ctx: RunContext) -> None:
    """Remove the version this run stored but did not log as published (a failed run)."""
    if ctx.stored_version is None:
        return
    try:
        ctx.registry.discard(ctx.stored_version)
    except Exception:
        log.exception("could not discard unpromoted version %s", ctx.stored_version)


def _gated_result(
    ctx: RunContext,
    data: RunData,
    candidate: Candidate,
    incumbent: Incumbent,
    evaluation: Evaluation,
    gate_result: GateResult,
    selection: list[SelectionRow],
) -> RunResult:
    decision = gate_result.decision
    return RunResult(
        ctx.run_id,
        "rejected",
        decision.sentence,
        list(decision.reasons),
        algorithm=candidate.trained.algorithm,
        incumbent_version=incumbent.version,
        candidate_cpe=evaluation.candidate,
        incumbent_cpe=evaluation.incumbent,
        train_result=candidate.trained,
        gate_decision=decision,
        eval_data=data.eval_data,
        selection=[row.to_dict() for row in selection],
        **data.result_fields(),
    )


def _log(ctx: RunContext, run: RunResult, *, decision: str, **fields: Any) -> None:
    assert run.table_version is not None
    append_gate_log(
        ctx.settings.gate_log_uri,
        [
            GateLogEntry(
                run_id=run.run_id,
                policy_name=ctx.settings.policy_name,
                started_at=ctx.started_at,
                finished_at=utc_now(),
                table_uri=run.table_uri,
                table_version=run.table_version,
                rows_used=run.rows,
                episodes_used=run.episodes,
                algorithm=run.algorithm or "unknown",
                decision=decision,
                reasons=list(run.reasons) or [run.sentence],
                incumbent_version=run.incumbent_version,
                report_path=run.report_path,
                **fields,
            )
        ],
    )
