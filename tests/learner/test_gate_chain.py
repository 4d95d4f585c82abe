"""On the river chain, whose values are exact, the default gate publishes a truly better
candidate and rejects a truly worse one -- both near-deterministic, so their importance
weights carry little and the decision rests on bagged FQE."""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe.config import CpeSettings, FqeSettings
from learner.cpe.evaluate import evaluate_policy
from learner.gate import decide
from tests.learner.cpe.chain_mdp import RiverChain

GAMMA = 0.9


@pytest.fixture(scope="module")
def chain():
    """500 episodes logged uniformly; rewards with little noise so that 500 episodes prove a
    better candidate; FQE with 30 Bellman backups (gamma = 0.9 needs 29)."""
    mdp = RiverChain.make(noise=0.1)
    data, state = mdp.logged(500, seed=0)
    settings = CpeSettings(
        gamma=GAMMA,
        n_bootstrap=200,
        fqe=FqeSettings(
            hidden_sizes=[16],
            n_steps=1500,
            target_update_every=50,
            batch_size=64,
            learning_rate=0.01,
        ),
    )
    return mdp, data, state, settings


def _gate(chain, policy):
    _, data, state, settings = chain
    result = evaluate_policy(data, policy[state], settings)
    return decide(result.estimates, result.diagnostics, result.logged_value, None)


def test_a_truly_better_candidate_is_published(chain):
    mdp = chain[0]
    better = mdp.going_right(mdp.n_states, 0.9)
    assert mdp.value(better, GAMMA) > 2 * mdp.value(mdp.logger, GAMMA)
    decision = _gate(chain, better)
    assert decision.decision == "publish", decision.reasons
    assert decision.estimator == "fqe"  # too few effective samples for weighted DR
    assert decision.lower_bound <= mdp.value(better, GAMMA)


def test_a_truly_worse_candidate_is_rejected(chain):
    # Right at the left end (forgoing its small reward), left everywhere else (never reaching
    # the large one).
    mdp = chain[0]
    worse = np.tile([0.9, 0.1], (mdp.n_states, 1))
    worse[0] = [0.1, 0.9]
    assert mdp.value(worse, GAMMA) < 0.5 * mdp.value(mdp.logger, GAMMA)
    decision = _gate(chain, worse)
    assert decision.decision == "reject"
    assert any("the logged policy's" in r for r in decision.reasons)
