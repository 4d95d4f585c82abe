"""Exactly once under ``kill -9`` and takeover: the table ends with each expected row once."""

from __future__ import annotations

import ast
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


def _wait_for_assignment(log_path, timeout: float = 60.0) -> None:
    """Wait until the worker logging to ``log_path`` was assigned partitions (it consumes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_path.exists() and "sessionizer: assigned partitions" in log_path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"worker not assigned partitions within {timeout}s")


def _kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


_RESUMING = re.compile(r"assigned partitions \[[\d, ]*\] \(resuming after (\{[^}]*\})\)")


def _resume_points(log: str) -> list[dict[int, int | None]]:
    """Each assignment in a worker's log: ``{partition: offset the table recorded}``.

    The worker logs ``assigned partitions [0, 1] (resuming after {0: 41, 1: None})``: an offset
    is the last one a Delta commit recorded for the partition, ``None`` that none was recorded.
    """
    return [ast.literal_eval(found) for found in _RESUMING.findall(log)]


def _committed(point: dict[int, int | None]) -> bool:
    """Some partition of this assignment resumes after an offset a Delta commit recorded."""
    return any(type(offset) is int for offset in point.values())


def test_worker_killed_at_least_six_times_resumes_from_its_commits_and_writes_each_row_once(
    kafka, tmp_path
):
    """``kill -9`` at random moments, six times or more (while traffic lasts), then a batch run.

    Guards that make the exactly-once claim mean something: the restarted workers resumed
    after offsets a killed one had committed (so the kills did interrupt committed work),
    never without the state checkpoint of such a commit, and never behind an earlier resume.
    """
    episodes = make_episodes(3000, seed=3)
    table_uri = tmp_path / "timeline"
    producer = threading.Thread(
        target=log_episodes,
        args=(kafka, episodes, tmp_path / "spool"),
        kwargs={"pace_s": 0.4, "chunk": 60},  # ~20 s of traffic
    )
    producer.start()
    rng = random.Random(7)
    logs = []
    try:
        while len(logs) < 6 or producer.is_alive():
            logs.append(tmp_path / f"worker-{len(logs)}.log")
            proc = start_worker(worker_command(kafka, table_uri), logs[-1])
            _wait_for_assignment(logs[-1])
            time.sleep(rng.uniform(0.05, 2.5))  # while it consumes, checkpoints or commits
            _kill9(proc)
    finally:
        producer.join()
    final = subprocess.run(
        worker_command(kafka, table_uri, until_idle=3),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert final.returncode == 0, final.stderr[-3000:]
    killed = [log.read_text() for log in logs]
    logged = "\n".join([*killed, final.stderr]).splitlines()
    missing = [line for line in logged if "no state checkpoint" in line]
    assert not missing, missing[:3]  # a restart without the state of the commit it resumes

    starts = [_resume_points(text) for text in killed]
    assert all(starts), "a worker was killed before its assignment"
    assert all(offset is None for offset in starts[0][0].values()), "the table was not new"
    resumed = [n for n, points in enumerate(starts) if any(_committed(p) for p in points)]
    assert len(resumed) >= 3, f"only workers {resumed} of {len(logs)} resumed after a commit"
    last_seen: dict[int, int] = {}  # a partition never resumes behind an earlier resume
    for points in [*starts, _resume_points(final.stderr)]:
        for point in points:
            for partition, offset in point.items():
                if partition in last_seen:
                    assert offset is not None and offset >= last_seen[partition], point
                if offset is not None:
                    last_seen[partition] = offset
    final_start = {p: o for point in _resume_points(final.stderr) for p, o in point.items()}
    assert sorted(final_start) == [0, 1, 2, 3], final_start
    assert all(type(offset) is int for offset in final_start.values()), final_start
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
