"""Benchmark of ``policyloop import`` and ``policyloop score``.

Run: ``make bench BENCH=interop`` (or ``.venv/bin/python -m tests.benchmarks interop``).

* **Import**: an RLlib offline JSON file and a CSV file of 1,000,000 rows each (CartPole-shaped:
  4 observation values, 2 actions, episodes of 20 steps, propensities logged), each imported
  into a fresh timeline table by the importer (``services.interop.importer.import_files``, what
  ``policyloop import`` runs; the default processes: one, as both formats have an Arrow path)
  in a fresh process: rows/s, and the
  peak RSS of the importer and its workers together (sampled every 50 ms from /proc), at
  250,000 and at 1,000,000 rows (flat: the second within 1.25x the first, not 4x).
  Target: >= 100,000 rows/s.
* **Score**: ``services.interop.score.score_states`` (what ``policyloop score`` runs) over
  1,000,000 states with the trainer's default network (MLP 256-256, 4 features, 2 actions),
  and, in the same run, ``PolicyClient.act`` one state at a time on the same policy, both on
  one torch thread (act's best; on a loaded machine two threads made act 200x slower); score
  reads and writes in helper threads while its torch thread scores, so it also prints its rate
  per CPU-second of all its threads. Target: score >= 20x act's rate.

The machine is shared: figures are indicative; the command prints them with the load average.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tests.benchmarks.smoke import exit_code, sized

COMMAND = "make bench BENCH=interop  (.venv/bin/python -m tests.benchmarks interop)"
ROWS = sized(1_000_000, 2_000)
SCORE_ROWS = sized(1_000_000, 2_000)
ACT_CALLS = sized(50_000, 500)
EPISODE = 20
TARGET_ROWS_PER_S = 100_000
TARGET_SCORE_RATIO = 20.0
FEATURES = ["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"]
CSV_COLUMNS = [
    "--column", "episode_id=episode", "--column", "step=t",
    "--column", "state=f0,f1,f2,f3", "--column", "action=action", "--column", "reward=reward",
    "--column", "propensity=p", "--column", "terminal=done",
]  # fmt: skip


def _rllib_file(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    per_line = 1000
    with path.open("w") as fh:
        for start in range(0, rows, per_line):
            index = np.arange(start, min(start + per_line, rows))
            obs = rng.normal(size=(len(index), 4)).round(6)
            batch = {
                "type": "SampleBatch",
                "obs": obs.tolist(),
                "new_obs": obs.tolist(),
                "actions": (index % 2).tolist(),
                "rewards": [1.0] * len(index),
                "eps_id": (index // EPISODE).tolist(),
                "t": (index % EPISODE).tolist(),
                "terminateds": (index % EPISODE == EPISODE - 1).tolist(),
                "truncateds": [False] * len(index),
                "action_prob": [0.5] * len(index),
            }
            fh.write(json.dumps(batch) + "\n")


def _csv_file(path: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    index = np.arange(rows)
    obs = rng.normal(size=(rows, 4)).round(6)
    table = pa.table(
        {
            "episode": (index // EPISODE).astype(str),
            "t": index % EPISODE,
            **{f"f{j}": obs[:, j] for j in range(4)},
            "action": index % 2,
            "reward": np.ones(rows),
            "p": np.full(rows, 0.5),
            "done": index % EPISODE == EPISODE - 1,
        }
    )
    pacsv.write_csv(table, path)


def _rss_mb(pid: int | str) -> float:
    """Resident memory of a process, from /proc (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children() -> list[str]:
    out: list[str] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            out += (task / "children").read_text().split()
        except OSError:
            pass
    return out


class _PeakTree:
    """Samples the RSS of this process plus its children (the import workers) every 50 ms:
    ``ru_maxrss`` would not do, as Linux carries it across exec from the parent."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total = _rss_mb("self") + sum(_rss_mb(pid) for pid in _children())
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> _PeakTree:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def import_child(
    fmt: str, source: str, table: str, rejects: str, flags: str, workers: str = "0"
) -> None:
    """Run in a fresh process: import ``source``, print rows, seconds and peak RSS growth."""
    from services.interop.columns import parse_column_flags
    from services.interop.importer import import_files, workers_for
    from services.interop.settings import InteropSettings
    from services.interop.source import ImportOptions

    args = json.loads(flags)
    columns = parse_column_flags(args[1::2])
    options = ImportOptions(ts_ms=1_709_251_200_000, actions=["0", "1"], columns=columns)
    # the default settings, but files of any size may take workers, so that the two sizes are
    # comparable (the Arrow path of both formats converts in one process by default: workers_for)
    settings = InteropSettings(
        rejects_dir=rejects, parallel_min_bytes=0, workers=int(workers) or None
    )
    baseline = _rss_mb("self")
    started = time.perf_counter()
    with _PeakTree() as tree:
        (result,) = import_files(fmt, [Path(source)], table, settings, options)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": result.rows_written, "rejected": result.rows_rejected,
                      "seconds": seconds, "peak_mb": tree.peak, "baseline_mb": baseline,
                      "workers": workers_for(fmt, Path(source), settings)}))  # fmt: skip


def _import(
    fmt: str, source: Path, work: Path, flags: list[str], workers: int = 0
) -> dict[str, Any]:
    table = work / f"timeline-{fmt}-{source.stat().st_size}"
    code = (
        "import sys; from tests.benchmarks.bench_interop import import_child; "
        "import_child(*sys.argv[1:])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, fmt, str(source), str(table), str(work / "rejects"),
         json.dumps(flags), str(workers)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    shutil.rmtree(table, ignore_errors=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _states_parquet(path: Path, rows: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(2)
    values = rng.normal(size=(rows, 4))
    keys = pa.array(np.tile(np.array(FEATURES, dtype=object), rows), pa.string())
    offsets = pa.array(np.arange(0, 4 * rows + 1, 4, dtype=np.int32))
    state = pa.MapArray.from_arrays(offsets, keys, pa.array(values.reshape(-1)))
    pq.write_table(pa.table({"step": np.arange(rows), "state": state}), path)
    return [dict(zip(FEATURES, row, strict=True)) for row in values[:ACT_CALLS].tolist()]


def _score(work: Path) -> tuple[float, float, float, float]:
    import torch
    from prometheus_client import CollectorRegistry

    from services.interop.score import score_states
    from services.registry import Registry
    from services.sdk import PolicyClient
    from tests.rollout.factory import publish

    torch.set_num_threads(1)  # one core each: PolicyClient.act is fastest so, and it is fair
    registry = Registry(str(work / "registry"), "cartpole")
    publish(registry, promote=True, seed=1, hidden_sizes=(256, 256))
    source = work / "states.parquet"
    states = _states_parquet(source, SCORE_ROWS)
    started, cpu = time.perf_counter(), time.process_time()
    result = score_states(registry.uri, "cartpole", "v1", str(source), str(work / "scored"),
                          batch_rows=20_000, threads=1)  # fmt: skip
    score_rate = result.rows / (time.perf_counter() - started)
    # per CPU-second of all its threads (torch's one, Arrow's, the reader, the writer): the rate
    # score would keep with no second core to overlap its reads and writes on
    score_cpu_rate = result.rows / (time.process_time() - cpu)
    module_rate = _module_alone(registry.uri, source)
    client = PolicyClient(registry.uri, "cartpole", poll_interval_s=3600.0,
                          metrics_registry=CollectorRegistry())  # fmt: skip
    try:
        started = time.perf_counter()
        for i, state in enumerate(states):
            client.act(f"e{i // EPISODE}", state, [0, 1])
            if i % EPISODE == EPISODE - 1:
                client.end_episode(f"e{i // EPISODE}", terminal=True)
        act_rate = len(states) / (time.perf_counter() - started)
    finally:
        client.close()
    return score_rate, act_rate, module_rate, score_cpu_rate


def _module_alone(registry_uri: str, source: Path) -> float:
    """rows/s of the policy's own batch call (``probs_dense`` in score's slices), nothing else:
    the bound on what score can do with this network on this CPU."""
    import torch

    from services.interop.dense import densify
    from services.interop.score import MODEL_ROWS
    from services.registry import RegistryReader

    module, manifest = RegistryReader(registry_uri, "cartpole").load("v1")
    column = pq.read_table(source, columns=["state"]).column("state")
    states = torch.from_numpy(densify(column, list(manifest["feature_names"]), np.float32))
    mask = torch.ones((len(states), 2), dtype=torch.bool)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(states), MODEL_ROWS):
            module.probs_dense(states[start : start + MODEL_ROWS], mask[start : start + MODEL_ROWS])
    return len(states) / (time.perf_counter() - started)


def _show(fmt: str, rows: int, result: dict[str, Any]) -> None:
    print(f"import {fmt:10s} {rows:>9,} rows: {rows / result['seconds']:>9,.0f} rows/s "
          f"({result['workers']} worker(s)); peak RSS of importer + workers "
          f"{result['peak_mb']:.0f} MB (importer alone before: "
          f"{result['baseline_mb']:.0f} MB)")  # fmt: skip


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-interop-"))
    try:
        print(f"load average {os.getloadavg()[0]:.1f}; {ROWS:,} rows per import")
        figures = {}
        for fmt, make, flags in (("rllib-json", _rllib_file, []), ("csv", _csv_file, CSV_COLUMNS)):
            for rows in (ROWS // 4, ROWS):
                source = work / f"{fmt}-{rows}.{'json' if fmt == 'rllib-json' else 'csv'}"
                make(source, rows)
                result = _import(fmt, source, work, flags)
                assert result["rows"] == rows and result["rejected"] == 0, result
                figures[(fmt, rows)] = result
                _show(fmt, rows, result)
                if rows == ROWS // 4 and fmt == "rllib-json":  # two workers, for comparison
                    _show(fmt, rows, _import(fmt, source, work, flags, workers=2))
                source.unlink()
        score_rate, act_rate, module_rate, score_cpu_rate = _score(work)
        ratio = score_rate / act_rate
        print(f"score (MLP 256-256, one torch thread, reads and writes in helper threads): "
              f"{score_rate:,.0f} rows/s; PolicyClient.act in the same run {act_rate:,.0f} act/s; "
              f"score is {ratio:.1f}x act; per CPU-second of all score's threads "
              f"{score_cpu_rate:,.0f} rows/s ({score_cpu_rate / act_rate:.1f}x act); the "
              f"policy's batch call alone: {module_rate:,.0f} rows/s")  # fmt: skip
        rates = [ROWS / figures[(f, ROWS)]["seconds"] for f in ("rllib-json", "csv")]
        flat = all(
            figures[(f, ROWS)]["peak_mb"] <= 1.25 * figures[(f, ROWS // 4)]["peak_mb"]
            for f in ("rllib-json", "csv")
        )
        met = min(rates) >= TARGET_ROWS_PER_S and flat and ratio >= TARGET_SCORE_RATIO
        print(f"targets: import >= {TARGET_ROWS_PER_S:,} rows/s "
              f"({'met' if min(rates) >= TARGET_ROWS_PER_S else 'NOT met'}), flat memory "
              f"({'met' if flat else 'NOT met'}), score >= {TARGET_SCORE_RATIO:.0f}x act "
              f"({'met' if ratio >= TARGET_SCORE_RATIO else 'NOT met'})")  # fmt: skip
        print(f"command: {COMMAND}")
        return exit_code(met)
    finally:
        shutil.rmtree(work, ignore_errors=True)
