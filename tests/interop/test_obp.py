"""``policyloop import obp``: Open Bandit Pipeline feedback from an ``.npz`` of its arrays."""

from __future__ import annotations

import numpy as np

from tests.interop.conftest import rejects_of, row, run_import, table_rows, table_version


def _feedback(path, **override):
    feedback = {
        "n_rounds": np.array(3),
        "n_actions": np.array(3),
        "context": np.array([[0.1, 1.0], [0.2, 0.0], [0.3, -1.0]]),
        "action": np.array([2, 0, 1]),
        "position": np.array([0, 1, 0]),
        "reward": np.array([1, 0, 1]),
        "pscore": np.array([0.25, 0.5, 0.125]),
        "action_context": np.eye(3),
    }
    feedback.update(override)
    np.savez(path, **feedback)
    return path


def _expected(ids: list[str]) -> list[dict]:
    possible = ["0", "1", "2"]
    states = [
        {"context_0": 0.1, "context_1": 1.0, "position": 0.0},
        {"context_0": 0.2, "context_1": 0.0, "position": 1.0},
        {"context_0": 0.3, "context_1": -1.0, "position": 0.0},
    ]
    actions, rewards, pscores = ["2", "0", "1"], [1.0, 0.0, 1.0], [0.25, 0.5, 0.125]
    return [
        row(ids[i], 0, states[i], actions[i], rewards[i], ordinal=0, end="terminal",
            possible=possible, propensity=pscores[i])
        for i in range(3)
    ]  # fmt: skip


def test_each_round_imports_as_a_one_step_terminal_episode(tmp_path, table, rejects):
    source = _feedback(tmp_path / "feedback.npz")
    result = run_import("obp", table, rejects, str(source))
    assert result.exit_code == 0, result.output
    rows = table_rows(table)
    ids = [r["episode_id"] for r in rows]
    assert len(set(ids)) == 3
    by_round = sorted(rows, key=lambda r: int(r["episode_id"].rsplit("-", 1)[1]))
    expected = _expected([r["episode_id"] for r in by_round])
    assert [{**r, "decision_id": None} for r in by_round] == expected


def test_importing_the_same_file_again_adds_nothing(tmp_path, table, rejects):
    source = _feedback(tmp_path / "feedback.npz")
    run_import("obp", table, rejects, str(source))
    version = table_version(table)
    again = run_import("obp", table, rejects, str(source))
    assert "already imported" in again.output
    assert table_version(table) == version


def test_bad_rounds_are_rejected_with_their_reasons_and_the_good_ones_imported(
    tmp_path, table, rejects
):
    source = _feedback(
        tmp_path / "bad.npz",
        pscore=np.array([0.25, 0.0, 0.125]),
        reward=np.array([1.0, 0.0, np.nan]),
    )
    result = run_import("obp", table, rejects, str(source))
    assert result.exit_code == 0, result.output
    assert {(r["row"], r["reason"]) for r in rejects_of(rejects)} == {
        (2, "invalid:propensity"),
        (3, "invalid:reward"),
    }
    assert [r["action"] for r in table_rows(table)] == ["2"]


def test_an_object_array_is_refused_without_unpickling_it(tmp_path, table, rejects):
    source = _feedback(tmp_path / "objects.npz", action=np.array([2, "x", None], dtype=object))
    result = run_import("obp", table, rejects, str(source))
    assert result.exit_code == 1
    assert "'action' is an object array" in result.output
