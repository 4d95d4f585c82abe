"""``policyloop export``: a pinned version of the timeline as d3rlpy, RLlib JSON or parquet."""

from __future__ import annotations

import ast
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from services.cli.main import cli
from tests.interop.conftest import run_import, table_rows


def _rllib_file(path: Path, episodes: int = 6, seed: int = 0) -> Path:
    """Episodes of 1-5 steps over a few lines, some terminated, some truncated, one cut."""
    rng = np.random.default_rng(seed)
    steps = []
    for e in range(episodes):
        length = int(rng.integers(1, 6))
        for t in range(length):
            end = t == length - 1
            steps.append(
                {
                    "obs": rng.normal(size=3).tolist(),
                    "actions": int(rng.integers(3)),
                    "rewards": float(rng.normal()),
                    "eps_id": 100 + e,
                    "t": t,
                    "terminateds": end and e % 3 == 0,
                    "truncateds": end and e % 3 == 1,  # e % 3 == 2: cut by the file's end
                    "action_prob": float(rng.choice([0.2, 0.5, 0.3])),
                }
            )
    rng.shuffle(steps)  # episodes interleaved across lines, as several workers write them
    steps.sort(key=lambda s: s["t"])  # but each episode's steps in order
    with path.open("w") as fh:
        for start in range(0, len(steps), 7):
            chunk = steps[start : start + 7]
            fh.write(json.dumps({k: [s[k] for s in chunk] for k in chunk[0]}) + "\n")
    return path


def _export(fmt: str, table: Path, output: Path, *args: str):
    argv = ["export", fmt, "--table-uri", str(table), "--output", str(output), *args]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def _steps_of(path: Path) -> dict[tuple[str, int], dict]:
    out = {}
    for line in path.read_text().splitlines():
        batch = json.loads(line)
        for i in range(len(batch["t"])):
            step = {k: v[i] for k, v in batch.items() if isinstance(v, list) and k != "infos"}
            out[(str(step["eps_id"]), step["t"])] = step
    return out


def test_rllib_json_imported_and_exported_gives_the_same_transitions(tmp_path, table, rejects):
    source = _rllib_file(tmp_path / "source.json")
    assert (
        run_import("rllib-json", table, rejects, str(source), "--actions", "0,1,2").exit_code == 0
    )
    result = _export("rllib-json", table, tmp_path / "exported.json")
    assert result.exit_code == 0, result.output

    before, after = _steps_of(source), _steps_of(tmp_path / "exported.json")
    assert sorted(before) == sorted(after)
    last = {e: max(t for (e2, t) in before if e2 == e) for (e, _) in before}
    for (episode, t), step in before.items():
        if t == last[episode] and not step["terminateds"]:
            step["truncateds"] = True  # cut by the end of the file: closed as truncated
    for key, original in before.items():
        exported = after[key]
        for column in ("obs", "actions", "rewards", "terminateds", "truncateds", "action_prob"):
            assert exported[column] == original[column], (key, column)
        assert math.exp(exported["action_logp"]) == original["action_prob"]
        if key[1] != last[key[0]]:  # the timeline keeps no observation after the last step
            assert exported["new_obs"] == before[(key[0], key[1] + 1)]["obs"]


def test_d3rlpy_accepts_the_export_loaded_as_the_readme_says(tmp_path, table, rejects):
    source = _rllib_file(tmp_path / "source.json", episodes=12)
    run_import("rllib-json", table, rejects, str(source), "--actions", "0,1,2")
    output = tmp_path / "timeline.npz"
    result = _export("d3rlpy", table, output)
    assert result.exit_code == 0, result.output

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```python\nimport d3rlpy, numpy as np\n", 1)[1].split("```", 1)[0]
    code = "import d3rlpy, numpy as np\n" + block
    assert len(ast.parse(code).body) == 3  # the README's three statements, run as written
    namespace: dict = {}
    with warnings.catch_warnings():  # d3rlpy imports gym, which warns about itself
        warnings.simplefilter("ignore")
        exec(code.replace('"timeline.npz"', repr(str(output))), namespace)
    data, dataset = namespace["data"], namespace["dataset"]

    rows = table_rows(table)
    lengths = {}
    for r in rows:
        lengths[r["episode_id"]] = lengths.get(r["episode_id"], 0) + 1
    ended = {r["episode_id"]: r["terminal"] for r in rows if r["terminal"] or r["truncated"]}
    # d3rlpy keeps every episode but a one-step one cut by a timeout (it holds no transition)
    kept = [n for e, n in lengths.items() if n > 1 or ended[e]]
    assert sorted(len(e.rewards) for e in dataset.episodes) == sorted(kept)
    assert list(data["action_names"]) == ["0", "1", "2"]
    assert list(data["feature_names"]) == ["obs_0", "obs_1", "obs_2"]
    ordered = sorted(rows, key=lambda r: (r["episode_id"], r["step"]))
    assert data["actions"].tolist() == [int(r["action"]) for r in ordered]
    assert data["terminals"].sum() == sum(r["terminal"] for r in rows)
    assert data["timeouts"].sum() == 12 - sum(r["terminal"] for r in rows)


def test_parquet_export_holds_the_rows_of_the_pinned_version(tmp_path, table, rejects):
    first = _rllib_file(tmp_path / "first.json", episodes=3, seed=1)
    run_import("rllib-json", table, rejects, str(first), "--actions", "0,1,2")
    pinned = len(table_rows(table))
    second = _rllib_file(tmp_path / "second.json", episodes=3, seed=2)
    run_import("rllib-json", table, rejects, str(second), "--actions", "0,1,2",
               "--episode-prefix", "second-")  # fmt: skip

    result = _export("parquet", table, tmp_path / "v1.parquet", "--version", "1")

    assert result.exit_code == 0, result.output
    assert "version 1" in result.output
    assert pq.read_table(tmp_path / "v1.parquet").num_rows == pinned < len(table_rows(table))


def test_since_and_until_keep_only_the_ds_partitions_between_them(tmp_path, table, rejects):
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        source = _rllib_file(tmp_path / f"{day}.json", episodes=2, seed=int(day[-1]))
        run_import("rllib-json", table, rejects, str(source), "--actions", "0,1,2", "--ts",
                   f"{day}T12:00:00Z", "--episode-prefix", day)  # fmt: skip
    result = _export("parquet", table, tmp_path / "w.parquet", "--since", "2024-03-02",
                     "--until", "2024-03-02")  # fmt: skip
    assert result.exit_code == 0, result.output
    exported = pq.read_table(tmp_path / "w.parquet")
    assert set(exported.column("ds").to_pylist()) == {"2024-03-02"}
    assert exported.num_rows == sum(r["ds"] == "2024-03-02" for r in table_rows(table))
