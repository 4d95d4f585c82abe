"""The Arrow path of ``policyloop import`` writes what the row path writes, and refuses the same.

RLlib JSON, CSV and parquet are converted in Arrow batches (``services/interop/batch_convert.py``);
``interop.vectorized = false`` converts them row by row, the reference. Each test imports one
file both ways and compares the tables and the rejects (reason, place and detail).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.tables import TIMELINE_SCHEMA
from services.interop.episode_frames import EpisodeFrames
from services.interop.episode_rules import RuleOptions
from services.interop.importer import import_files
from services.interop.settings import InteropSettings
from services.interop.source import ImportOptions, Reject, SourceStep, Where
from services.interop.step_table import steps_of_items
from services.interop.steps import StepMaker
from tests.interop.conftest import TS_MS, rejects_of, table_rows

NAN = float("nan")


Imported = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # the table's rows, the rejects


def _import_both_ways(
    fmt: str, source: Path, work: Path, columns: dict[str, Any] | None = None, **settings: Any
) -> tuple[Imported, Imported]:
    """(rows, rejects) of the Arrow path, then of the row path."""
    out = []
    for vectorized in (True, False):
        name = "arrow" if vectorized else "rows"
        options = ImportOptions(ts_ms=TS_MS, actions=["0", "1"], columns=columns or {})
        config = InteropSettings(
            rejects_dir=str(work / f"{name}-rejects"), vectorized=vectorized, **settings
        )
        import_files(fmt, [source], str(work / name), config, options)
        rejects = sorted(
            rejects_of(work / f"{name}-rejects"),
            key=lambda r: (r.get("line", 0), r.get("row", 0), r.get("index", -1), r["reason"]),
        )
        out.append((table_rows(work / name), rejects))
    return out[0], out[1]


def _line(**columns: Any) -> str:
    return json.dumps({"type": "SampleBatch", **columns})


def _mixed_batch(path: Path) -> Path:
    """One line of good rows and rows that break each rule a vectorized check covers."""
    rows: list[tuple[Any, Any, Any, Any, Any, Any, bool]] = [
        # eps_id, t, obs, action, reward, action_prob, terminated
        (1, 0, [0.5, 1.0], 0, 1.0, 0.5, False),
        (1, 1, [0.25, 2.0], 1, 0.5, 0.5, False),
        (1, 2, [NAN, 2.0], 1, 0.5, 0.5, False),  # invalid:state (NaN)
        (1, 3, [0.0, 2.0], 7, 0.5, 0.5, False),  # invalid:action (not possible)
        (1, 4, [0.0, 2.0], 1, 0.5, 0.0, False),  # invalid:propensity (0)
        (1, 5, [0.0, 2.0], 1, "x", 0.5, False),  # invalid:reward (text)
        (1, 6, [0.0, 2.0], 1, 0.5, True, False),  # invalid:propensity (a boolean)
        (1, 7.5, [0.0, 2.0], 1, 0.5, 0.5, False),  # invalid:step (not an integer)
        (None, 0, [0.0, 2.0], 1, 0.5, 0.5, False),  # invalid:episode_id
        (1, 1, [0.0, 2.0], 1, 0.5, 0.5, False),  # duplicate_step
        (1, 8, [1.0, 1.0], 0, 2.0, 1, True),  # good: an integer propensity, ends episode 1
        (1, 9, [1.0, 1.0], 0, 2.0, 0.5, False),  # after_episode_end
        ("two", 0, [3.0, 3.0], True, 1.0, 0.5, False),  # invalid:action (a boolean)
        ("two", 1, [3.0, 3.0], 1, 1.0, 0.5, False),
    ]
    path.write_text(
        _line(
            eps_id=[r[0] for r in rows],
            t=[r[1] for r in rows],
            obs=[r[2] for r in rows],
            actions=[r[3] for r in rows],
            rewards=[r[4] for r in rows],
            action_prob=[r[5] for r in rows],
            terminateds=[r[6] for r in rows],
        )
        + "\n"
    )
    return path


def test_a_batch_of_good_and_bad_rows_refuses_exactly_the_bad_ones_as_the_row_path_does(
    tmp_path: Path,
) -> None:
    source = _mixed_batch(tmp_path / "mixed.json")
    (rows, rejects), (row_path_rows, row_path_rejects) = _import_both_ways(
        "rllib-json", source, tmp_path
    )
    assert [(r["index"], r["reason"]) for r in rejects] == [
        (2, "invalid:state"),
        (3, "invalid:action"),
        (4, "invalid:propensity"),
        (5, "invalid:reward"),
        (6, "invalid:propensity"),
        (7, "invalid:step"),
        (8, "invalid:episode_id"),
        (9, "duplicate_step"),
        (11, "after_episode_end"),
        (12, "invalid:action"),
    ]
    assert rejects == row_path_rejects  # the same reasons, places and details
    assert [(r["episode_id"], r["step"]) for r in rows] == [
        ("1", 0),
        ("1", 1),
        ("1", 8),
        ("two", 1),
    ]
    assert rows == row_path_rows


def _episodes_over_lines(path: Path) -> Path:
    """Episodes 1 and 2 interleaved over four lines; 3 cut by the end of the file."""
    lines = [
        _line(eps_id=[1, 2], t=[0, 0], obs=[[0.0], [1.0]], actions=[0, 1], rewards=[1.0, 2.0],
              action_prob=[0.5, 0.5], terminateds=[False, False]),
        _line(eps_id=[1, 1, 2], t=[1, 2, 1], obs=[[0.1], [0.2], [1.1]], actions=[1, 0, 0],
              rewards=[1.0, 1.0, 2.0], action_prob=[0.5, 0.5, 0.5],
              terminateds=[False, False, False]),
        _line(eps_id=[2, 1, 3], t=[2, 3, 0], obs=[[1.2], [0.3], [5.0]], actions=[1, 1, 0],
              rewards=[2.0, 1.0, 0.0], action_prob=[0.5, 0.5, 0.5],
              terminateds=[True, False, False], truncateds=[False, True, False]),
        _line(eps_id=[3], t=[1], obs=[[5.1]], actions=[1], rewards=[0.0], action_prob=[0.5],
              terminateds=[False], truncateds=[False]),
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_episode_across_batch_boundaries_is_written_as_one_episode(tmp_path: Path) -> None:
    source = _episodes_over_lines(tmp_path / "spread.json")
    (rows, rejects), (row_path_rows, _) = _import_both_ways(
        "rllib-json", source, tmp_path, batch_rows=2
    )
    assert rejects == []
    one = [r for r in rows if r["episode_id"] == "1"]
    assert [(r["step_ordinal"], r["next_state"], r["terminal"], r["truncated"]) for r in one] == [
        (0, {"obs_0": 0.1}, False, False),
        (1, {"obs_0": 0.2}, False, False),
        (2, {"obs_0": 0.3}, False, False),
        (3, None, False, True),
    ]
    assert [r["terminal"] for r in rows if r["episode_id"] == "2"] == [False, False, True]
    assert [r["truncated"] for r in rows if r["episode_id"] == "3"] == [False, True]
    assert rows == row_path_rows


def test_rllib_json_imports_to_the_same_table_as_the_row_path(tmp_path: Path) -> None:
    """Older ``dones`` with time limits, log-propensities, string episode ids, a cap on open
    episodes that closes some early and refuses their late rows."""
    lines = [
        _line(eps_id=["a", "b", "c"], t=[0, 0, 0], obs=[[1.0, 2.0]] * 3, actions=[0, 1, 1],
              rewards=[1, -0.0, 2.5], action_logp=[math.log(0.5), math.log(0.25), 0.5],
              dones=[False, False, False], infos=[{}, {}, {}]),
        _line(eps_id=["a", "b", "c", "d"], t=[1, 1, 1, 0], obs=[[3.0, 4.0]] * 4,
              actions=[1, 0, 1, 0], rewards=[0.0, 1.0, 2.0, 3.0],
              action_logp=[math.log(0.75), math.log(0.5), math.log(0.5), math.log(0.5)],
              dones=[True, False, True, True],
              infos=[{"TimeLimit.truncated": True}, {}, {}, {}]),
        _line(eps_id=["b"], t=[2], obs=[[5.0, 6.0]], actions=[1], rewards=[1.0],
              action_logp=[math.log(0.5)], dones=[True], infos=[{}]),
    ]  # fmt: skip
    source = tmp_path / "old.json"
    source.write_text("\n".join(lines) + "\n")
    (rows, rejects), (row_path_rows, row_path_rejects) = _import_both_ways(
        "rllib-json", source, tmp_path, max_open_episodes=1
    )
    assert rows == row_path_rows
    assert rejects == row_path_rejects
    assert {r["reason"] for r in rejects} >= {"late", "invalid:propensity"}


CSV = """session,pos,age,hour,item,click,p,done,cut,time,model,id
s1,0,31,9,1,0,0.5,false,false,2024-03-05T10:00:00Z,m1,
s1,1,31,,0,1,0.25,true,false,2024-03-05T10:00:05Z,,x1
s2,0,40,10,1,1,0.5,false,false,2024-03-05T11:00:00Z,m2,x2
s3,0,abc,9,1,0,0.5,true,false,2024-03-05T12:00:00Z,m1,
s4,0,20,9,1,0,0.5
s5,0,20,9,1,0,2.0,true,false,2024-03-05T12:00:00Z,m1,
s2,1,41,11,0,0,0.5,false,true,2024-03-05T11:00:01Z,m2,
s6,x,20,9,1,0,0.5,true,false,2024-03-05T12:00:00Z,m1,
s2,2,42,12,0,0,0.5,true,false,2024-03-05T11:00:02Z,m2,
s7,0,1,1,5,0,0.5,false,false,not a time,m1,
"""
MAP = {
    "episode_id": "session", "step": "pos", "state": ["age", "hour"], "action": "item",
    "reward": "click", "propensity": "p", "terminal": "done", "truncated": "cut", "ts": "time",
    "policy_version": "model", "decision_id": "id",
}  # fmt: skip


def test_csv_imports_to_the_same_table_and_rejects_as_the_row_path(tmp_path: Path) -> None:
    source = tmp_path / "log.csv"
    source.write_text(CSV)
    (rows, rejects), (row_path_rows, row_path_rejects) = _import_both_ways(
        "csv", source, tmp_path, MAP
    )
    assert rows == row_path_rows
    assert rejects == row_path_rejects
    assert {(r.get("row") or -r["line"], r["reason"]) for r in rejects} == {
        (-6, "malformed"),  # line 6: too few cells
        (4, "invalid:state"),  # age is not a number
        (5, "invalid:propensity"),  # 2.0
        (7, "invalid:step"),  # step "x"
        (8, "after_episode_end"),  # s2 was cut at step 1
        (9, "invalid:ts"),  # not a time
    }


def test_parquet_bandit_rows_import_to_the_same_table_as_the_row_path(tmp_path: Path) -> None:
    source = tmp_path / "bandit.parquet"
    table = pa.table({"x": [1.0, None, 3.0], "arm": [0, 1, 1], "r": [0.0, 1.0, 0.5],
                      "logp": [math.log(0.5), 0.0, 2.0]})  # fmt: skip
    pq.write_table(table, source)
    columns = {"state": ["x"], "action": "arm", "reward": "r", "logp": "logp"}
    (rows, rejects), (row_path_rows, row_path_rejects) = _import_both_ways(
        "parquet", source, tmp_path, columns
    )
    assert rows == row_path_rows
    assert rejects == row_path_rejects
    assert [(r["row"], r["reason"]) for r in rejects] == [(3, "invalid:propensity")]


def test_a_timeline_column_the_import_has_no_data_for_is_null(tmp_path: Path) -> None:
    schema = TIMELINE_SCHEMA.append(pa.field("added_later", pa.list_(pa.string()), nullable=True))
    batches: list[pa.RecordBatch] = []
    refused: list[Reject] = []
    frames = EpisodeFrames(
        RuleOptions(
            default_end_terminal=False,
            existing_episodes=set(),
            max_open_episodes=10,
            closed_memory_episodes=10,
        ),
        processed_at_ms=TS_MS,
        reject=refused.append,
        emit=batches.append,
        schema=schema,
    )
    maker = StepMaker("0" * 64, ImportOptions(ts_ms=TS_MS, actions=["0", "1"]))
    step = maker.make(Where("row", 1), "e", 0, TS_MS, {"x": 1.0}, 0, ["0", "1"], 0.5, 1.0, None)
    assert isinstance(step, SourceStep)
    frames.add(steps_of_items([step]))
    frames.finish()
    (batch,) = batches
    assert batch.schema == schema and refused == []
    assert batch.column("added_later").to_pylist() == [None]
    assert batch.column("truncated").to_pylist() == [True]
