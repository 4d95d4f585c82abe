"""The gate publishes a candidate only when the logs prove it better, and says why."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from learner.cpe.config import CpeSettings
from learner.cpe.diagnostics import Diagnostics
from learner.cpe.estimate import Estimate
from learner.cpe.evaluate import evaluate_policy
from learner.gate import GateSettings, decide
from tests.learner.cpe.synthetic import Bandit

N = 3000


@pytest.fixture(scope="module")
def bandit_logs():
    """A bandit with exact true values, logged by a stochastic logger."""
    bandit = Bandit.make(seed=1)
    data, ctx = bandit.logged(N, seed=7)
    return bandit, data, ctx


def _evaluate(data, probs, reward_hat=None):
    return evaluate_policy(data, probs, CpeSettings(n_bootstrap=200), reward_hat=reward_hat)


def _gate(result, incumbent=None, settings=None, version=None):
    return decide(
        result.estimates,
        result.diagnostics,
        result.logged_value,
        incumbent,
        settings,
        candidate_version=version,
    )


def test_a_truly_better_candidate_is_published_with_a_one_sentence_verdict(bandit_logs):
    bandit, data, ctx = bandit_logs
    better = bandit.policy_toward(bandit.q, temperature=0.5)
    assert bandit.value(better) > bandit.value(bandit.logger) * 1.2
    decision = _gate(_evaluate(data, better[ctx]), version="v7")
    assert decision.decision == "publish", decision.reasons
    assert decision.estimator == "dr"
    assert decision.sentence.startswith("Published v7: DR lower bound ")
    assert "beats the logged policy's" in decision.sentence


def test_a_truly_worse_candidate_is_rejected_because_of_the_logged_policy(bandit_logs):
    bandit, data, ctx = bandit_logs
    worse = bandit.policy_toward(-bandit.q, temperature=1.0)
    assert bandit.value(worse) < bandit.value(bandit.logger)
    decision = _gate(_evaluate(data, worse[ctx]))
    assert decision.decision == "reject"
    assert decision.sentence.startswith("Rejected: DR lower bound")
    assert any("the logged policy's" in r for r in decision.reasons)


def test_a_candidate_worse_than_the_incumbent_is_rejected(bandit_logs):
    bandit, data, ctx = bandit_logs
    incumbent = bandit.policy_toward(bandit.q, temperature=0.3)
    candidate = bandit.policy_toward(bandit.q, temperature=1.0)
    truth = (bandit.value(bandit.logger), bandit.value(candidate), bandit.value(incumbent))
    assert truth[0] < truth[1] < truth[2]
    inc = _evaluate(data, incumbent[ctx])
    cand = _evaluate(data, candidate[ctx], reward_hat=inc.input.reward_hat)
    decision = _gate(cand, incumbent=inc.estimates["dr"])
    # It does beat the logged policy: the incumbent is the only reason.
    assert decision.decision == "reject"
    assert len(decision.reasons) == 1
    assert "the incumbent's estimate" in decision.reasons[0]


def test_a_candidate_off_the_loggers_support_is_rejected():
    # The logger never takes action 2; the candidate likes it.
    bandit = Bandit.make(seed=1)
    bandit.logger[:, 2] = 0.0
    bandit.logger /= bandit.logger.sum(axis=1, keepdims=True)
    data, ctx = bandit.logged(N, seed=3)
    candidate = np.tile([0.2, 0.2, 0.6], (len(bandit.q), 1))
    decision = _gate(_evaluate(data, candidate[ctx]))
    assert decision.decision == "reject"
    assert any("never takes in 100.0% of decisions" in r for r in decision.reasons)


def test_a_candidate_with_nan_probabilities_is_rejected(bandit_logs):
    bandit, data, ctx = bandit_logs
    probs = bandit.policy_toward(bandit.q, temperature=0.5)[ctx]
    probs[10] = np.nan
    decision = _gate(_evaluate(data, probs))
    assert decision.decision == "reject"
    assert decision.reasons[0].startswith("not a number")


def test_a_nan_reward_model_is_rejected(bandit_logs):
    bandit, data, ctx = bandit_logs
    better = bandit.policy_toward(bandit.q, temperature=0.5)
    reward_hat = np.full((N, 3), np.nan)
    decision = _gate(_evaluate(data, better[ctx], reward_hat=reward_hat))
    assert decision.decision == "reject"
    assert "DR is nan" in decision.reasons[0]


# -- the rule on hand-made numbers ---------------------------------------------------------


def _est(name, value, low, high):
    return Estimate(name, value, low, high, float("nan"), [])


HEALTHY = Diagnostics(
    effective_sample_size=900.0, max_importance_weight=3.0, unsupported_share=0.0, n_units=1000
)


def test_the_lower_bound_must_clear_the_relative_margin():
    # 2% over a logged value of 10 is 10.2: a lower bound of 10.1 is not enough, 10.3 is.
    logged = _est("logged", 10.0, 9.8, 10.2)
    low = decide({"dr": _est("dr", 11.0, 10.1, 11.9)}, HEALTHY, logged, None)
    high = decide({"dr": _est("dr", 11.0, 10.3, 11.7)}, HEALTHY, logged, None)
    assert (low.decision, high.decision) == ("reject", "publish")
    assert low.reasons == ["DR lower bound 10.1 <= the logged policy's 10 + 2% margin (10.2)"]
    assert high.sentence == "Publish: DR lower bound 10.3 beats the logged policy's 10 by 3%."


def test_an_absolute_margin_is_in_reward_units():
    settings = GateSettings(margin=0.5, margin_kind="absolute")
    decision = decide({"dr": _est("dr", 11.0, 10.4, 11.6)}, HEALTHY, 10.0, None, settings)
    assert decision.decision == "reject"
    assert "+ margin 0.5 (10.5)" in decision.reasons[0]


def test_sequential_runs_are_gated_by_weighted_dr_by_default():
    estimates = {"wpdis": _est("wpdis", 5.0, 1.0, 9.0), "wdr": _est("wdr", 5.0, 4.5, 5.5)}
    decision = decide(estimates, HEALTHY, 4.0, 4.1)
    assert decision.estimator == "wdr"
    assert decision.decision == "publish"
    assert decision.sentence == (
        "Publish: weighted DR lower bound 4.5 beats the logged policy's 4 by 12% "
        "and the incumbent's 4.1."
    )


def test_too_few_effective_samples_reject_when_no_model_estimate_can_stand_in():
    weak = Diagnostics(
        effective_sample_size=12.0, max_importance_weight=80.0, unsupported_share=0.0, n_units=1000
    )
    decision = decide({"dr": _est("dr", 11.0, 10.5, 11.5)}, weak, 10.0, None)
    assert decision.decision == "reject"
    [reason] = decision.reasons
    assert reason.startswith("12 effective samples of 1,000 decisions (< the required 100)")
    assert "DM, the model it corrects, was not run" in reason


def test_an_optional_weight_cap_rejects_a_dominant_weight():
    settings = GateSettings(max_importance_weight=50.0)
    spiky = Diagnostics(
        effective_sample_size=500.0, max_importance_weight=80.0, unsupported_share=0.0, n_units=1000
    )
    decision = decide({"dr": _est("dr", 11.0, 10.5, 11.5)}, spiky, 10.0, None, settings)
    assert decision.reasons == ["largest importance weight 80 > the allowed 50"]


def test_a_missing_gate_estimator_rejects():
    decision = decide({"ips": _est("ips", 11.0, 10.5, 11.5)}, HEALTHY, 10.0, None)
    assert decision.decision == "reject"
    assert decision.reasons == ["the gate's estimator DR was not run"]


def test_a_nan_anywhere_rejects_even_when_the_gate_estimate_is_fine():
    estimates = {"dr": _est("dr", 11.0, 10.5, 11.5), "dm": _est("dm", np.nan, np.nan, np.nan)}
    decision = decide(estimates, HEALTHY, 10.0, None)
    assert decision.decision == "reject"
    assert "DM is nan" in decision.reasons[0]


def test_gate_settings_refuse_an_estimator_of_the_wrong_kind():
    with pytest.raises(ValidationError, match="one_step_estimator: 'wdr' is a sequential"):
        GateSettings(one_step_estimator="wdr")
    with pytest.raises(ValidationError, match="unknown estimator 'best'"):
        GateSettings(sequential_estimator="best")
