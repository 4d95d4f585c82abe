"""Long episodes and near-deterministic candidates: when the importance weights carry too
little, the decision rests on the FQE model alone, and a worse policy is still rejected.

The rule on hand-made numbers is in ``test_gate_evidence.py``."""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe.config import CpeSettings, FqeSettings
from learner.cpe.evaluate import evaluate_policy
from learner.gate import GateSettings, decide
from tests.learner.cpe.synthetic import ChainMdp

GAMMA = 0.97


@pytest.fixture(scope="module")
def chain():
    """Episodes of ~20 steps logged uniformly; FQE with enough backups for the horizon."""
    mdp = ChainMdp.make(seed=1, p_end=0.05)
    data, state = mdp.logged(400, seed=1)
    settings = CpeSettings(
        gamma=GAMMA,
        n_bootstrap=200,
        fqe=FqeSettings(n_steps=2000, target_update_every=10, hidden_sizes=[32]),
    )
    return mdp, data, state, settings


def _near_greedy(mdp: ChainMdp, sign: float) -> np.ndarray:
    """98% on the action of the optimal (sign=1) or the worst (sign=-1) Q-function."""
    v = np.zeros(len(mdp.r))
    for _ in range(2000):  # value iteration
        q = sign * mdp.r + GAMMA * (1 - mdp.p_end) * np.einsum("sat,t->sa", mdp.p, v)
        v = q.max(axis=1)
    return np.eye(mdp.r.shape[1])[q.argmax(axis=1)] * 0.98 + 0.01


def _gate(mdp, data, state, settings, policy, gate_settings=None):
    result = evaluate_policy(data, policy[state], settings)
    decision = decide(
        result.estimates, result.diagnostics, result.logged_value, None, gate_settings
    )
    return result, decision


def test_a_better_near_deterministic_candidate_is_published_resting_on_its_model(chain):
    mdp, data, state, settings = chain
    better = _near_greedy(mdp, 1.0)
    assert mdp.value(better, GAMMA) > 1.1 * mdp.value(mdp.logger, GAMMA)
    result, decision = _gate(mdp, data, state, settings, better)
    assert result.diagnostics.effective_sample_size < 100  # the weights alone cannot carry it
    assert decision.decision == "publish", decision.reasons
    assert [c.passed for c in decision.checks if c.name == "evidence"] == [True]
    assert decision.estimator == "fqe"
    assert "the decision rests on FQE" in decision.sentence
    truth = mdp.value(better, GAMMA)
    assert result.estimates["fqe"].value == pytest.approx(truth, rel=0.05)  # what it rests on
    assert decision.lower_bound <= truth


def test_a_worse_near_deterministic_candidate_is_still_rejected(chain):
    mdp, data, state, settings = chain
    worse = _near_greedy(mdp, -1.0)
    assert mdp.value(worse, GAMMA) < mdp.value(mdp.logger, GAMMA)
    _, decision = _gate(mdp, data, state, settings, worse)
    assert decision.decision == "reject"
    assert any("the logged policy's" in r for r in decision.reasons)


def test_without_the_model_fallback_too_few_effective_samples_reject(chain):
    mdp, data, state, settings = chain
    _, decision = _gate(
        mdp, data, state, settings, _near_greedy(mdp, 1.0), GateSettings(model_fallback=False)
    )
    assert decision.decision == "reject"
    assert any(
        "effective samples of 400 episodes (< the required 100)" in r
        and "gate.model_fallback is off" in r
        for r in decision.reasons
    )


def test_weight_clipping_is_reported_in_the_estimates(chain):
    mdp, data, state, settings = chain
    clipped = settings.model_copy(update={"weight_clip": 5.0, "n_bootstrap": 50})
    result = evaluate_policy(data, _near_greedy(mdp, 1.0)[state], clipped)
    assert float(np.max(result.input.cumulative_weights)) <= 5.0
    assert any("clipped at 5" in w for w in result.estimates["wdr"].warnings)
    assert not any("clipped" in w for w in result.estimates["fqe"].warnings)
