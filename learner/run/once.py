"""``run_once``: one learner run, its stages from top to bottom.

Problems the data or the model cause (too little data, divergence, failed diagnostics) are
verdicts: the run rejects and says why. Unexpected errors make the run ``failed``; a failed run
is not recorded in ``gate_log`` (so the next scheduled run tries the same data again), discards
the version it may have stored, and still writes its report (when it got that far) and metrics.
"""

from __future__ import annotations

import logging
import time
import uuid

from learner.run.context import RunContext, StageLines, utc_now
from learner.run.data import NO_DATA_HINT, pin_timeline, read_window, shortage, split
from learner.run.ledger import RunLedger
from learner.run.outcome import discard, publish, reject, reject_before_gate
from learner.run.records import RunResult
from learner.run.selection import evaluate_and_choose
from learner.run.training import fit_train_normalizer, load_incumbent, train_candidates
from learner.settings import LearnerSettings
from services.kafka_settings import KafkaSettings
from services.registry import Registry

__all__ = ["run_once"]

log = logging.getLogger(__name__)


def run_once(
    settings: LearnerSettings,
    timeline_uri: str,
    *,
    kafka: KafkaSettings | None = None,
    pushgateway: str | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> RunResult:
    """Run the learner once on the timeline table at ``timeline_uri``; never raises for a
    failed run.

    ``kafka`` enables announcements (when ``settings.announce``); ``pushgateway`` overrides
    ``settings.pushgateway``; ``force`` runs even when the timeline has not changed.
    """
    show = settings.progress if progress is None else progress
    started = time.monotonic()
    run_id = f"{utc_now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    started_at = utc_now()
    ctx = RunContext(
        settings=settings,
        timeline_uri=timeline_uri,
        run_id=run_id,
        started_at=started_at,
        registry=Registry(
            settings.registry_uri,
            settings.policy_name,
            kafka=kafka if settings.announce else None,
            announce_timeout_s=settings.announce_timeout_s,
        ),
        ledger=RunLedger(settings, run_id, started_at),
        say=StageLines(show),
    )
    try:
        result = _run(ctx, force=force, progress=show)
    except Exception as exc:  # a failed run must still leave metrics and the registry intact
        log.exception("learner run %s failed", ctx.run_id)
        discard(ctx)
        result = RunResult(
            run_id=ctx.run_id,
            status="failed",
            sentence=f"Nothing was published: the run failed ({type(exc).__name__}: {exc}).",
            reasons=[f"{type(exc).__name__}: {exc}"],
            table_uri=timeline_uri,
            error=f"{type(exc).__name__}: {exc}",
        )
        ctx.ledger.failed(result)
    ctx.ledger.export(
        result,
        duration_s=time.monotonic() - started,
        announce_failures=ctx.registry.announce_failures,
        pushgateway=pushgateway,
    )
    ctx.say(result.sentence)
    return result


def _run(ctx: RunContext, *, force: bool, progress: bool) -> RunResult:
    s, ledger = ctx.settings, ctx.ledger
    # 1. pin the timeline's version (or end: no table, nothing new)
    timeline = pin_timeline(ctx, force=force)
    if isinstance(timeline, RunResult):
        return timeline
    # 2. read its window
    window = read_window(ctx, timeline)
    ledger.window_read(window)
    # 3. split train/eval by episode; too little data rejects
    data = split(s, window)
    ledger.data_split(data)
    too_little = shortage(s, data)
    if too_little:
        sentence = (
            f"Nothing was published: not enough data in {timeline.uri} at version "
            f"{timeline.version} ({data.rows} rows, {data.episodes} episodes: "
            f"{'; '.join(too_little)}). {NO_DATA_HINT}"
        )
        reasons = [*too_little, NO_DATA_HINT]
        return reject_before_gate(ctx, data, sentence, reasons, algorithm=s.trainer.algorithm)
    # 4. the incumbent, the normalizer, the candidates (one unless [learner.selection] asks
    #    for more); divergence of every one rejects
    incumbent = load_incumbent(ctx)
    ledger.incumbent_loaded(incumbent)
    normalizer = fit_train_normalizer(ctx, data)
    candidates = train_candidates(ctx, data, normalizer, incumbent, progress=progress)
    ledger.trained(candidates[0], incumbent)
    trained = candidates[0].trained
    if all(c.trained.diverged for c in candidates):
        sentence = f"Nothing was published: training diverged ({trained.divergence_reason})."
        return reject_before_gate(
            ctx, data, sentence, [sentence[:-1]], algorithm=trained.algorithm, train_result=trained
        )
    # 5-6. export each, evaluate what would be served (and the incumbent), choose, ask the gate
    chosen = evaluate_and_choose(ctx, data, candidates, incumbent, progress=progress)
    candidate, evaluation, gate_result = chosen.candidate, chosen.evaluation, chosen.gate_result
    ledger.trained(candidate, incumbent)
    ledger.evaluated(evaluation)
    ledger.gated(gate_result, evaluation)
    ledger.selected(chosen.rows)
    # 7. reject, or store -> report -> gate_log -> promote
    if not gate_result.decision.publish:
        return reject(ctx, data, candidate, incumbent, evaluation, gate_result, chosen.rows)
    return publish(ctx, data, candidate, incumbent, evaluation, gate_result, chosen.rows)
