"""What a learner run writes down about itself as it goes: its report and its metrics.

Each stage's facts go in when the stage finishes, so whatever point a run stops at, the report
(written on reject, publish and failure) and the metrics (exported after every run, a failed
one included) hold everything it knew by then.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from learner.metrics import LearnerRunMetrics, export_metrics
from learner.report import ReportData, write_report
from learner.run.records import (
    Candidate,
    Evaluation,
    GateResult,
    Incumbent,
    RunData,
    RunResult,
    Window,
    finite_or_none,
)
from learner.selection import SelectionRow
from learner.settings import LearnerSettings

__all__ = ["RunLedger"]

log = logging.getLogger(__name__)

#: RunResult.status → the metrics' outcome label
_OUTCOMES = {"published": "publish", "rejected": "reject", "skipped": "skip"}


class RunLedger:
    """The report (from the moment the data is split) and the metrics of run ``run_id``."""

    def __init__(self, settings: LearnerSettings, run_id: str, started_at: dt.datetime) -> None:
        self.settings = settings
        self.run_id = run_id
        self.started_at = started_at
        self.metrics = LearnerRunMetrics(settings.policy_name)
        self.report: ReportData | None = None

    # --------------------------------------------------------------------------- stage facts
    def window_read(self, window: Window) -> None:
        self.metrics.record_data(window.timeline.version, window.rows, window.episodes)

    def data_split(self, data: RunData) -> None:
        """Start the report: from here on every outcome, failure included, writes one."""
        s = self.settings
        provenance = {
            "table_uri": data.timeline.uri,
            "table_version": data.timeline.version,
            "rows": data.rows,
            "episodes": data.episodes,
            "train_rows": len(data.train_data),
            "train_episodes": data.train_episodes,
            "eval_rows": len(data.eval_data),
            "eval_episodes": data.eval_episodes,
            "eval_fraction": s.eval_fraction,
            "split_seed": s.seed,
            "window_days": s.window_days,
            "window_rows": s.window_rows,
            "features": len(data.data.feature_names),
            "actions": ", ".join(data.data.actions_space),
        }
        self.report = ReportData(
            run_id=self.run_id,
            policy_name=s.policy_name,
            started_at=self.started_at,
            finished_at=self.started_at,
            decision="reject",
            sentence="",
            reasons=[],
            algorithm=s.trainer.algorithm,
            provenance=provenance,
        )

    def incumbent_loaded(self, incumbent: Incumbent) -> None:
        report = self._report()
        report.incumbent_version = incumbent.version
        report.warnings = list(incumbent.warnings)

    def trained(self, candidate: Candidate, incumbent: Incumbent) -> None:
        report, result = self._report(), candidate.trained
        report.algorithm = result.algorithm
        report.history = list(result.history)
        report.warnings = [*incumbent.warnings, *result.notes]
        self.metrics.record_training(result.samples_per_s, result.diverged)

    def evaluated(self, evaluation: Evaluation) -> None:
        self._report().warnings.extend(evaluation.warnings)

    def gated(self, gate_result: GateResult, evaluation: Evaluation) -> None:
        candidate, incumbent = evaluation.candidate, evaluation.incumbent
        diag = candidate.diagnostics
        self.metrics.record_estimates("candidate", candidate.estimates.values())
        if incumbent is not None:
            self.metrics.record_estimates("incumbent", incumbent.estimates.values())
        self.metrics.record_diagnostics(
            finite_or_none(candidate.logged_value.value),
            diag.effective_sample_size,
            diag.max_importance_weight,
            diag.unsupported_share,
        )
        report = self._report()
        report.gate_estimator = gate_result.gate_estimator
        report.candidate_estimates = list(candidate.estimates.values())
        report.incumbent_estimates = (
            list(incumbent.estimates.values()) if incumbent is not None else []
        )
        report.logged_value = candidate.logged_value
        report.importance_weights = candidate.importance_weights
        report.diagnostics = {
            k: v for k, v in diag.to_dict().items() if k != "warnings" and not isinstance(v, list)
        }
        report.warnings = [*report.warnings, *diag.warnings]
        report.reasons = list(gate_result.decision.reasons)
        report.sentence = gate_result.decision.sentence

    def selected(self, rows: list[SelectionRow]) -> None:
        """The variants the run chose among (the report shows them when there were several)."""
        self._report().selection = [row.to_dict() for row in rows]

    # --------------------------------------------------------------------------- the report
    def decide(
        self,
        decision: str,
        *,
        sentence: str | None = None,
        reasons: list[str] | None = None,
        candidate_version: str | None = None,
    ) -> None:
        """Record the run's decision, and its words where they changed since the gate's."""
        report = self._report()
        report.decision = decision
        if sentence is not None:
            report.sentence = sentence
        if reasons is not None:
            report.reasons = reasons
        if candidate_version is not None:
            report.candidate_version = candidate_version

    def write_report(self) -> str:
        """Write the report as it stands (finished now); returns its path."""
        report = self._report()
        report.finished_at = dt.datetime.now(dt.UTC)
        path = Path(self.settings.reports_dir) / self.settings.policy_name / f"{self.run_id}.html"
        return str(write_report(report, path))

    def failed(self, result: RunResult) -> None:
        """A failed run's report (when the run got far enough to start one): the reasons it
        had, then the error; ``result.report_path`` names it."""
        if self.report is None:
            return
        self.report.decision = "failed"
        self.report.sentence = result.sentence
        self.report.reasons = [*self.report.reasons, *result.reasons]
        try:
            result.report_path = self.write_report()
        except Exception:
            log.exception("could not write the report of failed run %s", self.run_id)

    def _report(self) -> ReportData:
        assert self.report is not None, "the report starts when the data is split"
        return self.report

    # --------------------------------------------------------------------------- metrics
    def export(
        self,
        result: RunResult,
        *,
        duration_s: float,
        announce_failures: int,
        pushgateway: str | None,
    ) -> None:
        """Record the outcome and export the metrics (Pushgateway or textfile) into
        ``result.metrics_target``; a failed export is a warning, not a failed run."""
        self.metrics.record_outcome(
            _OUTCOMES.get(result.status, "failed"),
            duration_s=duration_s,
            published_version=result.published_version,
            announce_failures=announce_failures,
        )
        try:
            result.metrics_target = export_metrics(
                self.metrics,
                pushgateway=pushgateway or self.settings.pushgateway,
                textfile_dir=self.settings.reports_dir,
            )
        except Exception as exc:
            log.warning("could not export the metrics of run %s: %s", self.run_id, exc)
