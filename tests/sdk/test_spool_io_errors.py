"""Spool I/O errors (issue 13, case 2): they never stop the sender, and nothing goes unreported.

Real faults: a tmpfs of 256 KiB that fills up (``No space left on device``), a per-process file
size limit (``RLIMIT_FSIZE``, ``File too large``), a segment file removed while the logger runs.
What the disk refuses waits in memory; once the logger cannot accept more, ``decision()`` and
friends raise a ``QueueFullError`` naming the disk's error; ``close()`` returns a report of what
it kept in the spool and what it lost; ``flush()`` raises saying what can no longer be sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger, QueueFullError, SdkError
from services.sdk.settings import SdkSettings
from tests.sdk.tcp_proxy import TcpProxy
from tests.sdk.test_outage import proxied_broker  # noqa: F401  (fixture)
from tests.sdk.test_spool_format import (
    by_episode,
    entries_of,
    per_episode,
    segments,
    unreachable,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EPISODES = ["a", "b", "c"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of this test's own (needs root: ``mount -t tmpfs``)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave_free: int = 0) -> Path:
    """Fill ``disk`` up to ``leave_free`` bytes with one file; return it (delete it to free)."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(0, free - leave_free))
    assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize <= leave_free
    return filler


def _log(logger: DecisionLogger, n: int, start: int = 0) -> list[str]:
    """``n`` rewards round-robin over the episodes, event ids ``<episode>-<step>``."""
    logged = []
    for i in range(start, start + n):
        episode, step = EPISODES[i % 3], i // 3
        logged.append(logger.reward(episode, step, 1.0, event_id=f"{episode}-{step}"))
    return logged


def _spool_refuses_writes(logger: DecisionLogger) -> bool:
    """Whether a flush that times out says the disk spool refuses writes (the sender tried)."""
    try:
        logger.flush(timeout=0.1)
    except TimeoutError as exc:
        return "The disk spool refuses writes" in str(exc)
    return False


def _wait_until_the_spool_refuses_writes(logger: DecisionLogger) -> None:
    deadline = time.monotonic() + 30
    while not _spool_refuses_writes(logger):
        assert time.monotonic() < deadline, "the disk spool never refused a write"


def test_when_the_disk_is_full_decision_raises_a_queue_full_error_naming_the_disk_error(
    kafka: KafkaSettings,
    sdk_settings: Callable[..., SdkSettings],
    registry: CollectorRegistry,
    small_disk: Path,
) -> None:
    spool_dir = small_disk / "spool"
    settings = sdk_settings(spool_dir=str(spool_dir), queue_max_events=2_000, block_timeout_s=0.5)
    _fill(small_disk)
    logger = DecisionLogger(kafka=unreachable(kafka), settings=settings, registry=registry)
    try:
        _log(logger, 10)
        _wait_until_the_spool_refuses_writes(logger)  # the broker is away, the disk is full
        with pytest.raises(QueueFullError) as info:
            _log(logger, 100_000, start=10)
    finally:
        logger.close(timeout=0.1)
    assert "queue_max_events=2000" in str(info.value)
    assert "No space left on device" in str(info.value)
    assert str(spool_dir) in str(info.value)


def test_events_a_full_disk_refused_wait_in_memory_and_are_delivered_once_space_returns(
    kafka: KafkaSettings,
    sdk_settings: Callable[..., SdkSettings],
    registry: CollectorRegistry,
    small_disk: Path,
) -> None:
    settings = sdk_settings(spool_dir=str(small_disk / "spool"), queue_max_events=2_000)
    filler = _fill(small_disk)
    logger = DecisionLogger(kafka=unreachable(kafka), settings=settings, registry=registry)
    logged = _log(logger, 1_500)
    _wait_until_the_spool_refuses_writes(logger)
    filler.unlink()
    report = logger.close(timeout=0.5)
    assert (report.spooled_events, report.lost_events) == (1_500, 0)

    with DecisionLogger(kafka=kafka, settings=settings, registry=CollectorRegistry()) as again:
        again.flush(timeout=30)
    assert by_episode(kafka, len(logged)) == per_episode(logged)


def test_events_a_full_disk_refused_go_straight_to_the_broker_once_it_is_back(
    proxied_broker: tuple[TcpProxy, KafkaSettings],  # noqa: F811
    sdk_settings: Callable[..., SdkSettings],
    registry: CollectorRegistry,
    small_disk: Path,
) -> None:
    proxy, kafka = proxied_broker
    settings = sdk_settings(spool_dir=str(small_disk / "spool"), queue_max_events=5_000)
    _fill(small_disk)
    with DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger:
        logged = _log(logger, 3)
        logger.flush(timeout=30)  # connected
        proxy.cut()
        deadline = time.monotonic() + 30
        while not _spool_refuses_writes(logger):  # the outage is noticed, then spooling fails
            assert time.monotonic() < deadline, "the disk spool never refused a write"
            logged += _log(logger, 3, start=len(logged))
        logged += _log(logger, 1_500, start=len(logged))
        proxy.restore()
        logger.flush(timeout=60)  # the disk is still full

    assert by_episode(kafka, len(logged)) == per_episode(logged)


