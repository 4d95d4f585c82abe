"""The draw behind ``PolicyClient.act``: the logged propensity is exactly the chance taken."""

from __future__ import annotations

import math
import random

import pytest

from services.sdk.policy_sampling import sample_index


@pytest.mark.parametrize(
    ("u", "expected"), [(0.0, 0), (0.1999, 0), (0.2, 2), (0.5, 2), (0.9999999, 2)]
)
def test_each_action_owns_a_slice_of_the_unit_interval_as_wide_as_its_probability(u, expected):
    assert sample_index([0.2, 0.0, 0.8], u) == expected


def test_probabilities_that_do_not_sum_to_one_are_scaled_by_their_total():
    assert [sample_index([1.0, 3.0], u) for u in (0.24, 0.26)] == [0, 1]


def test_a_draw_at_the_very_top_end_gets_the_last_action_with_mass_never_a_zero_one():
    # u * total == total: what float rounding can leave at the top end (u = 1 forces it here)
    assert sample_index([0.5, 0.5, 0.0, 0.0], 1.0) == 1
    assert sample_index([0.1] * 10 + [0.0], math.nextafter(1.0, 0.0)) == 9


def test_draws_follow_the_probabilities():
    rng = random.Random(3)
    probs = [0.5, 0.3, 0.2]
    n = 20_000
    counts = [0, 0, 0]
    for _ in range(n):
        counts[sample_index(probs, rng.random())] += 1
    for p, c in zip(probs, counts, strict=True):
        assert abs(c / n - p) < 4 * math.sqrt(p * (1 - p) / n)
