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
from learner.run.evaluation import evaluate_candidate
from learner.run.gate import ask_gate
from learner.run.ledger import RunLedger
from learner.run.outcome import discard, publish, reject, reject_before_gate
from learner.run.records import RunResult
from learner.run.training import fit_train_normalizer, load_incumbent, train_candidate
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
    # 4. the incumbent, the normalizer, the candidate; divergence rejects
    incumbent = load_incumbent(ctx)
    ledger.incumbent_loaded(incumbent)
    normalizer = fit_train_normalizer(ctx, data)
    candidate = train_candidate(ctx, data, normalizer, incumbent, progress=progress)
    ledger.trained(candidate, incumbent)
    trained = candidate.trained
    if trained.diverged:
        sentence = f"Nothing was published: training diverged ({trained.divergence_reason})."
        return reject_before_gate(
            ctx, data, sentence, [sentence[:-1]], algorithm=trained.algorithm, train_result=trained
        )
    # 5. export the candidate, evaluate what would be served, and the incumbent
    evaluation = evaluate_candidate(ctx, data, candidate, incumbent, progress=progress)
    ledger.evaluated(evaluation)
    # 6. the gate
    gate_result = ask_gate(s, evaluation)
    ledger.gated(gate_result, evaluation)
    # 7. reject, or store -> report -> gate_log -> promote
    if not gate_result.decision.publish:
        return reject(ctx, data, candidate, incumbent, evaluation, gate_result)
    return publish(ctx, data, candidate, incumbent, evaluation, gate_result)
