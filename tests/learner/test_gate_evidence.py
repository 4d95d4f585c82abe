"""Which estimate the gate's decision rests on: importance weights with too few effective
samples are uninformative -- they neither veto nor support -- so the decision rests on the
model estimate alone when it is trusted, and the verdict says so; with no trustworthy estimate
the gate rejects and says what data would help."""

from __future__ import annotations

import pytest

from learner.cpe.diagnostics import Diagnostics
from learner.cpe.estimate import Estimate
from learner.gate import GateSettings, decide

#: 1.8 effective samples of 86 episodes: the long-horizon check task of issue 14.
WEAK = Diagnostics(
    effective_sample_size=1.8, max_importance_weight=40.0, unsupported_share=0.0, n_units=86
)
HEALTHY = Diagnostics(
    effective_sample_size=900.0, max_importance_weight=3.0, unsupported_share=0.0, n_units=1000
)
DATA_ADVICE = (
    "what would help: more exploration in the logging policy (it rarely takes the candidate's "
    "actions), shorter episodes (importance weights multiply over every step), or a larger "
    "eval split (more episodes)"
)


def _est(name, value, low, high, warnings=()):
    return Estimate(name, value, low, high, float("nan"), list(warnings))


def _check(decision, name):
    [check] = [c for c in decision.checks if c.name == name]
    return check


def test_a_degenerate_weighted_dr_interval_that_excludes_fqe_does_not_veto():
    # Weighted DR [10, 11] "contradicts" FQE's 24 and lies below the logged 20: it is ignored.
    estimates = {"wdr": _est("wdr", 10.5, 10.0, 11.0), "fqe": _est("fqe", 24.0, 22.0, 26.0)}
    decision = decide(estimates, WEAK, 20.0, None)
    assert decision.decision == "publish", decision.reasons
    assert decision.estimator == "fqe"
    assert decision.lower_bound == 22.0


def test_a_weighted_dr_lower_bound_above_the_baseline_does_not_support():
    # Weighted DR's own lower bound (25) clears the logged 20; FQE's (19) does not: reject.
    estimates = {"wdr": _est("wdr", 27.0, 25.0, 29.0), "fqe": _est("fqe", 21.0, 19.0, 23.0)}
    decision = decide(estimates, WEAK, 20.0, None)
    assert decision.decision == "reject"
    assert decision.reasons == ["FQE lower bound 19 <= the logged policy's 20 + 2% margin (20.4)"]


def test_the_verdict_names_the_estimate_it_rests_on_and_why():
    estimates = {"wdr": _est("wdr", 10.5, 10.0, 11.0), "fqe": _est("fqe", 24.0, 22.0, 26.0)}
    decision = decide(estimates, WEAK, 20.0, None, candidate_version="v3")
    assert decision.sentence == (
        "Published v3: FQE lower bound 22 beats the logged policy's 20 by 10% (1.8 effective "
        "samples of 86 episodes: weighted DR's weights carry no information; the decision "
        "rests on FQE)."
    )
    evidence = _check(decision, "evidence")
    assert evidence.passed
    assert evidence.detail == (
        "1.8 effective samples of 86 episodes (< the required 100): weighted DR's importance "
        "weights carry no information, so it neither vetoes nor supports; the decision rests "
        "on FQE alone, which is finite and carries no warning that doubts it"
    )


def test_with_too_few_effective_samples_the_one_step_decision_rests_on_dm():
    weak = Diagnostics(
        effective_sample_size=12.0, max_importance_weight=80.0, unsupported_share=0.0, n_units=1000
    )
    estimates = {"dr": _est("dr", 9.0, 8.0, 10.0), "dm": _est("dm", 11.0, 10.5, 11.5)}
    decision = decide(estimates, weak, 10.0, None)
    assert decision.decision == "publish", decision.reasons
    assert decision.estimator == "dm"
    assert "12 effective samples of 1,000 decisions: DR's weights carry no information" in (
        decision.sentence
    )


def test_a_model_in_doubt_with_too_few_effective_samples_rejects_and_says_what_data_would_help():
    untrusted = _est("fqe", 24.0, 22.0, 26.0, ["FQE made only 30 Bellman backups ..."])
    decision = decide({"wdr": _est("wdr", 24.0, 23.0, 25.0), "fqe": untrusted}, WEAK, 20.0, None)
    assert decision.decision == "reject"
    [reason] = decision.reasons
    assert "FQE is not trusted: FQE made only 30 Bellman backups" in reason
    assert reason.endswith(DATA_ADVICE)
    assert decision.sentence.startswith("Rejected: 1.8 effective samples of 86 episodes")


def test_a_model_that_is_not_a_number_cannot_stand_in():
    estimates = {"wdr": _est("wdr", 24.0, 23.0, 25.0), "fqe": _est("fqe", *[float("nan")] * 3)}
    decision = decide(estimates, WEAK, 20.0, None)
    assert decision.decision == "reject"
    assert any("FQE is not trusted: it is not a number" in r for r in decision.reasons)


