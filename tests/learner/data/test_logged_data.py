"""LoggedData from in-memory Arrow tables: action space, masks, logged probabilities, split."""

from __future__ import annotations

import numpy as np
import pytest

from learner.data import LoggedData, action_space, split_by_episode
from schemas.tables import rows_to_table
from tests.learner.data.timeline_rows import episode_rows


def _many_episodes(n: int) -> LoggedData:
    rows = []
    for i in range(n):
        rows += episode_rows(f"ep{i}", [{"x": float(i)}, {"x": i + 0.5}], ["0", "1"], [1.0, 0.0])
    return LoggedData.from_table(rows_to_table(rows))


def test_integer_actions_sort_numerically():
    rows = episode_rows("e", [{"x": 1.0}], ["10"], [0.0], possible=[["10", "9", "2"]])
    assert action_space(rows_to_table(rows)) == ["2", "9", "10"]


def test_text_actions_sort_lexicographically():
    rows = episode_rows("e", [{"x": 1.0}], ["b"], [0.0], possible=[["b", "a", "10"]])
    assert action_space(rows_to_table(rows)) == ["10", "a", "b"]


def test_impossible_actions_are_masked_out():
    rows = episode_rows(
        "e", [{"x": 1.0}, {"x": 2.0}], ["a", "c"], [0, 0], possible=[["a", "b"], ["c", "b"]]
    )
    data = LoggedData.from_table(rows_to_table(rows))
    assert data.actions_space == ["a", "b", "c"]
    assert data.possible_mask.tolist() == [[True, True, False], [False, True, True]]
    assert data.next_possible_mask[0].tolist() == [False, True, True]


def test_action_probs_are_scattered_onto_the_action_space_and_nan_when_absent():
    rows = episode_rows(
        "e", [{"x": 1.0}], ["c"], [0], possible=[["c", "a"]], action_probs=[[0.25, 0.75]]
    )
    rows += episode_rows("f", [{"x": 1.0}], ["b"], [0], possible=[["b"]])
    data = LoggedData.from_table(rows_to_table(rows))
    assert data.actions_space == ["a", "b", "c"]
    np.testing.assert_allclose(data.logged_probs[0], [0.75, 0.0, 0.25])
    assert np.isnan(data.logged_probs[1]).all()
    assert data.propensities[0] == 0.25


def test_an_action_outside_a_given_action_space_is_refused():
    rows = episode_rows("e", [{"x": 1.0}], ["z"], [0], possible=[["z"]])
    with pytest.raises(ValueError, match="z"):
        LoggedData.from_table(rows_to_table(rows), actions=["a", "b"])


def test_given_feature_names_fix_the_column_order():
    rows = episode_rows("e", [{"x": 1.0, "y": 2.0, "extra": 3.0}], ["0"], [0])
    data = LoggedData.from_table(rows_to_table(rows), feature_names=["y", "x"])
    np.testing.assert_array_equal(data.states[0], [2.0, 1.0])


def test_split_keeps_episodes_whole_and_sides_disjoint():
    data = _many_episodes(200)
    train, evaluation = split_by_episode(data, 0.3, seed=1)
    assert len(train) + len(evaluation) == len(data)
    assert not set(train.episode_ids) & set(evaluation.episode_ids)
    assert all(b - a == 2 for a, b in train.episode_slices())
    assert 0.15 < evaluation.n_episodes / 200 < 0.45


def test_split_does_not_depend_on_row_order_or_on_other_episodes():
    data = _many_episodes(100)
    _, eval_full = split_by_episode(data, 0.3, seed=7)
    reversed_rows = data.subset(np.arange(len(data))[::-1])
    _, eval_reversed = split_by_episode(reversed_rows, 0.3, seed=7)
    half = data.subset(np.arange(len(data) // 2))
    _, eval_half = split_by_episode(half, 0.3, seed=7)
    assert set(eval_full.episode_ids) == set(eval_reversed.episode_ids)
    assert set(eval_half.episode_ids) == set(eval_full.episode_ids) & set(half.episode_ids)


def test_a_different_seed_gives_a_different_split():
    data = _many_episodes(100)
    _, a = split_by_episode(data, 0.3, seed=1)
    _, b = split_by_episode(data, 0.3, seed=2)
    assert set(a.episode_ids) != set(b.episode_ids)


def test_eval_fraction_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="eval_fraction"):
        split_by_episode(_many_episodes(2), 1.0)


def test_densify_of_a_sliced_table_reads_only_its_own_rows():
    rows = episode_rows("e", [{"a": 1.0}, {"b": 2.0}, {"c": 3.0}], ["0", "0", "0"], [0, 0, 0])
    table = rows_to_table(rows).slice(1, 2)
    data = LoggedData.from_table(table)
    assert data.feature_names == ["b", "c"]
    np.testing.assert_array_equal(data.states, [[2.0, np.nan], [np.nan, 3.0]])
