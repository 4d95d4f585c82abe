"""Several processes on one spool directory: each event is sent exactly once (issue 13, case 1).

Real processes (``sys.executable -c``) share one ``spool_dir``: each logger owns a directory of
its own under it, locked for its lifetime, and a new logger adopts only the directories whose
owner closed or died.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.sdk.logger import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Logs ``n`` rewards with event ids ``<tag>-<i>``; ``hold``: once they are all spooled, print
# READY and wait for a line on stdin (or a SIGKILL) before closing.
CHILD = """
import json, sys, time
from services.kafka_settings import KafkaSettings
from services.sdk.logger import DecisionLogger
from services.sdk.settings import SdkSettings

cfg = json.loads(sys.argv[1])
kafka = KafkaSettings(**cfg["kafka"])
settings = SdkSettings(**cfg["sdk"])
logger = DecisionLogger(kafka=kafka, settings=settings)
for i in range(cfg["n"]):
    logger.reward(f"{cfg['tag']}-{i % 5}", i, 1.0, event_id=f"{cfg['tag']}-{i}")
if cfg["hold"]:
    while True:
        try:
            logger.flush(timeout=0.3)
        except TimeoutError as exc:
            if f" {cfg['n']} spooled to disk" in str(exc):
                break
    time.sleep(0.5)  # the sender fsyncs the spool once per loop
    print("READY", flush=True)
    sys.stdin.readline()
logger.close(timeout=cfg["close_timeout"])
print("CLOSED", flush=True)
"""


def _sdk(spool_dir: Path) -> dict[str, Any]:
    return {
        "spool_dir": str(spool_dir),
        "linger_ms": 5,
        "outage_after_s": 0.5,
        "reconnect_backoff_s": 0.2,
        "max_block_ms": 500,
    }


def _config(
    kafka: KafkaSettings,
    spool_dir: Path,
    tag: str,
    n: int,
    *,
    hold: bool = False,
    close_timeout: float = 30.0,
) -> str:
    return json.dumps(
        {
            "kafka": kafka.model_dump(mode="json"),
            "sdk": _sdk(spool_dir),
            "tag": tag,
            "n": n,
            "hold": hold,
            "close_timeout": close_timeout,
        }
    )


def _start(config: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, config],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _run_together(configs: list[str]) -> None:
    children = [_start(c) for c in configs]
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0 and "CLOSED" in out, out


def _wait_ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "READY", line


def _nowhere(kafka: KafkaSettings) -> KafkaSettings:
    return kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{find_free_port()}"})


def _files(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(directory.iterdir())}


def _assert_exactly_once(kafka: KafkaSettings, expected: set[str]) -> None:
    seen = Counter(event["event_id"] for _, event in read_events(kafka, len(expected), 60.0))
    lost = expected - set(seen)
    doubled = {e: c for e, c in seen.items() if c > 1}
    unexpected = set(seen) - expected
    assert not lost and not doubled and not unexpected, (
        f"{len(lost)} lost, {len(doubled)} sent more than once, {len(unexpected)} unexpected "
        f"of {len(expected)} events"
    )


def test_two_processes_on_one_spool_send_every_event_exactly_once(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    nowhere = _nowhere(kafka)
    _run_together([_config(nowhere, spool, f"off{k}", 3_000, close_timeout=0.5) for k in (1, 2)])
    _run_together([_config(kafka, spool, f"on{k}", 1_000) for k in (1, 2)])

    expected = {f"{tag}-{i}" for tag in ("off1", "off2") for i in range(3_000)}
    expected |= {f"{tag}-{i}" for tag in ("on1", "on2") for i in range(1_000)}
    _assert_exactly_once(kafka, expected)


def test_a_live_process_directory_is_never_touched_by_another_logger(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    holder = _start(_config(_nowhere(kafka), spool, "held", 500, hold=True, close_timeout=0.5))
    try:
        _wait_ready(holder)
        (held_dir,) = [p for p in spool.iterdir() if p.is_dir()]
        before = _files(held_dir)
        assert any(name.endswith(".spool") for name in before)

        with DecisionLogger(kafka=kafka, settings=SdkSettings(**_sdk(spool))) as other:
            for i in range(200):
                other.reward("mine", i, 1.0, event_id=f"mine-{i}")
            other.flush(timeout=30)
        assert _files(held_dir) == before
        _assert_exactly_once(kafka, {f"mine-{i}" for i in range(200)})
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.communicate(timeout=60)
    assert holder.returncode == 0


def test_a_killed_process_directory_is_adopted_and_sent_once(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    victim = _start(_config(_nowhere(kafka), spool, "killed", 2_000, hold=True))
    try:
        _wait_ready(victim)
        (victim_dir,) = [p for p in spool.iterdir() if p.is_dir()]
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    started = time.monotonic()
    with DecisionLogger(kafka=kafka, settings=SdkSettings(**_sdk(spool))) as heir:
        for i in range(300):
            heir.reward("heir", i, 1.0, event_id=f"heir-{i}")
        heir.flush(timeout=30)
    assert time.monotonic() - started < 30
    assert not victim_dir.exists()
    expected = {f"killed-{i}" for i in range(2_000)} | {f"heir-{i}" for i in range(300)}
    _assert_exactly_once(kafka, expected)


def test_segments_of_an_older_version_in_the_root_are_adopted(tmp_path: Path) -> None:
    from services.sdk.batch_records import BatchRecord
    from services.sdk.spool import DiskSpool

    root = tmp_path / "spool"
    old = DiskSpool(root, 1 << 20, fsync=False)
    for i in range(3):
        old.append(BatchRecord(0, f"record-{i}".encode(), 2))
    old.close()
    (own,) = [p for p in root.iterdir() if p.is_dir()]
    for path in own.glob("seg-*"):
        path.rename(root / path.name)  # where versions before per-process directories wrote

    spool = DiskSpool(root, 1 << 20)
    assert spool.unread_events == 6 and not list(root.glob("seg-*"))
    assert [spool.read_next().batch.value for _ in range(3)] == [  # type: ignore[union-attr]
        f"record-{i}".encode() for i in range(3)
    ]
    spool.close()
