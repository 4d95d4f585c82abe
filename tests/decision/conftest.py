"""The decision service's test rig: a real ``policyloop serve`` subprocess over real HTTP, the
real embedded broker (session-wide, ``tests/conftest.py``), a real registry holding a served
CartPole-sized policy, and the real sessionizer in batch mode writing a real Delta timeline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.tables import TIMELINE_SCHEMA
from services.broker.embedded import find_free_port
from services.delta_tables import open_table, read_table
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from services.registry import Registry
from tests.rollout.factory import publish
from tests.sessionizer.workload import worker_command

REPO = Path(__file__).resolve().parents[2]
POLICY = "cartpole"
STATE = {"cart_position": 0.1, "cart_velocity": -0.2, "pole_angle": 0.03,
         "pole_angular_velocity": 0.4}  # fmt: skip


@dataclass
class Served:
    """A running ``policyloop serve``: its URL, process, log and spool."""

    url: str
    process: subprocess.Popen
    log: Path
    spool: Path

    def client(self, key: str | None = None, headers: dict | None = None) -> httpx.Client:
        headers = dict(headers or {})
        if key:
            headers["authorization"] = f"Bearer {key}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (workers close their loggers: what is unsent goes to the spool); the code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_server(
    kafka: KafkaSettings, registry_dir: Path, tmp: Path, *flags: str, env: dict | None = None
) -> Served:
    """``policyloop serve`` on a free loopback port, ready (``/readyz`` 200) or failed."""
    port = find_free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / f"serve-{port}.log"
    cmd = [
        sys.executable, "-m", "services.cli", "serve",
        "--port", str(port),
        "--bootstrap-servers", kafka.bootstrap_servers,
        "--topic-prefix", kafka.topic_prefix,
        "--registry", str(registry_dir),
        "--policy", POLICY,
        "--spool-dir", str(tmp / "spool"),
        "--poll-interval", "0.3",
        "--seed", "7",
        *flags,
    ]  # fmt: skip
    environment = dict(os.environ, PYTHONUNBUFFERED="1", POLICYLOOP_SDK__LINGER_MS="5")
    environment["POLICYLOOP_SERVE__RUN_DIR"] = str(tmp / "run")
    environment.update(env or {})
    with open(log, "ab") as out:
        process = subprocess.Popen(
            cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=environment
        )
    served = Served(f"http://127.0.0.1:{port}", process, log, tmp / "spool")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"policyloop serve exited with {process.returncode}:\n{served.log_tail()}")
        try:
            if httpx.get(f"{served.url}/readyz", timeout=2).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    served.stop()
    pytest.fail(f"policyloop serve was not ready within 90 s:\n{served.log_tail()}")


def fresh_kafka(broker: Any) -> KafkaSettings:
    """A topic set of its own on the session's broker."""
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=4,
    )
    ensure_topics(kafka)
    return kafka


def cartpole_registry(path: Path, kafka: KafkaSettings | None = None) -> Registry:
    """A registry whose CURRENT is a small state-dependent CartPole policy (v1)."""
    registry = Registry(str(path), POLICY, kafka=kafka)
    publish(registry, promote=True, seed=3)
    return registry


def sessionize(kafka: KafkaSettings, table_uri: Path) -> list[dict[str, Any]]:
    """``policyloop sessionize --until-idle`` (closing open episodes as truncated) to the end;
    the timeline's rows."""
    done = subprocess.run(
        worker_command(kafka, table_uri, until_idle=2, extra=["--close-open-episodes"]),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = open_table(str(table_uri))
    assert table is not None, f"no timeline at {table_uri}"
    return read_table(table, TIMELINE_SCHEMA).to_pylist()


@pytest.fixture(scope="module")
def module_kafka(broker: Any) -> KafkaSettings:
    return fresh_kafka(broker)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("decision")


@pytest.fixture(scope="module")
def registry(module_tmp: Path, module_kafka: KafkaSettings) -> Registry:
    return cartpole_registry(module_tmp / "registry", module_kafka)


@pytest.fixture(scope="module")
def server(module_kafka: KafkaSettings, registry: Registry, module_tmp: Path) -> Iterator[Served]:
    """One queued-mode server per test module."""
    served = start_server(module_kafka, Path(registry.uri), module_tmp / "server")
    try:
        yield served
    finally:
        served.stop()
