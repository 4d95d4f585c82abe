"""Learner run metrics: a textfile Prometheus tools accept, or a push to a real Pushgateway."""

from __future__ import annotations

import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from learner.metrics import LearnerRunMetrics, export_metrics
from tests.deploy.monitoring_stack import require_binary, running_pushgateway


@dataclass
class _Est:
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    normalized: float


def _run_metrics() -> LearnerRunMetrics:
    metrics = LearnerRunMetrics("ranker")
    metrics.record_data(table_version=7, rows=1200, episodes=300)
    metrics.record_training(samples_per_s=5000.0, diverged=False)
    metrics.record_estimates("candidate", [_Est("dr", 1.5, 1.2, 1.8, 1.25)])
    metrics.record_diagnostics(logged_value=1.2, ess=250.0, max_weight=3.0, unsupported=0.0)
    metrics.record_outcome("publish", duration_s=12.5, published_version="v4")
    return metrics


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "instance"))
            out[(sample.name, labels)] = sample.value
    return out


def test_textfile_holds_the_runs_figures(tmp_path):
    where = export_metrics(_run_metrics(), pushgateway=None, textfile_dir=tmp_path)
    samples = _samples(Path(where).read_text())
    policy = (("policy", "ranker"),)
    assert samples[("policyloop_learner_rows_used", policy)] == 1200
    assert samples[("policyloop_learner_published_version", policy)] == 4
    assert samples[("policyloop_learner_run_duration_seconds", policy)] == 12.5
    key = (
        "policyloop_learner_estimate",
        (("estimator", "dr"), ("policy", "ranker"), ("stat", "ci_low"), ("target", "candidate")),
    )
    assert samples[key] == 1.2
    decision = (("outcome", "publish"), ("policy", "ranker"))
    assert samples[("policyloop_learner_gate_decision", decision)] == 1
    assert samples[("policyloop_learner_runs_total", decision)] == 1


def test_textfile_passes_promtool_check_metrics(tmp_path):
    promtool = require_binary("promtool")  # a failure, not a skip, under CI and make test
    where = export_metrics(_run_metrics(), pushgateway=None, textfile_dir=tmp_path)
    with open(where, "rb") as fh:
        proc = subprocess.run(
            [promtool, "check", "metrics"], stdin=fh, capture_output=True, timeout=30
        )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_unknown_outcome_names_the_allowed_ones():
    with pytest.raises(ValueError, match="must be one of"):
        LearnerRunMetrics("ranker").record_outcome("maybe", duration_s=1.0)


@pytest.fixture
def pushgateway():
    with running_pushgateway() as url:
        yield url


@pytest.mark.integration
def test_push_reaches_a_real_pushgateway_grouped_by_policy(pushgateway):
    assert export_metrics(_run_metrics(), pushgateway=pushgateway, textfile_dir="/unused") == (
        pushgateway
    )
    text = urllib.request.urlopen(pushgateway + "/metrics", timeout=5).read().decode()
    samples = _samples(text)
    labels = (("job", "policyloop_learner"), ("policy", "ranker"))
    assert samples[("policyloop_learner_rows_used", labels)] == 1200
    assert samples[("policyloop_learner_published_version", labels)] == 4
