"""Bagged FQE: members fitted on episode resamples, and intervals that carry their spread."""

from __future__ import annotations

import numpy as np
import pytest

from learner.cpe.bootstrap import percentile_interval
from learner.cpe.config import FqeSettings
from learner.cpe.fqe import FittedQEvaluation
from learner.cpe.fqe_fit import fit_fqe
from learner.cpe.inputs import SequentialInput
from learner.cpe.model_replicates import student_t_quantile
from learner.cpe.sequential import MAGIC, SequentialDoublyRobust, WeightedDoublyRobust
from tests.learner.cpe.chain_mdp import RiverChain

GAMMA = 0.9
SMALL = FqeSettings(hidden_sizes=[8], n_steps=300, target_update_every=10, learning_rate=0.01)


@pytest.fixture(scope="module")
def chain_input() -> SequentialInput:
    """100 episodes of the river chain, evaluated for a policy that mostly goes right."""
    mdp = RiverChain.make()
    data, state = mdp.logged(100, seed=0)
    return SequentialInput.from_logged(data, mdp.going_right(mdp.n_states, 0.9)[state], GAMMA)


@pytest.fixture(scope="module")
def bagged(chain_input):
    fqe = FittedQEvaluation(SMALL.model_copy(update={"members": 6}), seed=0)
    return fqe, fqe.estimate(chain_input, n_bootstrap=100)


@pytest.mark.parametrize(
    ("p", "df", "table"),
    [(0.975, 1, 12.7062), (0.975, 4, 2.7764), (0.975, 9, 2.2622), (0.95, 30, 1.6973)],
)
def test_student_t_quantile_matches_the_tables(p, df, table):
    assert student_t_quantile(p, df) == pytest.approx(table, abs=1e-4)
    assert student_t_quantile(1 - p, df) == pytest.approx(-table, abs=1e-4)


def test_each_member_is_fitted_on_its_own_episode_resample(bagged, chain_input):
    fqe, _ = bagged
    counts = fqe.model.counts
    assert counts.shape == (6, chain_input.n)
    assert np.all(counts.sum(axis=1) == chain_input.n)  # resamples of n episodes
    assert len({tuple(c) for c in counts}) == 6  # each its own
    assert np.all((counts == 0).any(axis=1))  # with replacement: some episodes left out


def test_a_single_member_is_fitted_on_the_logs_as_they_are(chain_input):
    model = fit_fqe(chain_input, SMALL.model_copy(update={"members": 1}))
    assert np.all(model.counts == 1)
    assert model.attach(chain_input).q_replicates is None


def test_the_estimate_is_the_members_mean_value_of_the_start_states(bagged, chain_input):
    fqe, estimate = bagged
    states = chain_input.states[:, 0]
    probs = chain_input.target_probs[:, 0]
    v0 = (fqe.model.member_q_values(states) * probs).sum(axis=2)  # (members, episodes)
    assert estimate.value == pytest.approx(v0.mean())


def test_a_replicate_is_a_members_value_on_its_own_resamples_start_states(bagged, chain_input):
    fqe, _ = bagged
    states = chain_input.states[:, 0]
    probs = chain_input.target_probs[:, 0]
    v0 = (fqe.model.member_q_values(states) * probs).sum(axis=2)
    expected = (fqe.model.counts * v0).sum(axis=1) / chain_input.n
    replicates = fqe.model_replicates(fqe.model.attach(chain_input))
    np.testing.assert_allclose(replicates, expected, rtol=1e-5)


def test_the_interval_contains_the_t_interval_over_the_replicates(bagged, chain_input):
    # value +- t(0.975, members - 1) x the replicates' standard deviation
    fqe, estimate = bagged
    replicates = fqe.model_replicates(fqe.model.attach(chain_input))
    half = student_t_quantile(0.975, 5) * np.std(replicates, ddof=1)
    assert estimate.ci_low <= estimate.value - half + 1e-12
    assert estimate.ci_high >= estimate.value + half - 1e-12


def test_fqe_interval_holds_more_than_the_start_states_spread(bagged, chain_input):
    # The fixed-model bootstrap of FQE resamples only the start states' values.
    fqe, estimate = bagged
    v0 = fqe.model.attach(chain_input).v_hat[:, :1]
    low, high, _ = percentile_interval(lambda t: t[:, 0] / len(v0), v0, 100, 0.05, 0)
    assert estimate.ci_low <= low and estimate.ci_high >= high
    assert estimate.ci_high - estimate.ci_low > 1.5 * (high - low)


@pytest.mark.parametrize("estimator", [SequentialDoublyRobust, WeightedDoublyRobust, MAGIC])
def test_the_dr_family_inherits_the_models_uncertainty(bagged, chain_input, estimator):
    fqe, _ = bagged
    with_members = fqe.model.attach(chain_input)
    fixed = with_members.with_q_hat(with_members.q_hat)  # the same (mean) Q, no members
    wide = estimator().estimate(with_members, n_bootstrap=100)
    narrow = estimator().estimate(fixed, n_bootstrap=100)
    assert wide.value == pytest.approx(narrow.value)
    assert wide.ci_low <= narrow.ci_low and wide.ci_high >= narrow.ci_high
    assert wide.ci_high - wide.ci_low > narrow.ci_high - narrow.ci_low


def test_the_same_seed_fits_the_same_members(chain_input):
    settings = SMALL.model_copy(update={"members": 3, "n_steps": 50})
    first = fit_fqe(chain_input, settings, seed=4).q_values(np.eye(6))
    again = fit_fqe(chain_input, settings, seed=4).q_values(np.eye(6))
    np.testing.assert_array_equal(first, again)
