"""End to end: the SDK logs to the real broker, ``policyloop sessionize`` writes real Delta."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from services.delta_tables import open_table
from tests.sessionizer.workload import (
    expected_rows,
    log_episodes,
    make_episodes,
    start_worker,
    table_rows,
    worker_command,
)

pytestmark = pytest.mark.integration


def test_two_thousand_logged_episodes_become_exactly_their_rows(kafka, tmp_path):
    episodes = make_episodes(2000, seed=1)
    log_episodes(kafka, episodes, tmp_path / "spool")
    table_uri = tmp_path / "timeline"
    done = subprocess.run(
        worker_command(kafka, table_uri, until_idle=3),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert table_rows(table_uri) == expected_rows(episodes)


def test_a_second_run_over_the_same_topic_adds_nothing(kafka, tmp_path):
    episodes = make_episodes(200, seed=2)
    log_episodes(kafka, episodes, tmp_path / "spool")
    table_uri = tmp_path / "timeline"
    cmd = worker_command(kafka, table_uri, until_idle=2)
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    before = open_table(str(table_uri))
    version, files = before.version(), set(before.file_uris())
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-3000:]
    assert table_rows(table_uri) == expected_rows(episodes)
    after = open_table(str(table_uri))
    assert set(after.file_uris()) == files  # no data file written
    # the second worker's claim on its partitions is the only commit (see fencing.py)
    operations = [c.get("policyloop.operation") for c in after.history(after.version() - version)]
    assert operations == ["claim"] * (after.version() - version) and operations


def test_sigterm_stops_a_foreground_worker_cleanly_and_a_later_run_completes_the_table(
    kafka, tmp_path
):
    episodes = make_episodes(600, seed=6)
    table_uri = tmp_path / "timeline"
    log_path = tmp_path / "worker.log"
    worker = start_worker(worker_command(kafka, table_uri), log_path)
    try:
        deadline = time.monotonic() + 60
        while "sessionizer: assigned partitions" not in (
            log_path.read_text() if log_path.exists() else ""
        ):
            assert time.monotonic() < deadline, "worker never got its partitions"
            time.sleep(0.05)
        log_episodes(kafka, episodes, tmp_path / "spool")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
    assert "stopped:" in log_path.read_text()
    done = subprocess.run(
        worker_command(kafka, table_uri, until_idle=2), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert table_rows(table_uri) == expected_rows(episodes)
