"""``policyloop rollout watch`` without ``--until-done`` is a controller that keeps ticking."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_watch_keeps_ticking_while_idle_and_stops_cleanly_on_ctrl_c(env, registry):
    command = [sys.executable, "-m", "services.cli", "rollout", "watch", "--every", "0.2"]
    watcher = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(lines) < 3:
            assert time.monotonic() < deadline, lines
            line = watcher.stdout.readline()
            assert line, f"watch exited early: {lines}"
            lines.append(line)
        assert watcher.poll() is None  # idle is no reason to stop without --until-done
        watcher.send_signal(signal.SIGINT)
        rest, _ = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, rest
    assert all(line.split()[1] == "idle:" for line in lines), lines
    assert rest.strip().endswith("stopped")
    assert registry.rollout() is None and registry.current() == "v1"
