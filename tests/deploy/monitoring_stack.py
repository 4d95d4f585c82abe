"""Real Prometheus and Pushgateway (the Debian packages ``make apt-deps`` installs) on loopback.

Both run as child processes on free ports with their state in a temporary directory; the
context managers stop them. A missing binary skips the test with the reason on a developer's
machine, and fails it under CI (``CI`` set) or ``make test`` (``POLICYLOOP_REQUIRE_MONITORING``
set), where a silent skip would hide that the monitoring is not tested at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from services.broker.embedded import find_free_port

__all__ = [
    "REQUIRE_MONITORING",
    "prometheus_query",
    "require_binary",
    "running_prometheus",
    "running_pushgateway",
    "unavailable",
    "wait_until_ready",
]

#: Set (to anything but ``0``/``false``/empty) by ``make test``: a missing binary fails the test.
REQUIRE_MONITORING = "POLICYLOOP_REQUIRE_MONITORING"


def _set(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() not in ("", "0", "false", "no")


def unavailable(message: str) -> NoReturn:
    """What the test cannot have here: skip with ``message``, or fail under CI / make test."""
    if _set("CI") or _set(REQUIRE_MONITORING):
        pytest.fail(f"{message}; CI and make test ({REQUIRE_MONITORING}=1) require it")
    pytest.skip(message)


def require_binary(*names: str) -> str:
    """The path of the first of ``names`` on PATH; else skip, or fail under CI / make test."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    unavailable(f"{names[0]} not installed: `make apt-deps` installs it (make test does)")


def wait_until_ready(url: str, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; fail with the process's output if it exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")
        time.sleep(0.1)


@contextlib.contextmanager
def _running(args: list[str], ready_url: str) -> Iterator[None]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(ready_url, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_pushgateway() -> Iterator[str]:
    """A Pushgateway on a free loopback port; yields its URL."""
    binary = require_binary("prometheus-pushgateway", "pushgateway")
    port = find_free_port()
    url = f"http://127.0.0.1:{port}"
    with _running([binary, f"--web.listen-address=127.0.0.1:{port}"], url + "/-/ready"):
        yield url


@contextlib.contextmanager
def running_prometheus(
    config: dict[str, Any], workdir: Path, port: int | None = None
) -> Iterator[str]:
    """Prometheus with ``config`` (a prometheus.yml as a dict) on ``port`` of loopback (default:
    a free one); yields its URL."""
    binary = require_binary("prometheus")
    port = port or find_free_port()
    config_path = workdir / "prometheus.yml"
    config_path.write_text(json.dumps(config))  # YAML is a superset of JSON
    url = f"http://127.0.0.1:{port}"
    args = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _running(args, url + "/-/ready"):
        yield url


def prometheus_query(url: str, query: str) -> list[dict[str, Any]]:
    """The instant vector of ``query`` through the HTTP API (``data.result``)."""
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(full, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]
