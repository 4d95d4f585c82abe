"""The long-running processes the demo starts — and always stops.

The embedded broker is started through :mod:`services.broker.embedded`; the sessionizer runs as
its own ``policyloop sessionize`` process (as it would in production, where it is a separate
deployment), configured through ``POLICYLOOP_*`` environment variables built from the demo's
settings, and stopped with SIGTERM so that it commits what it holds before exiting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from services.broker.embedded import find_free_port
from services.cli.settings import Settings
from services.delta_tables import open_table

__all__ = ["SessionizerProcess", "settings_environment", "timeline_rows"]


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _flatten(f"{prefix}__{name.upper()}", getattr(value, name), out)
    elif value is None:
        return
    elif isinstance(value, (list, dict)):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = str(value)


def settings_environment(settings: Settings, sections: tuple[str, ...]) -> dict[str, str]:
    """``POLICYLOOP_*`` variables that reproduce ``sections`` of ``settings`` in a child process."""
    out = {"POLICYLOOP_HOME": settings.home}
    for section in sections:
        _flatten(f"POLICYLOOP_{section.upper()}", getattr(settings, section), out)
    return out


def timeline_rows(table_uri: str) -> int:
    """Rows committed to the timeline so far (0 before the first commit), from the Delta log's
    per-file record counts: no data file is read."""
    table = open_table(table_uri)
    if table is None:
        return 0
    counts = pa.table(table.get_add_actions(flatten=True)).column("num_records")
    return int(pc.sum(counts).as_py() or 0)


class SessionizerProcess:
    """``policyloop sessionize`` in the background, with its /metrics port and log file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.metrics_port = find_free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYLOOP_")}
        env.update(settings_environment(settings, ("kafka", "sessionizer", "tables")))
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.cli",
                "sessionize",
                "--metrics-port",
                str(self.metrics_port),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Return once /metrics answers; raise with the log's tail if the process died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the sessionizer exited early:\n{self._tail()}")
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the sessionizer did not serve /metrics within {timeout_s:.0f} s")

    def wait_rows(self, table_uri: str, expected: int, timeout_s: float = 120.0) -> int:
        """Wait until the timeline holds ``expected`` rows; returns how many it holds."""
        deadline = time.monotonic() + timeout_s
        rows = timeline_rows(table_uri)
        while rows < expected and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the sessionizer exited:\n{self._tail()}")
            time.sleep(0.5)
            rows = timeline_rows(table_uri)
        if rows < expected:
            raise RuntimeError(
                f"the timeline holds {rows} rows after {timeout_s:.0f} s, expected {expected}"
            )
        return rows

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (the worker commits what it holds), then SIGKILL after ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def _tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])