def test_a_wide_interval_note_is_no_doubt_about_the_model():
    # A wide interval limits what the model can prove (its lower bound says how much); it does
    # not make the model untrustworthy.
    wide = _est(
        "fqe",
        40.0,
        30.0,
        50.0,
        [
            "The interval [30, 50] is wider than the logged policy's value 20: too uncertain to "
            "tell the two apart."
        ],
    )
    decision = decide({"wdr": _est("wdr", 10.0, 9.0, 11.0), "fqe": wide}, WEAK, 20.0, None)
    assert decision.decision == "publish", decision.reasons
    assert wide.doubts == []


def test_a_pure_importance_sampling_gate_estimator_with_too_few_effective_samples_rejects():
    estimates = {"wpdis": _est("wpdis", 80.0, 70.0, 85.0), "fqe": _est("fqe", 80.0, 79.0, 81.0)}
    settings = GateSettings(sequential_estimator="wpdis")
    decision = decide(estimates, WEAK, 20.0, None, settings)
    assert decision.decision == "reject"
    [reason] = decision.reasons
    assert "weighted per-decision IS has no model estimate to rest on" in reason
    assert reason.endswith(DATA_ADVICE)


def test_without_the_model_fallback_too_few_effective_samples_reject():
    estimates = {"wdr": _est("wdr", 24.0, 23.0, 25.0), "fqe": _est("fqe", 24.0, 22.0, 26.0)}
    decision = decide(estimates, WEAK, 20.0, None, GateSettings(model_fallback=False))
    assert decision.decision == "reject"
    assert "gate.model_fallback is off" in decision.reasons[0]


def test_enough_effective_samples_keep_the_decision_on_the_gate_estimator():
    estimates = {"wdr": _est("wdr", 24.0, 23.0, 25.0), "fqe": _est("fqe", 19.0, 18.0, 20.0)}
    decision = decide(estimates, HEALTHY, 20.0, None)
    assert decision.decision == "publish", decision.reasons
    assert decision.estimator == "wdr"
    assert _check(decision, "effective_sample_size").detail == (
        "900 effective samples of 1,000 >= the required 100"
    )


def test_resting_on_the_model_the_incumbent_is_judged_by_the_same_model():
    estimates = {"wdr": _est("wdr", 10.0, 9.0, 11.0), "fqe": _est("fqe", 24.0, 22.0, 26.0)}
    incumbent = {"wdr": _est("wdr", 12.0, 5.0, 19.0), "fqe": _est("fqe", 22.5, 21.0, 24.0)}
    decision = decide(estimates, WEAK, 20.0, incumbent["wdr"], incumbent_estimates=incumbent)
    # 22 does not clear the incumbent's FQE 22.5 (its weighted DR's 12 would have been cleared).
    assert decision.decision == "reject"
    assert decision.reasons == [
        "FQE lower bound 22 <= the incumbent's FQE estimate 22.5 + 2% margin (22.95)"
    ]


def test_uninformative_weights_do_not_trip_the_weight_cap():
    estimates = {"wdr": _est("wdr", 10.0, 9.0, 11.0), "fqe": _est("fqe", 24.0, 22.0, 26.0)}
    settings = GateSettings(max_importance_weight=10.0)
    decision = decide(estimates, WEAK, 20.0, None, settings)
    assert decision.decision == "publish", decision.reasons
    assert not any(c.name == "max_importance_weight" for c in decision.checks)


def test_a_model_gate_estimator_in_doubt_rejects():
    stopped = "FQE stopped: Q-values exploded (|V| = 2e+06); its Q-model cannot be used."
    untrusted = _est("fqe", 24.0, 22.0, 26.0, [stopped])
    settings = GateSettings(sequential_estimator="fqe")
    decision = decide({"fqe": untrusted}, HEALTHY, 20.0, None, settings)
    assert decision.decision == "reject"
    assert decision.reasons == [f"FQE is not trusted: {stopped.removesuffix('.')}"]


def test_settings_that_still_name_the_removed_disagreement_bound_load_with_a_warning():
    with pytest.warns(FutureWarning, match="gate.max_model_disagreement is no longer used"):
        settings = GateSettings.model_validate({"max_model_disagreement": 0.05})
    assert "max_model_disagreement" not in settings.model_dump()


def test_a_log_whose_episodes_all_earned_the_same_return_rejects_saying_so():
    # MountainCar under a uniform logger: every episode hits the time limit with -200.
    flat = _est("logged", -86.6, -86.6, -86.6)
    estimates = {"wdr": _est("wdr", -90.0, -99.0, -81.0), "fqe": _est("fqe", -90.0, -96.7, -83.0)}
    decision = decide(estimates, WEAK, flat, None)
    assert decision.decision == "reject"
    assert "every logged episode earned the same return" in decision.reasons[0]
    assert "log episodes that reach other outcomes" in decision.reasons[0]


def test_a_log_with_varied_returns_rejects_without_the_flat_log_words():
    varied = _est("logged", -86.6, -90.0, -83.0)
    estimates = {"wdr": _est("wdr", -90.0, -99.0, -81.0), "fqe": _est("fqe", -90.0, -96.7, -83.0)}
    decision = decide(estimates, WEAK, varied, None)
    assert decision.decision == "reject"
    assert "same return" not in decision.reasons[0]
