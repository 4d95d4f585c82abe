"""``policyloop import reagent``: ReAgent's pre-timeline rows, JSON lines or parquet."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from tests.interop.conftest import (
    rejects_of,
    row,
    run_import,
    table_rows,
    table_version,
    without_ids,
)

DAY_MS = 1_709_337_600_000  # 2024-03-02T00:00:00Z
ROWS = [
    # ds, mdp_id, sequence_number, state_features, action, reward, possible, probability
    ("2024-03-02", "m1", 10, {"0": 1.0, "3": 2.0}, "news", 1.0, ["news", "music"], 0.7),
    ("2024-03-02", "m1", 12, {"0": 0.5}, "music", 0.0, ["news", "music"], 0.3),
    ("2024-03-02", "m2", 1, {"3": -1.0}, "music", 2.5, ["news", "music"], 0.6),
]
KEYS = ("ds", "mdp_id", "sequence_number", "state_features", "action", "reward",
        "possible_actions", "action_probability")  # fmt: skip


def _records(rows=ROWS) -> list[dict]:
    out = [dict(zip(KEYS, r, strict=True)) for r in rows]
    out[0]["metrics"] = {"clicks": 1.0}
    return out


def _expected() -> list[dict]:
    possible = ["news", "music"]
    common = {"possible": possible, "ts": DAY_MS, "ds": "2024-03-02"}
    return [
        row("m1", 10, {"0": 1.0, "3": 2.0}, "news", 1.0, ordinal=0, first=10, propensity=0.7,
            successor=(12, {"0": 0.5}, "music", 0.3), metrics={"clicks": 1.0}, **common),
        row("m1", 12, {"0": 0.5}, "music", 0.0, ordinal=1, first=10, propensity=0.3,
            end="terminal", **common),
        row("m2", 1, {"3": -1.0}, "music", 2.5, ordinal=0, first=1, propensity=0.6,
            end="terminal", **common),
    ]  # fmt: skip


def test_json_lines_import_to_exactly_the_expected_rows(tmp_path, table, rejects):
    source = tmp_path / "reagent.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    result = run_import("reagent", table, rejects, str(source))
    assert result.exit_code == 0, result.output
    assert without_ids(table_rows(table)) == _expected()


def test_parquet_with_integer_feature_ids_imports_to_the_same_rows(tmp_path, table, rejects):
    records = _records()
    for r in records:
        r["state_features"] = {int(k): v for k, v in r["state_features"].items()}
    schema = pa.schema(
        [
            ("ds", pa.string()),
            ("mdp_id", pa.string()),
            ("sequence_number", pa.int64()),
            ("state_features", pa.map_(pa.int64(), pa.float64())),
            ("action", pa.string()),
            ("reward", pa.float64()),
            ("possible_actions", pa.list_(pa.string())),
            ("action_probability", pa.float64()),
            ("metrics", pa.map_(pa.string(), pa.float64())),
        ]
    )
    source = tmp_path / "reagent.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [{**r, "state_features": list(r["state_features"].items()),
              "metrics": list(r.get("metrics", {}).items()) or None} for r in records],
            schema=schema,
        ),
        source,
    )  # fmt: skip
    result = run_import("reagent", table, rejects, str(source))
    assert result.exit_code == 0, result.output
    assert without_ids(table_rows(table)) == _expected()


def test_importing_the_same_file_again_adds_nothing(tmp_path, table, rejects):
    source = tmp_path / "reagent.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    run_import("reagent", table, rejects, str(source))
    version = table_version(table)
    again = run_import("reagent", table, rejects, str(source))
    assert "already imported" in again.output
    assert table_version(table) == version


def test_bad_rows_are_rejected_with_their_reasons_and_the_good_ones_imported(
    tmp_path, table, rejects
):
    records = _records()
    records.append({**records[2], "mdp_id": "m3", "action": "video"})  # not a possible action
    records.append({**records[2], "mdp_id": "m4", "action_probability": None})
    del records[1]["state_features"]
    source = tmp_path / "reagent.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records) + "[1, 2]\n")
    result = run_import("reagent", table, rejects, str(source))
    assert result.exit_code == 0, result.output
    assert {(r["line"], r["reason"]) for r in rejects_of(rejects)} == {
        (2, "invalid:state"),  # state_features is required
        (4, "invalid:action"),
        (5, "invalid:propensity"),
        (6, "malformed"),
    }
    assert [(r["episode_id"], r["step"], r["terminal"]) for r in table_rows(table)] == [
        ("m1", 10, True),
        ("m2", 1, True),
    ]
