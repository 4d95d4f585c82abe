"""Event time, not arrival time, through the real worker (``policyloop sessionize``), the real
broker, the real Delta table and the real DLQ topic.

Each topic here has one partition, so every episode shares one partition's watermark. Events are
logged with the SDK; an outage is played by stamping events during it and sending them after it
(what the SDK's spool does when the broker is away).
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.sessionizer.workload import (
    Episode,
    expected_rows,
    start_worker,
    table_rows,
    worker_command,
)

pytestmark = pytest.mark.integration


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _log(kafka: KafkaSettings, spool: Path, events: list[tuple]) -> None:
    """Log ``(kind, episode, step_or_terminal, ts, reward)`` tuples in order and flush; actions
    follow the workload's convention (``step % 3``) so that :func:`expected_rows` applies."""
    with DecisionLogger(kafka=kafka, settings=SdkSettings(spool_dir=str(spool))) as logger:
        for kind, episode, arg, ts, value in events:
            if kind == "decision":
                logger.decision(episode, arg, {"x": float(arg)}, arg % 3, [0, 1, 2], 0.25, "v1",
                                ts=ts)  # fmt: skip
            elif kind == "reward":
                logger.reward(episode, arg, value, ts=ts)
            else:
                logger.end_episode(episode, arg, ts=ts)
        logger.flush(30)


def _dead_letters(kafka: KafkaSettings) -> list[str]:
    consumer = KafkaConsumer(
        kafka.dlq_topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    reasons = [dict(m.headers)["reason"].decode() for m in consumer]
    consumer.close()
    return reasons


def _wait_for(log: Path, pattern: str, timeout: float = 60.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text() if log.exists() else "")
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in the worker log:\n{log.read_text()[-3000:]}")


def _events_accepted(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^policyloop_sessionizer_events_total\{[^}]*\} (\S+)$", text, re.M)
    )


@pytest.fixture
def running_worker(one_partition, tmp_path) -> Iterator[tuple[subprocess.Popen, Path, int]]:
    """A batch worker (``--until-idle 8``: it outlives a 5 s outage) with its metrics port."""
    log = tmp_path / "worker.log"
    cmd = worker_command(
        one_partition, tmp_path / "timeline", until_idle=8, extra=["--episode-timeout", "1.5"]
    )
    proc = start_worker(cmd, log)
    try:
        _wait_for(log, r"sessionizer: assigned partitions \[0\]")
        port = int(_wait_for(log, r"metrics on http://[\d.]+:(\d+)/metrics").group(1))
        yield proc, log, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_producer_outage_longer_than_the_episode_timeout_cuts_no_replayed_episode(
    one_partition, running_worker, tmp_path
):
    proc, log, port = running_worker
    t0 = _now_ms()
    _log(one_partition, tmp_path / "spool", [
        ("decision", "a", 0, t0, None),
        ("reward", "a", 0, t0 + 1, 1.0),
        ("decision", "a", 1, t0 + 2, None),
    ])  # fmt: skip
    deadline = time.monotonic() + 30
    while _events_accepted(port) < 3:
        assert time.monotonic() < deadline, "the worker never read the events before the outage"
        time.sleep(0.05)
    time.sleep(1.0)
    t_out = _now_ms()  # the producer's events from here on wait in its spool
    time.sleep(4.0)  # an outage well past --episode-timeout 1.5
    _log(one_partition, tmp_path / "spool", [
        ("decision", "a", 2, t_out, None),
        ("reward", "a", 2, t_out + 10, 2.0),
        ("end", "a", True, t_out + 20, None),
        ("decision", "c", 0, t_out + 30, None),
        ("decision", "c", 1, t_out + 60, None),
        ("reward", "c", 0, t_out + 300, 3.0),  # behind step 1 on the wire, inside step 0's window
        ("end", "c", True, t_out + 310, None),
    ])  # fmt: skip
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert _dead_letters(one_partition) == []
    assert table_rows(tmp_path / "timeline") == expected_rows(
        [Episode("a", 3, {0: [1.0], 2: [2.0]}, True), Episode("c", 2, {0: [3.0]}, True)]
    )


def test_one_event_stamped_minutes_ahead_closes_no_other_episodes_window(one_partition, tmp_path):
    log = tmp_path / "worker.log"
    cmd = worker_command(
        one_partition,
        tmp_path / "timeline",
        until_idle=3,
        extra=["--reward-window", "10", "--episode-timeout", "30"],
    )
    proc = start_worker(cmd, log)
    try:
        _wait_for(log, r"sessionizer: assigned partitions \[0\]")
        port = int(_wait_for(log, r"metrics on http://[\d.]+:(\d+)/metrics").group(1))
        t0 = _now_ms()
        _log(one_partition, tmp_path / "spool", [
            ("decision", "a", 0, t0, None),
            ("decision", "a", 1, t0 + 10, None),
            ("decision", "skewed", 0, t0 + 3 * 60_000, None),  # a producer clock 3 min ahead
        ])  # fmt: skip
        deadline = time.monotonic() + 30
        while _events_accepted(port) < 3:
            assert time.monotonic() < deadline, "the worker never read the events"
            time.sleep(0.05)
        time.sleep(0.5)  # a few ticks of the caught-up worker
        _log(one_partition, tmp_path / "spool", [
            ("reward", "a", 0, t0 + 1_000, 5.0),
            ("end", "a", True, t0 + 1_100, None),
        ])  # fmt: skip
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _dead_letters(one_partition) == []
    assert table_rows(tmp_path / "timeline") == expected_rows([Episode("a", 2, {0: [5.0]}, True)])
