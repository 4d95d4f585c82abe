"""Minutes of traffic from several processes through repeated network outages: nothing lost,
nothing doubled, every episode's events in the order they were logged.

``make soak`` runs this (marker ``soak``); ``tests/sdk/test_outage.py`` covers one cut in
``make test``. The broker stays alive behind a cuttable proxy (Tansu keeps data in memory only),
so the topic can be checked event by event afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from services.kafka_settings import KafkaSettings
from tests.sdk.conftest import read_events
from tests.sdk.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.soak]

REPO = Path(__file__).resolve().parents[2]

# Logs decisions and rewards for `seconds`, 20 episodes at a time, ending each after 30 steps;
# writes the event ids it logged, per episode and in order, as JSON on stdout at the end.
CHILD = """
import json, sys, time
from services.kafka_settings import KafkaSettings
from services.sdk.logger import DecisionLogger
from services.sdk.settings import SdkSettings

cfg = json.loads(sys.argv[1])
logger = DecisionLogger(kafka=KafkaSettings(**cfg["kafka"]), settings=SdkSettings(**cfg["sdk"]))
logged = {}
until = time.monotonic() + cfg["seconds"]
batch = 0
while time.monotonic() < until:
    for e in range(20):
        episode = f"{cfg['tag']}-{batch}-{e}"
        ids = logged.setdefault(episode, [])
        for step in range(30):
            ids.append(logger.decision(episode, step, {"x": step / 30}, 1, [0, 1], 0.5, "v1"))
            ids.append(logger.reward(episode, step, 1.0))
        ids.append(logger.end_episode(episode, terminal=True))
    batch += 1
    time.sleep(0.05)
logger.flush(timeout=120)
logger.close()
print(json.dumps(logged))
"""


def _child(kafka: KafkaSettings, spool: Path, tag: str, seconds: float) -> subprocess.Popen[str]:
    config = {
        "kafka": kafka.model_dump(mode="json"),
        "sdk": {
            "spool_dir": str(spool),
            "linger_ms": 5,
            "outage_after_s": 0.5,
            "reconnect_backoff_s": 0.2,
            "max_block_ms": 500,
        },
        "tag": tag,
        "seconds": seconds,
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_three_processes_through_repeated_outages_deliver_every_event_once_in_order(
    proxied_broker: tuple[TcpProxy, KafkaSettings], tmp_path: Path
) -> None:
    proxy, kafka = proxied_broker
    seconds = 60.0
    children = [_child(kafka, tmp_path / "spool", f"p{k}", seconds) for k in range(3)]
    started = time.monotonic()
    cuts = 0
    while time.monotonic() - started < seconds - 5:
        time.sleep(5)
        proxy.cut()
        time.sleep(2 + cuts % 3)  # outages of 2, 3 and 4 s
        proxy.restore()
        cuts += 1
    logged: dict[str, list[str]] = {}
    for child in children:
        out, _ = child.communicate(timeout=300)
        assert child.returncode == 0, out[-2000:]
        logged.update(json.loads(out.strip().splitlines()[-1]))

    total = sum(len(ids) for ids in logged.values())
    got: dict[str, list[str]] = defaultdict(list)
    for _, event in read_events(kafka, total, timeout_s=120):
        got[event["episode_id"]].append(event["event_id"])
    lost = total - sum(len(set(ids) & set(got[e])) for e, ids in logged.items())
    doubled = sum(len(ids) - len(set(ids)) for ids in got.values())
    assert cuts >= 5 and total > 100_000, (cuts, total)
    assert (lost, doubled) == (0, 0), f"{lost} lost, {doubled} doubled of {total} events"
    assert dict(got) == logged  # and each episode's events in the order they were logged
