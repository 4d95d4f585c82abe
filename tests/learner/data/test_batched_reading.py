"""Reading the timeline batch by batch: never the whole table, the same arrays as reading it whole.

A run's memory is its dense arrays plus one batch, so these tests hold the reader to its
structure rather than to a measured figure: batches no larger than the setting, results equal
to the one-shot read at any batch size, float32 contiguous arrays, a split that copies nothing.
``make bench BENCH=learner_memory`` measures the figures.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from deltalake import write_deltalake

import learner.data.files as files
from learner.data import (
    LoggedData,
    ReadLimits,
    SplitRule,
    load_timeline,
    read_logged,
    split_by_episode,
)
from schemas.tables import TIMELINE_PARTITION_BY, rows_to_table
from tests.learner.data.timeline_rows import episode_rows

pytestmark = pytest.mark.integration

WINDOWS = [
    {},
    {"version": 0},
    {"window_days": 3},
    {"window_rows": 14},
    {"window_days": 6, "window_rows": 12},
]


def _write(uri: str, rows: list[dict]) -> None:
    write_deltalake(uri, rows_to_table(rows), partition_by=TIMELINE_PARTITION_BY, mode="append")


def _episode(i: int, day: int) -> list[dict]:
    """Episode ``i``: 1 to 4 decisions, sparse features, two action sets, some without probs."""
    n = 1 + i % 4
    states = [{f"f{(i + k) % 5}": float(i * 10 + k), "bias": 1.0} for k in range(n)]
    possible = [["b", "a", "c"] if (i + k) % 2 else ["a", "b"] for k in range(n)]
    probs = [[1.0 / len(p)] * len(p) for p in possible] if i % 3 else None
    return episode_rows(
        f"ep{i:03d}",
        states,
        [p[k % len(p)] for k, p in enumerate(possible)],
        [float(i % 7)] * n,
        possible=possible,
        terminal=i % 2 == 0,
        day=day,
        action_probs=probs,
        policy_version=f"v{i % 2}",
    )


@pytest.fixture(scope="module")
def timeline(tmp_path_factory) -> str:
    """Version 0: 30 episodes over days 0-4 (rows shuffled); version 1 adds 10 on days 5-9."""
    uri = str(tmp_path_factory.mktemp("batched") / "timeline")
    rows = [r for i in range(30) for r in _episode(i, i % 5)]
    _write(uri, rows[::2] + rows[1::2])
    _write(uri, [r for i in range(30, 40) for r in _episode(i, i % 5 + 5)])
    return uri


def _assert_same(a: LoggedData, b: LoggedData) -> None:
    for f in fields(LoggedData):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("batch_rows", [1, 3, 50])
def test_reading_in_batches_gives_the_one_shot_result(timeline, window, batch_rows):
    one_shot = LoggedData.from_table(load_timeline(timeline, **window).table)
    batched = read_logged(timeline, **window, limits=ReadLimits(batch_rows=batch_rows))
    _assert_same(batched.data, one_shot)
    assert batched.version == (0 if window.get("version") == 0 else 1)


def test_no_batch_is_larger_than_the_setting(timeline):
    window = read_logged(timeline, limits=ReadLimits(batch_rows=3))
    assert window.stats.largest_batch_rows == 3
    assert window.stats.batches >= len(window.data)  # three passes of 3 rows at a time


def test_wide_maps_make_batches_of_fewer_rows(timeline, monkeypatch):
    # 3 to 4 map entries per row (state and next_state) against a budget of 12 per batch
    monkeypatch.setattr(files, "MAX_BATCH_ENTRIES", 12)
    pinned = files.pinned_files(timeline, None, None)
    narrow = [s.batch.num_rows for s in files.scan(pinned, ["step"], 1000)]
    wide = [s.batch.num_rows for s in files.scan(pinned, ["state", "next_state"], 1000)]
    assert sum(wide) == sum(narrow) == 100
    assert len(narrow) == len(pinned.paths)  # a batch per file
    assert max(wide) <= 6 < max(narrow)
    window = read_logged(timeline, limits=ReadLimits(batch_rows=1000))
    _assert_same(window.data, LoggedData.from_table(load_timeline(timeline).table))


def test_the_dense_arrays_are_float32_and_contiguous(timeline):
    data = read_logged(timeline).data
    for name in ("states", "next_states", "logged_probs"):
        array = getattr(data, name)
        assert array.dtype == np.float32, name
        assert array.flags.c_contiguous, name


def test_repeated_texts_are_stored_once(timeline):
    data = read_logged(timeline, limits=ReadLimits(batch_rows=1000)).data
    assert len({id(v) for v in data.policy_versions}) == 2
    assert len({id(e) for e in data.episode_ids}) == data.n_episodes


@pytest.mark.parametrize("window", WINDOWS)
def test_with_eval_last_the_split_is_two_views_of_the_read_arrays(timeline, window):
    rule = SplitRule(eval_fraction=0.3, seed=0)
    data = read_logged(timeline, **window, eval_last=rule).data
    train, evaluation = split_by_episode(data, rule.eval_fraction, rule.seed)
    assert len(evaluation) and len(train)
    for f in fields(LoggedData):
        if isinstance(getattr(data, f.name), np.ndarray):
            assert np.shares_memory(getattr(train, f.name), getattr(data, f.name)), f.name
            assert np.shares_memory(getattr(evaluation, f.name), getattr(data, f.name)), f.name
    one_shot = LoggedData.from_table(load_timeline(timeline, **window).table)
    expected_train, expected_eval = split_by_episode(one_shot, rule.eval_fraction, rule.seed)
    _assert_same(train, expected_train)
    _assert_same(evaluation, expected_eval)


def test_an_empty_table_reads_as_no_rows(tmp_path):
    uri = str(tmp_path / "empty")
    _write(uri, [])
    data = read_logged(uri).data
    assert len(data) == 0 and data.feature_names == [] and data.actions_space == []
