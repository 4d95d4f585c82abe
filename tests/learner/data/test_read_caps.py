"""The learner refuses a timeline too wide to densify, by name and before allocating anything.

Every distinct ``state`` key is a float32 column of every row and every action a column of the
masks: state maps that carry identifiers or free text would otherwise be densified until the
process is killed for memory, with no word of why.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from deltalake import write_deltalake

import learner.data.reader as reader
from learner.data import LoggedData, ReadLimits, TimelineTooWide, read_logged
from learner.run.data import read_window
from learner.run.records import PinnedTimeline
from learner.settings import LearnerSettings
from schemas.tables import TIMELINE_PARTITION_BY, rows_to_table
from tests.learner.data.timeline_rows import episode_rows

pytestmark = pytest.mark.integration

WIDE = 4096  # distinct state keys in every decision


def _write(uri: str, rows: list[dict]) -> str:
    write_deltalake(uri, rows_to_table(rows), partition_by=TIMELINE_PARTITION_BY, mode="append")
    return uri


@pytest.fixture
def wide_timeline(tmp_path) -> str:
    """One episode of 8 decisions whose state maps have 4,096 distinct keys each."""
    states = [{f"user_{k}": float(step) for k in range(WIDE)} for step in range(8)]
    return _write(str(tmp_path / "wide"), episode_rows("e", states, ["0"] * 8, [0.0] * 8))


@pytest.fixture
def four_actions(tmp_path) -> str:
    rows = episode_rows("e", [{"x": 1.0}], ["a"], [0.0], possible=[["a", "b", "c", "d"]])
    return _write(str(tmp_path / "four_actions"), rows)


def _context(settings: LearnerSettings) -> SimpleNamespace:
    """What ``read_window`` uses of a run's context."""
    return SimpleNamespace(settings=settings, say=lambda message: None)


def test_a_timeline_with_4096_state_keys_per_decision_fails_naming_the_cap(wide_timeline):
    with pytest.raises(ValueError, match="max_state_features") as raised:
        read_window(_context(LearnerSettings()), PinnedTimeline(wide_timeline, 0))
    message = str(raised.value)
    assert wide_timeline in message  # the table
    assert "'state'" in message  # the column
    assert f"{WIDE} distinct keys" in message  # the count found
    assert "learner.max_state_features = 1024" in message  # the cap and where to raise it


def test_the_cap_is_checked_before_any_dense_array_is_allocated(wide_timeline, monkeypatch):
    allocated = []
    monkeypatch.setattr(reader, "DenseBuilder", lambda *args: allocated.append(args))
    with pytest.raises(TimelineTooWide):
        read_logged(wide_timeline, limits=ReadLimits(max_state_features=1024))
    assert allocated == []


def test_the_error_names_the_table_column_count_and_setting(wide_timeline):
    with pytest.raises(TimelineTooWide) as raised:
        read_logged(wide_timeline, limits=ReadLimits(max_state_features=100))
    error = raised.value
    assert (error.column, error.found, error.setting, error.cap) == (
        "state",
        WIDE,
        "max_state_features",
        100,
    )
    assert error.table == f"{wide_timeline} (version 0)"


def test_the_cap_is_a_learner_setting(wide_timeline):
    settings = LearnerSettings(max_state_features=WIDE)
    window = read_window(_context(settings), PinnedTimeline(wide_timeline, 0))
    assert window.data.states.shape == (8, WIDE)


def test_more_actions_than_max_actions_fail_naming_the_column(four_actions):
    with pytest.raises(TimelineTooWide, match="'possible_actions' has 4 distinct actions"):
        read_logged(four_actions, limits=ReadLimits(max_actions=3))
    assert read_logged(four_actions, limits=ReadLimits(max_actions=4)).data.n_actions == 4


def test_a_table_in_memory_is_capped_when_limits_are_given():
    rows = episode_rows("e", [{"a": 1.0, "b": 2.0, "c": 3.0}], ["0"], [0.0])
    with pytest.raises(TimelineTooWide, match="max_state_features = 2"):
        LoggedData.from_table(rows_to_table(rows), limits=ReadLimits(max_state_features=2))


def test_caps_and_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_rows=0"):
        ReadLimits(batch_rows=0)


def test_policyloop_cpe_reads_with_the_same_caps_as_a_run(wide_timeline, tmp_path):
    from learner.run.external import evaluate_external

    probs = str(tmp_path / "probs.parquet")  # never read: the cap stops the command first
    with pytest.raises(TimelineTooWide, match=r"learner\.max_state_features = 1024"):
        evaluate_external(LearnerSettings(), wide_timeline, target_probs_uri=probs)
