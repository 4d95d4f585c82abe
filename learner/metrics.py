"""Prometheus metrics of one learner run: pushed to a Pushgateway or written as a textfile.

A learner run is a batch job, so nothing scrapes it while it runs: each run builds its own
``CollectorRegistry`` and hands it off at the end — to a Pushgateway when one is configured
(``--pushgateway URL``), else to a ``.prom`` textfile in the reports directory that the node
exporter's textfile collector (or a person) can read. Every series carries a ``policy`` label
so several policies' learners can share one Pushgateway or textfile directory.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway, write_to_textfile

__all__ = ["JOB_NAME", "LearnerRunMetrics", "export_metrics"]

JOB_NAME = "policyloop_learner"
_OUTCOMES = ("publish", "reject", "skip", "failed")
_P = "policyloop_learner_"


class _EstimateFigures(Protocol):
    """What the metrics read of an estimate (e.g. ``cpe.Estimate``)."""

    @property
    def estimator(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def ci_low(self) -> float: ...
    @property
    def ci_high(self) -> float: ...
    @property
    def normalized(self) -> float | None: ...


class LearnerRunMetrics:
    """The gauges and counters of one run, labelled with the policy name, in their own
    Prometheus ``CollectorRegistry`` (``collectors``)."""

    def __init__(self, policy_name: str) -> None:
        self.policy_name = policy_name
        self.collectors = CollectorRegistry()
        r, lbl = self.collectors, ["policy"]
        self.last_run = Gauge(
            _P + "last_run_timestamp_seconds",
            "When the run finished (unix seconds).",
            lbl,
            registry=r,
        )
        self.duration = Gauge(_P + "run_duration_seconds", "Wall time of the run.", lbl, registry=r)
        self.table_version = Gauge(
            _P + "timeline_version", "Delta version of the timeline table read.", lbl, registry=r
        )
        self.rows = Gauge(_P + "rows_used", "Timeline rows (decisions) read.", lbl, registry=r)
        self.episodes = Gauge(_P + "episodes_used", "Episodes read.", lbl, registry=r)
        self.train_rate = Gauge(
            _P + "training_samples_per_second", "Trainer throughput.", lbl, registry=r
        )
        self.diverged = Gauge(
            _P + "training_diverged", "1 if training stopped on divergence.", lbl, registry=r
        )
        self.estimate = Gauge(
            _P + "estimate",
            "CPE estimate of a policy's value on the eval split.",
            [*lbl, "target", "estimator", "stat"],
            registry=r,
        )
        self.logged_value = Gauge(
            _P + "logged_policy_value", "On-policy value of the logging policy.", lbl, registry=r
        )
        self.ess = Gauge(
            _P + "effective_sample_size",
            "ESS of the candidate's importance weights.",
            lbl,
            registry=r,
        )
        self.max_weight = Gauge(
            _P + "max_importance_weight", "Largest importance weight.", lbl, registry=r
        )
        self.unsupported = Gauge(
            _P + "unsupported_share",
            "Share of eval decisions where the candidate puts mass on never-logged actions.",
            lbl,
            registry=r,
        )
        self.decision = Gauge(
            _P + "gate_decision",
            "1 for the outcome of this run, 0 otherwise.",
            [*lbl, "outcome"],
            registry=r,
        )
        self.published_version = Gauge(
            _P + "published_version",
            "Number N of the version vN this run published (0 when none).",
            lbl,
            registry=r,
        )
        self.runs = Counter(_P + "runs", "Runs by outcome.", [*lbl, "outcome"], registry=r)
        self.announce_failures = Counter(
            _P + "announce_failures",
            "Publications that could not be announced on the policy-updates topic.",
            lbl,
            registry=r,
        )

    # One method per fact, so the run records what it knows when it knows it.
    def record_data(self, table_version: int, rows: int, episodes: int) -> None:
        self.table_version.labels(self.policy_name).set(table_version)
        self.rows.labels(self.policy_name).set(rows)
        self.episodes.labels(self.policy_name).set(episodes)

    def record_training(self, samples_per_s: float, diverged: bool) -> None:
        self.train_rate.labels(self.policy_name).set(samples_per_s)
        self.diverged.labels(self.policy_name).set(1.0 if diverged else 0.0)

    def record_estimates(self, target: str, estimates: Iterable[_EstimateFigures]) -> None:
        """``estimates``: objects with ``estimator, value, ci_low, ci_high, normalized``."""
        for est in estimates:
            name = str(est.estimator)
            for stat in ("value", "ci_low", "ci_high", "normalized"):
                value = getattr(est, stat)
                if value is not None:
                    self.estimate.labels(self.policy_name, target, name, stat).set(float(value))

    def record_diagnostics(
        self, logged_value: float | None, ess: float, max_weight: float, unsupported: float
    ) -> None:
        if logged_value is not None:
            self.logged_value.labels(self.policy_name).set(logged_value)
        self.ess.labels(self.policy_name).set(ess)
        self.max_weight.labels(self.policy_name).set(max_weight)
        self.unsupported.labels(self.policy_name).set(unsupported)

    def record_outcome(
        self,
        outcome: str,
        *,
        duration_s: float,
        published_version: str | None = None,
        announce_failures: int = 0,
    ) -> None:
        if outcome not in _OUTCOMES:
            raise ValueError(f"metrics outcome {outcome!r}: must be one of {_OUTCOMES}")
        for name in _OUTCOMES:
            self.decision.labels(self.policy_name, name).set(1.0 if name == outcome else 0.0)
        self.runs.labels(self.policy_name, outcome).inc()
        self.duration.labels(self.policy_name).set(duration_s)
        self.last_run.labels(self.policy_name).set(time.time())
        number = 0
        if published_version:
            match = re.fullmatch(r"v(\d+)", published_version)
            number = int(match.group(1)) if match else 0
        self.published_version.labels(self.policy_name).set(number)
        if announce_failures:
            self.announce_failures.labels(self.policy_name).inc(announce_failures)
        else:
            self.announce_failures.labels(self.policy_name)  # export the zero


def export_metrics(
    metrics: LearnerRunMetrics,
    *,
    pushgateway: str | None,
    textfile_dir: str | os.PathLike[str],
    timeout_s: float = 10.0,
) -> str:
    """Push to ``pushgateway`` if given, else write ``learner_<policy>.prom``; returns where."""
    if pushgateway:
        push_to_gateway(
            pushgateway,
            job=JOB_NAME,
            registry=metrics.collectors,
            grouping_key={"policy": metrics.policy_name},
            timeout=timeout_s,
        )
        return pushgateway
    directory = Path(textfile_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"learner_{metrics.policy_name}.prom"
    write_to_textfile(str(path), metrics.collectors)  # writes a temp file and renames it
    return str(path)
