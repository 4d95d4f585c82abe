"""Exactly once under ``kill -9`` and takeover: the table ends with each expected row once."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time

import pytest

from tests.sessionizer.workload import (
    expected_rows,
    log_episodes,
    make_episodes,
    start_worker,
    table_rows,
    worker_command,
)

pytestmark = pytest.mark.integration


def _wait_for_assignment(log_path, count: int, timeout: float = 60.0) -> None:
    """Wait until the log shows the ``count``-th partition assignment (the worker is consuming)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            log_path.exists()
            and log_path.read_text().count("sessionizer: assigned partitions") >= count
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"worker not assigned partitions within {timeout}s")


def _kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_worker_killed_nine_times_at_random_moments_still_writes_each_row_once(kafka, tmp_path):
    episodes = make_episodes(3000, seed=3)
    table_uri = tmp_path / "timeline"
    producer = threading.Thread(
        target=log_episodes,
        args=(kafka, episodes, tmp_path / "spool"),
        kwargs={"pace_s": 0.4, "chunk": 60},  # ~20 s of traffic
    )
    producer.start()
    rng = random.Random(7)
    kills = 0
    log_path = tmp_path / "worker.log"
    try:
        while kills < 6 or producer.is_alive():
            proc = start_worker(worker_command(kafka, table_uri), log_path)
            _wait_for_assignment(log_path, kills + 1)
            time.sleep(rng.uniform(0.05, 2.5))  # while it consumes, checkpoints or commits
            _kill9(proc)
            kills += 1
    finally:
        producer.join()
    final = subprocess.run(
        worker_command(kafka, table_uri, until_idle=3),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert final.returncode == 0, final.stderr[-3000:]
    assert kills >= 5
    log = log_path.read_text()
    resumed = re.findall(r"resuming after \{[^}]*\d", log)
    assert len(resumed) >= 3, "killed workers rarely got far enough to commit: proves little"
    assert table_rows(table_uri) == expected_rows(episodes)


def _last_assignment(log_path) -> set[int] | None:
    """The partitions of the worker's latest assignment (``None`` before the first one)."""
    if not log_path.exists():
        return None
    found = re.findall(r"sessionizer: assigned partitions \[([\d, ]*)\]", log_path.read_text())
    if not found:
        return None
    return {int(p) for p in found[-1].split(",") if p.strip()}


def _wait_until(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def _rows_written(log_path) -> int:
    counts = re.findall(r"rows written (\d+)", log_path.read_text()) if log_path.exists() else []
    return int(counts[-1]) if counts else 0


def test_surviving_worker_takes_over_the_partitions_of_a_killed_one(kafka, tmp_path):
    episodes = make_episodes(1500, seed=4)
    table_uri = tmp_path / "timeline"
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    a = start_worker(worker_command(kafka, table_uri), a_log)
    b = start_worker(worker_command(kafka, table_uri, until_idle=8), b_log)
    producer = threading.Thread(  # ~15 s of traffic: A dies while events still flow
        target=log_episodes,
        args=(kafka, episodes, tmp_path / "spool"),
        kwargs={"pace_s": 0.3, "chunk": 30},
    )
    try:

        def split() -> bool:  # both joined and the partitions are divided between them
            pa, pb = _last_assignment(a_log), _last_assignment(b_log)
            return bool(pa) and bool(pb) and pa | pb == {0, 1, 2, 3} and not pa & pb

        _wait_until(split, "both workers own some of the partitions")
        producer.start()
        _wait_until(lambda: _rows_written(a_log) > 0, "worker A committed rows")
        _kill9(a)
        _wait_until(
            lambda: _last_assignment(b_log) == {0, 1, 2, 3}, "worker B took every partition"
        )
        producer.join()
        assert b.wait(timeout=120) == 0
    finally:
        if producer.is_alive():
            producer.join()
        for proc in (a, b):
            if proc.poll() is None:
                _kill9(proc)
    assert table_rows(table_uri) == expected_rows(episodes)
