"""``sdk.spool_write_through``: ``durable_events`` says which accepted events survive kill -9.

The decision service's durable mode acknowledges an event only once ``durable_events`` passed
it; these tests hold the SDK to that with real processes, a real spool and the real broker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.sdk.logger import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Logs ``n`` decisions with write-through while no broker answers, waits until every one is
# durable, says so and kills itself: nothing is flushed, closed or sent.
CHILD = """
import json, os, signal, sys, time
from services.kafka_settings import KafkaSettings
from services.sdk.logger import DecisionLogger
from services.sdk.settings import SdkSettings

cfg = json.loads(sys.argv[1])
logger = DecisionLogger(kafka=KafkaSettings(**cfg["kafka"]), settings=SdkSettings(**cfg["sdk"]))
for i in range(cfg["n"]):
    logger.decision(f"ep-{i % 7}", i // 7, {"x": 1.0}, 0, [0, 1], 0.5, "v1", event_id=f"d-{i}")
deadline = time.monotonic() + 20
while logger.durable_events(wake=True) < logger.accepted_events and time.monotonic() < deadline:
    time.sleep(0.005)
print(logger.accepted_events, logger.durable_events(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_events_counted_durable_survive_kill_9_and_are_sent_by_the_next_logger(kafka, tmp_path):
    spool = tmp_path / "spool"
    away = KafkaSettings(bootstrap_servers=f"127.0.0.1:{find_free_port()}", topic_prefix="x")
    cfg = {
        "kafka": away.model_dump(mode="json") | {"topic_prefix": kafka.topic_prefix},
        "sdk": {"spool_dir": str(spool), "spool_write_through": True, "linger_ms": 5},
        "n": 500,
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -9, child.stderr[-2000:]
    accepted, durable = map(int, child.stdout.split())
    assert accepted == durable == 500
    settings = SdkSettings(spool_dir=str(spool), linger_ms=5)
    with DecisionLogger(kafka=kafka, settings=settings) as logger:
        logger.flush(timeout=30)
    ids = sorted(e["event_id"] for _, e in read_events(kafka, expected=500))
    assert ids == sorted(f"d-{i}" for i in range(500))


def test_durable_events_stays_zero_without_write_through(kafka, tmp_path):
    settings = SdkSettings(spool_dir=str(tmp_path / "spool"), linger_ms=5)
    with DecisionLogger(kafka=kafka, settings=settings) as logger:
        logger.decision("ep", 0, {"x": 1.0}, 0, [0, 1], 0.5, "v1")
        logger.flush(timeout=20)
        assert logger.accepted_events == 1 and logger.durable_events() == 0


def test_write_through_delivers_every_event_through_the_spool_to_the_broker(kafka, tmp_path):
    settings = SdkSettings(spool_dir=str(tmp_path / "spool"), linger_ms=2, spool_write_through=True)
    with DecisionLogger(kafka=kafka, settings=settings) as logger:
        for i in range(2000):
            logger.reward(f"ep-{i % 11}", i, 1.0, event_id=f"r-{i}")
        logger.flush(timeout=30)
        assert logger.durable_events() == 2000
    ids = sorted(e["event_id"] for _, e in read_events(kafka, expected=2000))
    assert ids == sorted(f"r-{i}" for i in range(2000))
