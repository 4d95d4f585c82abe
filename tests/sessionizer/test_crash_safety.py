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


def test_surviving_worker_takes_over_the_partitions_of_a_killed_one(kafka, tmp_path):
    episodes = make_episodes(1500, seed=4)
    table_uri = tmp_path / "timeline"
    a = start_worker(worker_command(kafka, table_uri), tmp_path / "a.log")
    b_cmd = worker_command(kafka, table_uri, until_idle=8)
    b = start_worker(b_cmd, tmp_path / "b.log")
    try:
        time.sleep(6)  # both joined the group and split the partitions
        producer = threading.Thread(
            target=log_episodes,
            args=(kafka, episodes, tmp_path / "spool"),
            kwargs={"pace_s": 0.3, "chunk": 150},
        )
        producer.start()
        time.sleep(2)
        _kill9(a)
        producer.join()
        assert b.wait(timeout=120) == 0
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                _kill9(proc)
    a_log = (tmp_path / "a.log").read_text()
    b_log = (tmp_path / "b.log").read_text()
    a_parts = re.findall(r"sessionizer: assigned partitions \[([\d, ]*)\]", a_log)
    b_parts = re.findall(r"sessionizer: assigned partitions \[([\d, ]*)\]", b_log)
    assert a_parts and a_parts[-1], f"worker A never owned a partition: {a_log[-2000:]}"
    assert b_parts[-1] == "0, 1, 2, 3", f"B did not take all partitions over: {b_parts}"
    assert table_rows(table_uri) == expected_rows(episodes)
