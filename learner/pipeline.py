"""One learner run, end to end: data → train → CPE → gate → (publish) → gate_log, report, metrics.

The run is built so that the registry only ever changes for a reason that is written down:

1. pin the timeline's Delta version (skip when the last run of this policy already read it);
2. read the window, densify, split train/eval by a stable hash of ``episode_id``;
3. fit the normalizer on the train split; train (warm start from the incumbent when its
   features and actions match);
4. export the candidate to TorchScript *first* and evaluate the exported module — what CPE
   judges is byte for byte what would be served; evaluate the incumbent (registry ``CURRENT``,
   sha256-verified) through its own served module on the same eval split;
5. ask the gate;
6. on "publish": store the version unpromoted, write the report, append to ``gate_log``, and
   only then swap ``CURRENT``. Any failure before the swap discards the stored version, so a
   failed run leaves the registry exactly as it was;
7. metrics to a Pushgateway or a textfile.

Problems the data or the model cause (too little data, divergence, failed diagnostics) are
verdicts: the run rejects and says why. Unexpected errors make the run ``failed``; a failed run
is not recorded in ``gate_log``, so the next scheduled run tries the same data again.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learner.gate_log import GateLogEntry, append_gate_log, last_logged_table_version
from learner.metrics import LearnerRunMetrics, export_metrics
from learner.registry import Registry, RegistryError
from learner.report import ReportData, write_report
from learner.settings import LearnerSettings
from services.delta_tables import open_table
from services.kafka_settings import KafkaSettings

__all__ = [
    "ExternalEvaluation",
    "RunResult",
    "align_to_policy",
    "evaluate_external",
    "read_target_probs",
    "run_once",
    "served_probs",
]

log = logging.getLogger(__name__)

_CHUNK = 65_536
NO_DATA_HINT = (
    "Run `policyloop sessionize` first (`--until-idle S` for a batch run); rows of ended "
    "episodes are written once their reward window closes."
)


@dataclass
class RunResult:
    """What one run did. ``status``: published | rejected | skipped | failed."""

    run_id: str
    status: str
    sentence: str
    reasons: list[str] = field(default_factory=list)
    table_uri: str = ""
    table_version: int | None = None
    rows: int = 0
    episodes: int = 0
    algorithm: str | None = None
    published_version: str | None = None
    promoted: bool = False  # True when this run also swapped CURRENT to published_version
    incumbent_version: str | None = None
    report_path: str | None = None
    metrics_target: str | None = None
    error: str | None = None
    candidate_cpe: Any = None
    incumbent_cpe: Any = None
    train_result: Any = None
    gate_decision: Any = None
    eval_data: Any = None  # the LoggedData CPE ran on (benchmarks compare it with the truth)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


# --------------------------------------------------------------------------- served policies
def served_probs(module: Any, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(n, A)`` float64 probabilities of a served TorchScript policy (``probs_dense``).

    Rows are renormalized at float64 so importance weights are not skewed by float32 sums.
    """
    import torch

    states = np.ascontiguousarray(states, dtype=np.float32)
    mask = np.ascontiguousarray(mask, dtype=bool)
    out = np.empty(mask.shape, dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(states), _CHUNK):
            stop = start + _CHUNK
            probs = module.probs_dense(
                torch.from_numpy(states[start:stop]), torch.from_numpy(mask[start:stop])
            )
            out[start:stop] = probs.double().numpy()
    sums = out.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / sums


