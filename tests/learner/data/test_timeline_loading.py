"""Loading the timeline from a real Delta table: pinned versions, windows, densified arrays."""

from __future__ import annotations

import numpy as np
import pytest
from deltalake import write_deltalake

from learner.data import LoggedData, load_timeline
from schemas.tables import TIMELINE_PARTITION_BY, rows_to_table
from tests.learner.data.timeline_rows import episode_rows

pytestmark = pytest.mark.integration


def _write(uri: str, rows: list[dict]) -> None:
    write_deltalake(uri, rows_to_table(rows), partition_by=TIMELINE_PARTITION_BY, mode="append")


@pytest.fixture
def table_uri(tmp_path) -> str:
    """Version 0: episodes a (day 0, 3 steps) and b (day 1, 2 steps); version 1 adds c (day 5)."""
    uri = str(tmp_path / "timeline")
    _write(
        uri,
        episode_rows(
            "a", [{"x": 1.0}, {"x": 2.0, "y": 5.0}, {"x": 3.0}], ["0", "1", "0"], [1, 0, 1]
        )
        + episode_rows(
            "b", [{"y": 1.0}, {"y": 2.0}], ["1", "1"], [0.5, 0.5], day=1, terminal=False
        ),
    )
    _write(uri, episode_rows("c", [{"x": 9.0}], ["0"], [2.0], day=5))
    return uri


def test_pinned_version_reads_only_that_version(table_uri):
    snap = load_timeline(table_uri, version=0)
    assert snap.version == 0
    assert sorted(set(snap.table.column("episode_id").to_pylist())) == ["a", "b"]
    assert snap.uri == table_uri


def test_default_version_is_the_newest(table_uri):
    snap = load_timeline(table_uri)
    assert snap.version == 1
    assert snap.rows == 6 and snap.episodes == 3


def test_version_beyond_the_newest_is_refused(table_uri):
    with pytest.raises(ValueError, match="version=7"):
        load_timeline(table_uri, version=7)


def test_missing_table_names_the_uri(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        load_timeline(str(tmp_path / "nothing"))


def test_window_days_keeps_the_last_days_of_ds(table_uri):
    # newest ds is day 5; a 5-day window covers days 1..5
    snap = load_timeline(table_uri, window_days=5)
    assert sorted(set(snap.table.column("episode_id").to_pylist())) == ["b", "c"]


def test_window_rows_keeps_whole_newest_episodes(table_uri):
    snap = load_timeline(table_uri, window_rows=3)
    # newest episode c (1 row) then b (2 rows) fit; a (3 rows) would exceed 3
    assert sorted(snap.table.column("episode_id").to_pylist()) == ["b", "b", "c"]


def test_densify_puts_absent_features_as_nan_and_sorts_by_episode_step(table_uri):
    data = LoggedData.from_table(load_timeline(table_uri, version=0).table)
    assert data.feature_names == ["x", "y"]
    assert list(data.episode_ids) == ["a", "a", "a", "b", "b"]
    assert list(data.steps) == [0, 1, 2, 0, 1]
    np.testing.assert_array_equal(data.states[1], [2.0, 5.0])
    assert np.isnan(data.states[0, 1]) and np.isnan(data.states[3, 0])
    np.testing.assert_array_equal(data.next_states[0], [2.0, 5.0])
    np.testing.assert_array_equal(data.next_states[2], [0.0, 0.0])


def test_terminal_and_truncated_rows_are_told_apart(table_uri):
    data = LoggedData.from_table(load_timeline(table_uri, version=0).table)
    assert list(data.terminals) == [False, False, True, False, False]
    assert list(data.has_next) == [True, True, False, True, False]


def test_actions_become_indices_into_the_sorted_action_space(table_uri):
    data = LoggedData.from_table(load_timeline(table_uri, version=0).table)
    assert data.actions_space == ["0", "1"]
    assert list(data.actions) == [0, 1, 0, 1, 1]
    assert data.possible_mask.all()
    assert data.next_possible_mask[:, 0].tolist() == [True, True, False, True, False]


def test_one_step_data_is_recognised(table_uri):
    snap = load_timeline(table_uri)
    assert not LoggedData.from_table(snap.table).is_one_step
    only_c = LoggedData.from_table(load_timeline(table_uri, window_days=1).table)
    assert only_c.is_one_step