def test_close_on_a_disk_that_stays_full_reports_what_it_kept_and_what_it_lost(
    kafka: KafkaSettings,
    sdk_settings: Callable[..., SdkSettings],
    registry: CollectorRegistry,
    small_disk: Path,
) -> None:
    settings = sdk_settings(
        spool_dir=str(small_disk / "spool"), queue_max_events=5_000, batch_max_events=100
    )
    filler = _fill(small_disk, leave_free=48 << 10)
    logger = DecisionLogger(kafka=unreachable(kafka), settings=settings, registry=registry)
    logged = _log(logger, 3_000)
    _wait_until_the_spool_refuses_writes(logger)
    report = logger.close(timeout=0.2)

    assert report.spooled_events > 0 and report.lost_events > 0
    assert report.spooled_events + report.lost_events == len(logged)
    assert report.lost.events["spool_write_failed"] == report.lost_events
    dropped = registry.get_sample_value(
        "policyloop_sdk_events_dropped_total", {"reason": "spool_write_failed"}
    )
    assert dropped == report.lost_events
    assert registry.get_sample_value("policyloop_sdk_spool_write_errors_total")
    filler.unlink()
    with DecisionLogger(kafka=kafka, settings=settings, registry=CollectorRegistry()) as again:
        again.flush(timeout=30)
    kept = logged[: report.spooled_events]  # the spool took them in order, then refused
    assert by_episode(kafka, len(kept)) == per_episode(kept)


# Logs ``n`` rewards under a file-size limit with the broker unreachable, closes, prints the
# close report as JSON.
CHILD = """
import json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from services.kafka_settings import KafkaSettings
from services.sdk.logger import DecisionLogger
from services.sdk.settings import SdkSettings

cfg = json.loads(sys.argv[1])
logger = DecisionLogger(kafka=KafkaSettings(**cfg["kafka"]), settings=SdkSettings(**cfg["sdk"]))
for i in range(cfg["n"]):
    episode, step = "abc"[i % 3], i // 3
    logger.reward(episode, step, 1.0, event_id=f"{episode}-{step}")
report = logger.close(timeout=0.5)
print(json.dumps({"spooled": report.spooled_events, "lost": report.lost_events}))
"""


def test_under_a_file_size_limit_the_spool_rotates_segments_and_loses_nothing(
    kafka: KafkaSettings, sdk_settings: Callable[..., SdkSettings], tmp_path: Path
) -> None:
    limit, n = 64 << 10, 20_000
    settings = sdk_settings(batch_max_events=200)
    config = {
        "kafka": unreachable(kafka).model_dump(mode="json"),
        "sdk": settings.model_dump(mode="json"),
        "n": n,
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(config), str(limit)],
        cwd=REPO,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3_000:]
    assert json.loads(child.stdout.splitlines()[-1]) == {"spooled": n, "lost": 0}
    sizes = [path.stat().st_size for path in segments(Path(settings.spool_dir))]
    assert len(sizes) > 1 and max(sizes) <= limit

    with DecisionLogger(kafka=kafka, settings=settings, registry=CollectorRegistry()) as logger:
        logger.flush(timeout=60)
    logged = [f"{'abc'[i % 3]}-{i // 3}" for i in range(n)]
    assert by_episode(kafka, n) == per_episode(logged)


def test_a_segment_removed_under_the_sender_is_reported_lost_and_the_rest_is_delivered(
    proxied_broker: tuple[TcpProxy, KafkaSettings],  # noqa: F811
    sdk_settings: Callable[..., SdkSettings],
    registry: CollectorRegistry,
) -> None:
    proxy, kafka = proxied_broker
    settings = sdk_settings(batch_max_events=50, spool_segment_bytes=4_096)
    with DecisionLogger(kafka=kafka, settings=settings, registry=registry) as logger:
        logged = [logger.reward("warm", 0, 1.0, event_id="warm-0")]
        logger.flush(timeout=30)  # connected
        proxy.cut()  # after outage_after_s without acknowledgement, records go to the spool
        for _ in range(100):
            logged += _log(logger, 3, len(logged) - 1)
            time.sleep(0.015)
        deadline = time.monotonic() + 30
        while logger.queue_depth and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the sender writes what it drained within one loop
        found = segments(Path(settings.spool_dir))
        assert len(found) >= 3
        removed = found[1]
        lost = [i for entry in entries_of(removed) for i in entry.event_ids()]
        removed.unlink()
        proxy.restore()
        with pytest.raises(SdkError) as info:
            logger.flush(timeout=60)
        logged.append(logger.reward("after", 0, 1.0, event_id="after-0"))
        logger.flush(timeout=30)  # the sender is still running

    n = len(lost)
    assert str(info.value).startswith(
        f"{n} events can no longer be delivered ({n} in spool data removed under it"
    )
    expected = [event_id for event_id in logged if event_id not in set(lost)]
    assert by_episode(kafka, len(expected)) == per_episode(expected)
    dropped = registry.get_sample_value(
        "policyloop_sdk_events_dropped_total", {"reason": "spool_missing"}
    )
    assert dropped == n