def align_to_policy(
    states: np.ndarray,
    possible_mask: np.ndarray,
    data_features: list[str],
    data_actions: list[str],
    policy_features: list[str],
    policy_actions: list[str],
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Inputs for a policy whose features/actions differ from the data's, and a function that
    maps its ``(n, A_policy)`` probabilities back onto the data's action order.

    Features the data lacks are NaN (the served normalizer uses their defaults); actions the
    data never offers are impossible; data actions the policy does not know get probability 0.
    """
    feature_index = {name: i for i, name in enumerate(data_features)}
    aligned_states = np.full((len(states), len(policy_features)), np.nan, dtype=np.float32)
    for j, name in enumerate(policy_features):
        if name in feature_index:
            aligned_states[:, j] = states[:, feature_index[name]]
    action_index = {name: i for i, name in enumerate(data_actions)}
    pairs = [(j, action_index[a]) for j, a in enumerate(policy_actions) if a in action_index]
    aligned_mask = np.zeros((len(states), len(policy_actions)), dtype=bool)
    for j, i in pairs:
        aligned_mask[:, j] = possible_mask[:, i]
    if len(states) and not aligned_mask.any(axis=1).all():
        raise ValueError(
            "policy actions: some logged decisions offer none of the policy's actions "
            f"{policy_actions}; it cannot be evaluated on this data"
        )

    def back(probs: np.ndarray) -> np.ndarray:
        out = np.zeros((len(probs), len(data_actions)), dtype=np.float64)
        for j, i in pairs:
            out[:, i] = probs[:, j]
        return out

    return aligned_states, aligned_mask, back


def _policy_probs_on(data: Any, module: Any, manifest: dict[str, Any]) -> np.ndarray:
    states, mask, back = align_to_policy(
        data.states,
        data.possible_mask,
        data.feature_names,
        data.actions_space,
        list(manifest["feature_names"]),
        list(manifest["actions"]),
    )
    return back(served_probs(module, states, mask))


# --------------------------------------------------------------------------- helpers
def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _episodes(data: Any) -> int:
    return len(np.unique(data.episode_ids.astype(str))) if len(data) else 0


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class _Stages:
    """Stage lines on stderr (rich) so a person watching a long run knows where it is."""

    def __init__(self, enabled: bool) -> None:
        self.console = None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)

    def __call__(self, message: str) -> None:
        log.info(message)
        if self.console is not None:
            self.console.print(f"[bold cyan]learner[/] {message}")


# --------------------------------------------------------------------------- the run
@dataclass
class _Context:
    settings: LearnerSettings
    run_id: str
    started_at: dt.datetime
    metrics: LearnerRunMetrics
    registry: Registry
    stage: _Stages
    report: ReportData | None = None
    stored_version: str | None = None


def run_once(
    settings: LearnerSettings,
    *,
    kafka: KafkaSettings | None = None,
    pushgateway: str | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> RunResult:
    """Run the learner once (see the module docstring); never raises for a failed run.

    ``kafka`` enables announcements (when ``settings.announce``); ``pushgateway`` overrides
    ``settings.pushgateway``; ``force`` runs even when the timeline has not changed.
    """
    show = settings.progress if progress is None else progress
    started = time.monotonic()
    ctx = _Context(
        settings=settings,
        run_id=f"{_now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        started_at=_now(),
        metrics=LearnerRunMetrics(settings.policy_name),
        registry=Registry(
            settings.registry_uri,
            settings.policy_name,
            kafka=kafka if settings.announce else None,
            announce_timeout_s=settings.announce_timeout_s,
        ),
        stage=_Stages(show),
    )
    try:
        result = _run(ctx, force=force, progress=show)
    except Exception as exc:  # a failed run must still leave metrics and the registry intact
        log.exception("learner run %s failed", ctx.run_id)
        if ctx.stored_version is not None:
            _discard(ctx)
        result = RunResult(
            run_id=ctx.run_id,
            status="failed",
            sentence=f"Nothing was published: the run failed ({type(exc).__name__}: {exc}).",
            reasons=[f"{type(exc).__name__}: {exc}"],
            table_uri=settings.timeline_uri,
            error=f"{type(exc).__name__}: {exc}",
        )
        if ctx.report is not None:
            ctx.report.decision = "failed"
            ctx.report.sentence = result.sentence
            ctx.report.reasons = [*ctx.report.reasons, *result.reasons]
            try:
                result.report_path = str(_write_report(ctx))
            except Exception:
                log.exception("could not write the report of failed run %s", ctx.run_id)
    outcomes = {"published": "publish", "rejected": "reject", "skipped": "skip"}
    outcome = outcomes.get(result.status, "failed")
    ctx.metrics.record_outcome(
        outcome,
        duration_s=time.monotonic() - started,
        published_version=result.published_version,
        announce_failures=ctx.registry.announce_failures,
    )
    try:
        result.metrics_target = export_metrics(
            ctx.metrics,
            pushgateway=pushgateway or settings.pushgateway,
            textfile_dir=settings.reports_dir,
        )
    except Exception as exc:
        log.warning("could not export the metrics of run %s: %s", ctx.run_id, exc)
    ctx.stage(result.sentence)
    return result


def _report_path(ctx: _Context) -> Path:
    return Path(ctx.settings.reports_dir) / ctx.settings.policy_name / f"{ctx.run_id}.html"


def _write_report(ctx: _Context) -> Path:
    assert ctx.report is not None
    ctx.report.finished_at = _now()
    return write_report(ctx.report, _report_path(ctx))


def _discard(ctx: _Context) -> None:
    try:
        ctx.registry.discard(ctx.stored_version)
    except Exception:
        log.exception("could not discard unpromoted version %s", ctx.stored_version)


def _run(ctx: _Context, *, force: bool, progress: bool) -> RunResult:
    from learner.data import LoggedData, load_timeline, split_by_episode

    s = ctx.settings
    # 1. pin the version
    delta = open_table(s.timeline_uri)
    if delta is None:
        sentence = (
            f"Nothing was published: no timeline table at {s.timeline_uri} (0 rows). {NO_DATA_HINT}"
        )
        return RunResult(ctx.run_id, "rejected", sentence, [sentence], s.timeline_uri)
    version = delta.version()
    last = last_logged_table_version(s.gate_log_uri, s.policy_name, s.timeline_uri)
    if last is not None and last == version and not force:
        sentence = f"Skipped: no new data since the last run (timeline version {version})."
        return RunResult(ctx.run_id, "skipped", sentence, [sentence], s.timeline_uri, version)
    # 2. data
    ctx.stage(f"reading {s.timeline_uri} at version {version}")
    snapshot = load_timeline(
        s.timeline_uri, version=version, window_days=s.window_days, window_rows=s.window_rows
    )
    data = LoggedData.from_table(snapshot.table)
    rows, episodes = len(data), _episodes(data)
    ctx.metrics.record_data(version, rows, episodes)
    train_data, eval_data = split_by_episode(data, s.eval_fraction, s.seed)
    provenance = {
        "table_uri": s.timeline_uri,
        "table_version": version,
        "rows": rows,
        "episodes": episodes,
        "train_rows": len(train_data),
        "train_episodes": _episodes(train_data),
        "eval_rows": len(eval_data),
        "eval_episodes": _episodes(eval_data),
        "eval_fraction": s.eval_fraction,
        "split_seed": s.seed,
        "window_days": s.window_days,
        "window_rows": s.window_rows,
        "features": len(data.feature_names),
        "actions": ", ".join(data.actions_space),
    }
    ctx.report = ReportData(
        run_id=ctx.run_id,
        policy_name=s.policy_name,
        started_at=ctx.started_at,
        finished_at=ctx.started_at,
        decision="reject",
        sentence="",
        reasons=[],
        algorithm=s.trainer.algorithm,
        provenance=provenance,
    )
    base = dict(table_uri=s.timeline_uri, table_version=version, rows=rows, episodes=episodes)
    kind = "one_step" if data.is_one_step else "sequential"
    too_little = []
    if len(train_data) == 0:
        too_little.append("the train split is empty")
    if provenance["eval_episodes"] < s.min_eval_episodes:
        too_little.append(
            f"the eval split has {provenance['eval_episodes']} episodes, fewer than "
            f"min_eval_episodes={s.min_eval_episodes}"
        )
    if too_little:
        sentence = (
            f"Nothing was published: not enough data in {s.timeline_uri} at version {version} "
            f"({rows} rows, {episodes} episodes: {'; '.join(too_little)}). {NO_DATA_HINT}"
        )
        return _reject(
            ctx,
            sentence,
            [*too_little, NO_DATA_HINT],
            base,
            algorithm=s.trainer.algorithm,
            kind=kind,
        )

    # 3. incumbent, normalizer, training
    incumbent_module, incumbent_manifest, incumbent_version = None, None, ctx.registry.current()
    warnings: list[str] = []
    if incumbent_version is not None:
        try:
            incumbent_module, incumbent_manifest = ctx.registry.load(incumbent_version)
        except RegistryError as exc:
            warnings.append(f"The incumbent {incumbent_version} could not be loaded: {exc}")
            incumbent_module = None
    ctx.report.incumbent_version = incumbent_version
    ctx.report.warnings = warnings

    from learner.preprocessing import fit_normalizer
    from learner.serving import export_policy, load_policy
    from learner.trainers import train

    ctx.stage(f"fitting the normalizer on {len(train_data)} train rows")
    normalizer = fit_normalizer(train_data.states, train_data.feature_names, s.preprocessing)
    warm = None
    if (
        incumbent_module is not None
        and incumbent_manifest is not None
        and incumbent_manifest["feature_names"] == data.feature_names
        and incumbent_manifest["actions"] == data.actions_space
    ):
        warm = incumbent_module
    ctx.stage("training")
    result = train(train_data, s.trainer, normalizer, warm, progress=progress)
    ctx.report.algorithm = result.algorithm
    ctx.report.history = list(result.history)
    ctx.report.warnings = [*warnings, *result.notes]
    ctx.metrics.record_training(result.samples_per_s, result.diverged)
    if result.diverged:
        sentence = f"Nothing was published: training diverged ({result.divergence_reason})."
        return _reject(
            ctx,
            sentence,
            [sentence[:-1]],
            base,
            algorithm=result.algorithm,
            kind=kind,
            train_result=result,
        )

    # 4. export, then evaluate what would be served
    policy_bytes = export_policy(result.policy, normalizer, data.feature_names, data.actions_space)
    served = load_policy(policy_bytes)
    from learner.cpe import evaluate_policy

    ctx.stage(f"evaluating the candidate on {len(eval_data)} eval decisions")
    candidate_probs = served_probs(served, eval_data.states, eval_data.possible_mask)
    candidate = evaluate_policy(eval_data, candidate_probs, s.cpe, progress=progress)
    incumbent_cpe = None
    if incumbent_module is not None and incumbent_manifest is not None:
        ctx.stage(f"evaluating the incumbent {incumbent_version}")
        try:
            incumbent_probs = _policy_probs_on(eval_data, incumbent_module, incumbent_manifest)
            reward_hat = getattr(candidate.input, "reward_hat", None)
            incumbent_cpe = evaluate_policy(
                eval_data,
                incumbent_probs,
                s.cpe,
                reward_hat=reward_hat if candidate.kind == "one_step" else None,
                progress=progress,
            )
        except ValueError as exc:
            ctx.report.warnings.append(f"The incumbent could not be evaluated: {exc}")

    # 5. gate
    from learner.gate import decide

    gate_name = _gate_estimator(s, candidate.kind)
    incumbent_estimate = (
        incumbent_cpe.estimates.get(gate_name) if incumbent_cpe is not None else None
    )

    def gate_verdict(version: str | None = None):
        return decide(
            candidate.estimates,
            candidate.diagnostics,
            candidate.logged_value,
            incumbent_estimate,
            s.gate,
            kind=candidate.kind,
            candidate_version=version,
        )

    decision = gate_verdict()
    diag = candidate.diagnostics
    ctx.metrics.record_estimates("candidate", candidate.estimates.values())
    if incumbent_cpe is not None:
        ctx.metrics.record_estimates("incumbent", incumbent_cpe.estimates.values())
    ctx.metrics.record_diagnostics(
        _finite_or_none(candidate.logged_value.value),
        diag.effective_sample_size,
        diag.max_importance_weight,
        diag.unsupported_share,
    )
    ctx.report.gate_estimator = gate_name
    ctx.report.candidate_estimates = list(candidate.estimates.values())
    ctx.report.incumbent_estimates = (
        list(incumbent_cpe.estimates.values()) if incumbent_cpe is not None else []
    )
    ctx.report.logged_value = candidate.logged_value
    ctx.report.importance_weights = candidate.importance_weights
    ctx.report.diagnostics = {
        k: v for k, v in diag.to_dict().items() if k != "warnings" and not isinstance(v, list)
    }
    ctx.report.warnings = [*ctx.report.warnings, *diag.warnings]
    ctx.report.reasons = list(decision.reasons)
    ctx.report.sentence = decision.sentence

    cpe_facts = {
        "kind": candidate.kind,
        "eval_rows": len(eval_data),
        "eval_episodes": provenance["eval_episodes"],
        "gate_estimator": gate_name,
        # how the numbers were made (FQE backups, per-decision weight clipping) and judged
        "settings": s.cpe.model_dump(mode="json"),
        "gate_settings": s.gate.model_dump(mode="json"),
        "estimates": {k: e.to_dict() for k, e in candidate.estimates.items()},
        "logged_value": candidate.logged_value.to_dict(),
        "diagnostics": diag.to_dict(),
        "incumbent": None
        if incumbent_cpe is None
        else {
            "version": incumbent_version,
            "estimates": {k: e.to_dict() for k, e in incumbent_cpe.estimates.items()},
        },
    }
    run = RunResult(
        ctx.run_id,
        "rejected",
        decision.sentence,
        list(decision.reasons),
        algorithm=result.algorithm,
        incumbent_version=incumbent_version,
        candidate_cpe=candidate,
        incumbent_cpe=incumbent_cpe,
        train_result=result,
        gate_decision=decision,
        eval_data=eval_data,
        **base,
    )
    entry = dict(
        gate_estimator=gate_name,
        estimates=list(candidate.estimates.values()),
        logged_value=_finite_or_none(candidate.logged_value.value),
        incumbent_value=_finite_or_none(incumbent_estimate.value)
        if incumbent_estimate is not None
        else None,
        effective_sample_size=_finite_or_none(diag.effective_sample_size),
        max_importance_weight=_finite_or_none(diag.max_importance_weight),
        unsupported_share=_finite_or_none(diag.unsupported_share),
    )
    if decision.decision != "publish":
        ctx.report.decision = "reject"
        run.report_path = str(_write_report(ctx))
        _log(ctx, run, decision="reject", **entry)
        return run

    # 6. publish: store unpromoted, report, gate_log, then swap CURRENT
    manifest = {
        "feature_names": list(data.feature_names),
        "normalization": normalizer.to_manifest(),
        "actions": list(data.actions_space),
        "exploration": dict(result.policy.exploration),
        "algorithm": result.algorithm,
        "training": result.summary(),
        "trainer_settings": s.trainer.model_dump(mode="json"),
        "trained_on": {
            "table_uri": s.timeline_uri,
            "table_version": version,
            "rows": len(train_data),
            "episodes": provenance["train_episodes"],
            "window_rows": rows,
            "window_episodes": episodes,
            "window_days": s.window_days,
            "eval_fraction": s.eval_fraction,
            "split_seed": s.seed,
        },
        "cpe": cpe_facts,
        "gate": {
            "decision": decision.decision,
            "reasons": list(decision.reasons),
            "sentence": decision.sentence,
        },
        "run_id": ctx.run_id,
        "warm_started_from": incumbent_version if result.warm_started else None,
    }
    ctx.stage("publishing")
    ctx.stored_version = ctx.registry.publish(policy_bytes, manifest, promote=False)
    run.published_version = ctx.stored_version
    decision = gate_verdict(ctx.stored_version)  # same verdict, the sentence names the version
    run.sentence, run.gate_decision = decision.sentence, decision
    if not s.promote:
        run.sentence += (
            f" It was not promoted: CURRENT stays {incumbent_version or 'unset'} until "
            f"`policyloop rollout start {ctx.stored_version}` or `registry promote`."
        )
    ctx.report.sentence = run.sentence
    ctx.report.candidate_version = ctx.stored_version
    ctx.report.decision = "publish"
    run.report_path = str(_write_report(ctx))
    _log(ctx, run, decision="publish", candidate_version=ctx.stored_version, **entry)
    if s.promote:
        ctx.registry.promote(ctx.stored_version)
        run.promoted = True
    else:  # kept for a staged rollout: stored, verified, logged and announced, CURRENT unchanged
        ctx.registry.announce_stored(ctx.stored_version)
    ctx.stored_version = None  # logged as published: no longer ours to discard
    run.status = "published"
    return run


def _gate_estimator(settings: LearnerSettings, kind: str) -> str:
    """The estimator the gate reads for this kind of data (``n/a`` before the data's kind is
    known, e.g. when a run rejects for lack of data)."""
    if kind == "one_step":
        return settings.gate.one_step_estimator
    if kind == "sequential":
        return settings.gate.sequential_estimator
    return "n/a"


def _reject(
    ctx: _Context,
    sentence: str,
    reasons: list[str],
    base: dict[str, Any],
    *,
    algorithm: str,
    kind: str,
    train_result: Any = None,
) -> RunResult:
    assert ctx.report is not None
    ctx.report.decision = "reject"
    ctx.report.sentence = sentence
    ctx.report.reasons = reasons
    run = RunResult(
        ctx.run_id,
        "rejected",
        sentence,
        reasons,
        algorithm=algorithm,
        incumbent_version=ctx.registry.current(),
        train_result=train_result,
        **base,
    )
    run.report_path = str(_write_report(ctx))
    _log(ctx, run, decision="reject", gate_estimator=_gate_estimator(ctx.settings, kind))
    return run


def _log(ctx: _Context, run: RunResult, *, decision: str, **fields: Any) -> None:
    assert run.table_version is not None
    append_gate_log(
        ctx.settings.gate_log_uri,
        [
            GateLogEntry(
                run_id=run.run_id,
                policy_name=ctx.settings.policy_name,
                started_at=ctx.started_at,
                finished_at=_now(),
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


# --------------------------------------------------------------------------- cpe only
@dataclass
class ExternalEvaluation:
    """CPE of one policy that is not being published (``policyloop cpe``)."""

    target: str
    scope: str
    table_uri: str
    table_version: int
    rows: int
    result: Any

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "target": self.target,
            "scope": self.scope,
            "table_uri": self.table_uri,
            "table_version": self.table_version,
            "rows": self.rows,
            "kind": r.kind,
            "estimates": {k: e.to_dict() for k, e in r.estimates.items()},
            "logged_value": r.logged_value.to_dict(),
            "diagnostics": r.diagnostics.to_dict(),
        }


def read_target_probs(uri: str, decision_ids: np.ndarray, n_actions: int) -> np.ndarray:
    """``(n, A)`` probabilities for ``decision_ids`` from a Delta table or a parquet file with
    columns ``decision_id`` (text) and ``action_probs`` (list of float over the action space).

    Raises ValueError naming the column and the rule for missing decisions, wrong lengths,
    negative or non-finite probabilities, and rows that do not sum to 1.
    """
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    columns = ["decision_id", "action_probs"]
    delta = None if Path(uri).is_file() else open_table(uri)
    try:
        if delta is not None:
            table = pads.dataset(delta.file_uris(), format="parquet").to_table(columns=columns)
        else:
            if not Path(uri).exists():
                raise FileNotFoundError(f"target-probs {uri!r}: no Delta table or parquet file")
            table = pq.read_table(uri, columns=columns)
    except (KeyError, ValueError) as exc:
        if "decision_id" in str(exc) or "action_probs" in str(exc) or "No match" in str(exc):
            raise ValueError(
                f"target-probs {uri!r}: needs columns decision_id and action_probs ({exc})"
            ) from None
        raise
    index = {d: i for i, d in enumerate(table.column("decision_id").to_pylist())}
    lists = table.column("action_probs").to_pylist()
    wanted = [str(d) for d in decision_ids]
    missing = [d for d in wanted if d not in index]
    if missing:
        raise ValueError(
            f"target-probs decision_id: {len(missing)} of {len(wanted)} evaluated decisions have "
            f"no row (e.g. {missing[0]!r})"
        )
    out = np.empty((len(wanted), n_actions), dtype=np.float64)
    for row, decision in enumerate(wanted):
        probs = lists[index[decision]]
        if probs is None or len(probs) != n_actions:
            raise ValueError(
                f"target-probs action_probs of {decision!r}: must list {n_actions} "
                "probabilities, one per action of the action space"
            )
        out[row] = probs
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError("target-probs action_probs: every probability must be finite and ≥ 0")
    sums = out.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if len(bad):
        raise ValueError(
            f"target-probs action_probs of {wanted[bad[0]]!r}: must sum to 1, sums to "
            f"{sums[bad[0]]:.6g}"
        )
    return out


def evaluate_external(
    settings: LearnerSettings,
    *,
    version: str | None = None,
    target_probs_uri: str | None = None,
    all_data: bool = False,
) -> ExternalEvaluation:
    """CPE of a registry ``version`` or of per-decision ``target_probs_uri`` probabilities.

    Evaluated on the eval split of the newest timeline window (the episodes a learner run
    never trains on), or on every decision with ``all_data``. Nothing is published or logged.
    """
    from learner.cpe import evaluate_policy
    from learner.data import LoggedData, load_timeline, split_by_episode

    if (version is None) == (target_probs_uri is None):
        raise ValueError("give exactly one of version or target_probs_uri")
    snapshot = load_timeline(
        settings.timeline_uri, window_days=settings.window_days, window_rows=settings.window_rows
    )
    data = LoggedData.from_table(snapshot.table)
    scope = "all decisions"
    if not all_data:
        data = split_by_episode(data, settings.eval_fraction, settings.seed)[1]
        scope = "the eval split"
    if len(data) == 0:
        raise ValueError(f"timeline {settings.timeline_uri!r}: no decisions to evaluate on")
    if version is not None:
        registry = Registry(settings.registry_uri, settings.policy_name)
        module, manifest = registry.load(version)
        probs = _policy_probs_on(data, module, manifest)
        target = f"{settings.policy_name} {version}"
    else:
        assert target_probs_uri is not None
        probs = read_target_probs(target_probs_uri, data.decision_ids, data.n_actions)
        if np.any((probs > 0) & ~data.possible_mask):
            raise ValueError(
                "target-probs action_probs: probability on an action that is not possible in "
                "that decision"
            )
        target = target_probs_uri
    result = evaluate_policy(data, probs, settings.cpe)
    return ExternalEvaluation(
        target,
        f"{scope} ({len(data)} decisions)",
        settings.timeline_uri,
        snapshot.version,
        len(data),
        result,
    )
