"""Real Prometheus and Pushgateway (the Debian packages ``make apt-deps`` installs) on loopback.

Both run as child processes on free ports with their state in a temporary directory; the
context managers stop them. Tests skip with the reason when the binaries are missing (outside
``make test``, which installs them).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.broker.embedded import find_free_port

__all__ = ["prometheus_query", "running_prometheus", "running_pushgateway", "wait_until_ready"]


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"{names[0]} not installed: `make apt-deps` installs it (make test does)")


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
    binary = _binary("prometheus-pushgateway", "pushgateway")
    port = find_free_port()
    url = f"http://127.0.0.1:{port}"
    with _running([binary, f"--web.listen-address=127.0.0.1:{port}"], url + "/-/ready"):
        yield url


@contextlib.contextmanager
def running_prometheus(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """Prometheus with ``config`` (a prometheus.yml as a dict) on a free port; yields its URL."""
    binary = _binary("prometheus")
    port = find_free_port()
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
