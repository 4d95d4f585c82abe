"""A run that chooses among variants by held-out CPE: every variant is evaluated as served,
the chosen one is gated, published and shown beside the others."""

from __future__ import annotations

import pytest

from learner.run import run_once
from services.registry import Registry
from tests.learner.conftest import bandit_rows, fast_settings, write_timeline

pytestmark = pytest.mark.integration

SELECTION = {"trainers": [{}, {"steps": 3}], "temperatures": [0.05, 1.0]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same data learned twice: with the four variants, and with the first alone."""
    home = tmp_path_factory.mktemp("selection")
    write_timeline(home / "timeline", bandit_rows(1500, seed=0))
    chosen = run_once(
        fast_settings(home / "four", selection=SELECTION), str(home / "timeline"), force=True
    )
    alone = run_once(fast_settings(home / "one"), str(home / "timeline"), force=True)
    return home, chosen, alone


def test_every_variant_is_evaluated_and_one_is_chosen(runs):
    _, chosen, _ = runs
    assert chosen.status == "published", chosen.sentence
    assert [r["variant"] for r in chosen.selection] == [
        "defaults, temperature 0.05",
        "defaults, temperature 1",
        "steps=3, temperature 0.05",
        "steps=3, temperature 1",
    ]
    assert sum(r["chosen"] for r in chosen.selection) == 1


def test_the_chosen_variant_has_the_highest_lower_bound_of_those_the_gate_would_publish(runs):
    _, chosen, _ = runs
    publishable = [r for r in chosen.selection if r["publish"]]
    best = max(publishable, key=lambda r: r["ci_low"])
    assert best["chosen"]
    # on this bandit the fully trained, nearly greedy variant is the best served policy
    assert best["variant"] == "defaults, temperature 0.05"


def test_the_chosen_variants_interval_is_widened_for_the_choice(runs):
    # The same variant evaluated alone: the same estimate, a narrower (1 - alpha) interval.
    _, chosen, alone = runs
    gate = chosen.gate_decision.estimator
    with_choice = chosen.candidate_cpe.estimates[gate]
    single = alone.candidate_cpe.estimates[gate]
    assert with_choice.value == pytest.approx(single.value)
    assert with_choice.ci_low < single.ci_low and with_choice.ci_high > single.ci_high


def test_the_published_manifest_names_the_chosen_variants_settings_and_all_variants(runs):
    home, chosen, _ = runs
    manifest = Registry(str(home / "four" / "registry"), "test").verify("v1")
    assert manifest["exploration"]["temperature"] == 0.05
    assert manifest["trainer_settings"]["steps"] == 300
    assert manifest["selection"] == chosen.selection


def test_the_report_shows_the_selection_table(runs):
    _, chosen, alone = runs
    with open(chosen.report_path, encoding="utf-8") as f:
        report = f.read()
    assert "<h2>Selection</h2>" in report and "steps=3, temperature 1" in report
    with open(alone.report_path, encoding="utf-8") as f:
        assert "<h2>Selection</h2>" not in f.read()
