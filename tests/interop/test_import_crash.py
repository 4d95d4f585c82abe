"""A killed import leaves nothing of its file in the table; the next import writes all of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.interop.conftest import TS, table_rows, table_version

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EPISODES, STEPS = 4_000, 25  # 100,000 rows: several seconds of work on this machine


def _big_file(path: Path) -> Path:
    with path.open("w") as fh:
        for e in range(0, EPISODES, 40):
            n = 40 * STEPS
            fh.write(
                json.dumps(
                    {
                        "obs": [[float(i % 7), float(i % 5)] for i in range(n)],
                        "actions": [i % 2 for i in range(n)],
                        "rewards": [1.0] * n,
                        "eps_id": [e + i // STEPS for i in range(n)],
                        "t": [i % STEPS for i in range(n)],
                        "terminateds": [i % STEPS == STEPS - 1 for i in range(n)],
                        "action_prob": [0.5] * n,
                    }
                )
                + "\n"
            )
    return path


def _command(source: Path, table: Path, rejects: Path) -> list[str]:
    return [
        sys.executable, "-m", "services.cli", "import", "rllib-json", str(source),
        "--table-uri", str(table), "--rejects-dir", str(rejects), "--actions", "0,1",
        "--ts", TS, "--batch-rows", "2000",
    ]  # fmt: skip


def test_an_import_killed_while_writing_leaves_nothing_and_a_rerun_writes_everything(
    tmp_path, table, rejects
):
    source = _big_file(tmp_path / "big.json")
    process = subprocess.Popen(_command(source, table, rejects), cwd=REPO)
    deadline = time.monotonic() + 120
    while not list(table.rglob("*.parquet")):  # the first data file is being written
        assert process.poll() is None, "the import ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    assert list(table.rglob("*.parquet")), "killed before writing: the test proves nothing"
    assert table_version(table) == 0  # created empty; the import's commit never happened
    assert table_rows(table) == []

    rerun = subprocess.run(_command(source, table, rejects), cwd=REPO, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = table_rows(table)
    assert len(rows) == EPISODES * STEPS
    assert len({(r["episode_id"], r["step"]) for r in rows}) == EPISODES * STEPS
    assert table_version(table) == 1
