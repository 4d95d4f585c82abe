"""``policyloop serve`` refuses what it must before it binds anything, and its settings compose
like every other section's."""

from __future__ import annotations

import subprocess
import sys

from services.cli.settings import load_settings
from tests.decision.conftest import REPO


def _serve(*flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "services.cli", "serve", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, **(env or {})),
    )


def test_serve_refuses_a_non_loopback_address_without_api_keys():
    done = _serve("--host", "0.0.0.0", "--port", "1")
    assert done.returncode == 1
    assert "refusing to serve on 0.0.0.0 without API keys" in done.stderr
    assert "--allow-unauthenticated" in done.stderr


def test_serve_refuses_an_api_keys_variable_that_is_not_set():
    done = _serve("--api-keys-env", "POLICYLOOP_TEST_NO_SUCH_VAR", "--port", "1")
    assert done.returncode == 1
    assert "POLICYLOOP_TEST_NO_SUCH_VAR, which is not set" in done.stderr


def test_serve_settings_come_from_the_environment_and_default_to_loopback(monkeypatch):
    assert load_settings().serve.host == "127.0.0.1"
    monkeypatch.setenv("POLICYLOOP_SERVE__WORKERS", "3")
    monkeypatch.setenv("POLICYLOOP_SERVE__DURABILITY", "durable")
    settings = load_settings()
    assert (settings.serve.workers, settings.serve.durability) == (3, "durable")
