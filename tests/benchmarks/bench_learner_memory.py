"""Benchmark of the learner's memory: peak RSS of reading and splitting a timeline window.

Run: ``make bench BENCH=learner_memory`` (or ``.venv/bin/python -m tests.benchmarks
learner_memory``).

For 100,000 and 1,000,000 timeline rows (6 state features, 3 actions with ``action_probs``,
episodes of 10 decisions over 7 days, built by the sessionizer's own ``TimelineRowBuilder`` and
written to a real Delta table with ``rows_to_table`` in commits of 100,000 rows), a fresh child
process runs stages 2 and 3 of ``learn --once`` (``learner.run.data.load_window`` and ``split``:
the pinned version's window into dense arrays, then train/eval) and reports its peak RSS minus
its baseline, beside the dense arrays' own size: the ``nbytes`` of every ``LoggedData`` array
plus the Python strings its object arrays point to, each string counted once.

The baseline is taken after the imports and a warm-up read of a 20,000-row table, so that what
does not grow with the rows (the Delta log reader's runtime, Arrow's kernels, the allocators'
arenas for one batch) is in it; the figure against the imports alone is printed too ("cold").
Peak: ``VmHWM``, reset after the baseline through ``/proc/self/clear_refs``. Target (issue 13,
case 13): peak - baseline <= 2x the dense arrays at both sizes; the exit code is 0 only then.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.smoke import exit_code, sized

COMMAND = "make bench BENCH=learner_memory  (.venv/bin/python -m tests.benchmarks learner_memory)"
SIZES = sized((100_000, 1_000_000), (2_000,))
WARM_UP_ROWS = sized(20_000, 500)
STEPS = 10
FEATURES = 6
ACTIONS = ["0", "1", "2"]
COMMIT_ROWS = 100_000
DAYS = 7
TARGET_RATIO = 2.0
REPO = Path(__file__).resolve().parents[2]


def write_timeline(uri: str, rows: int, seed: int = 0) -> None:
    """``rows`` timeline rows, as the sessionizer writes them, in commits of COMMIT_ROWS."""
    from deltalake import write_deltalake

    from schemas.rows import TimelineRowBuilder
    from schemas.tables import TIMELINE_PARTITION_BY, rows_to_table

    rng = random.Random(seed)
    builder = TimelineRowBuilder("sum", 0.0)
    start_ms = 1_709_251_200_000  # 2024-03-01
    episodes = rows // STEPS
    per_commit = max(1, COMMIT_ROWS // STEPS)
    for first in range(0, episodes, per_commit):
        batch = []
        for e in range(first, min(episodes, first + per_commit)):
            ts = start_ms + (e % DAYS) * 86_400_000 + e * 10
            decisions = [_decision(rng, e, step, ts + step * 1_000) for step in range(STEPS)]
            for step, decision in enumerate(decisions):
                successor = decisions[step + 1] if step + 1 < STEPS else None
                reward = [{"reward": float(decision["action"] == "1")}]
                batch.append(builder.row(decision, reward, successor, step, 0, True, ts))
        write_deltalake(
            uri, rows_to_table(batch), partition_by=TIMELINE_PARTITION_BY, mode="append"
        )


def _decision(rng: random.Random, episode: int, step: int, ts_ms: int) -> dict[str, Any]:
    logits = [rng.random() + 0.1 for _ in ACTIONS]
    probs = [p / sum(logits) for p in logits]
    action = rng.randrange(len(ACTIONS))
    return {
        "event_id": f"{episode:012x}-{step}",
        "episode_id": f"episode-{episode:09d}",
        "step": step,
        "ts": ts_ms,
        "state": {f"f{i}": rng.uniform(-3, 3) for i in range(FEATURES)},
        "action": ACTIONS[action],
        "possible_actions": ACTIONS,
        "propensity": probs[action],
        "action_probs": probs,
        "policy_version": "v1",
    }


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def child(uri: str, warm_up_uri: str) -> None:
    """In a fresh process: load and split ``uri`` as a run does; print one line of JSON."""
    from learner.data import LoggedData
    from learner.run.data import load_window, split
    from learner.run.records import PinnedTimeline, RunData
    from learner.settings import LearnerSettings
    from services.delta_tables import open_table

    settings = LearnerSettings()
    cold = _status_mb("VmRSS")

    def read(table: str) -> tuple[LoggedData, RunData]:
        delta = open_table(table)
        assert delta is not None
        window = load_window(settings, PinnedTimeline(table, delta.version()))
        return window.data, split(settings, window)

    read(warm_up_uri)
    baseline = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS
    started = time.perf_counter()
    data, run_data = read(uri)
    seconds = time.perf_counter() - started
    peak = _status_mb("VmHWM")
    arrays = sum(v.nbytes for v in vars(data).values() if hasattr(v, "nbytes"))
    texts: dict[int, int] = {}
    for name in ("episode_ids", "decision_ids", "policy_versions"):
        for text in getattr(data, name):
            texts[id(text)] = sys.getsizeof(text)
    print(
        json.dumps(
            {
                "rows": len(data),
                "train_rows": len(run_data.train_data),
                "arrays_mb": arrays / 2**20,
                "texts_mb": sum(texts.values()) / 2**20,
                "peak_mb": peak - baseline,
                "cold_mb": peak - cold,
                "seconds": seconds,
            }
        )
    )


def _measure(uri: str, warm_up_uri: str) -> dict[str, float]:
    """The child's figures for ``uri`` (a fresh process: nothing of this one in its peak)."""
    module = "tests.benchmarks.bench_learner_memory"
    done = subprocess.run(
        [sys.executable, "-m", module, "--child", uri, warm_up_uri],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr[-4000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    print(f"command: {COMMAND}")
    print(
        f"timeline: {FEATURES} state features, {len(ACTIONS)} actions with action_probs, "
        f"episodes of {STEPS} decisions; a fresh process per size; baseline after imports and "
        f"a warm-up read of {WARM_UP_ROWS:,} rows"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-learner-memory-"))
    met = True
    try:
        warm_up = str(workdir / "warm-up")
        write_timeline(warm_up, WARM_UP_ROWS, seed=1)
        print(
            f"{'rows':>10} {'dense MB':>9} {'(arrays':>8} {'+ texts)':>8} "
            f"{'peak-baseline MB':>17} {'ratio':>6} {'cold MB':>8} {'read s':>7}"
        )
        for rows in SIZES:
            uri = str(workdir / f"timeline-{rows}")
            write_timeline(uri, rows)
            r = _measure(uri, warm_up)
            dense = r["arrays_mb"] + r["texts_mb"]
            ratio = r["peak_mb"] / dense
            met = met and ratio <= TARGET_RATIO
            print(
                f"{r['rows']:>10,} {dense:>9.1f} {r['arrays_mb']:>8.1f} {r['texts_mb']:>8.1f} "
                f"{r['peak_mb']:>17.1f} {ratio:>6.2f} {r['cold_mb']:>8.1f} {r['seconds']:>7.2f}"
            )
            shutil.rmtree(uri, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    verdict = "met" if met else "MISSED"
    print(f"target: peak - baseline <= {TARGET_RATIO:g}x the dense arrays at every size: {verdict}")
    print("(the machine is shared: figures are indicative)")
    return exit_code(met)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
