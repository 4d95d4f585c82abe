"""`policyloop broker up|down|status` against the real Tansu binary."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.broker.embedded import broker_status, find_free_port, metadata_ready, stop_broker
from services.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("POLICYLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("POLICYLOOP_CONFIG", raising=False)
    runner = CliRunner()
    started = []

    def invoke(*args):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        if args[:2] == ("broker", "up") and result.exit_code == 0:
            started.append(True)
        return result

    yield invoke
    if started:
        runner.invoke(cli, ["broker", "down"])


def test_up_then_status_then_down(run):
    port = find_free_port()
    up = run("broker", "up", "--port", str(port))
    assert up.exit_code == 0, up.output
    assert f"127.0.0.1:{port}" in up.output
    assert metadata_ready("127.0.0.1", port)

    status = run("broker", "status")
    assert status.exit_code == 0
    assert "ready" in status.output

    down = run("broker", "down")
    assert down.exit_code == 0 and "stopped" in down.output
    assert not metadata_ready("127.0.0.1", port)
    status = run("broker", "status")
    assert status.exit_code == 1 and "not running" in status.output


def test_up_creates_the_product_topics(run):
    from kafka.admin import KafkaAdminClient

    port = find_free_port()
    assert run("broker", "up", "--port", str(port)).exit_code == 0
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
    try:
        topics = set(admin.list_topics())
    finally:
        admin.close()
    assert {"policyloop.events", "policyloop.dlq", "policyloop.policy-updates"} <= topics


def test_port_zero_picks_a_free_port(run):
    up = run("broker", "up", "--port", "0")
    assert up.exit_code == 0
    assert "POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:" in up.output


def test_port_in_use_gives_a_one_line_error_that_says_what_to_do(run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("broker", "up", "--port", str(port))
    assert result.exit_code == 1
    message = result.output.strip()
    assert "\n" not in message
    assert f"port {port}" in message and "--port" in message


def test_second_up_while_running_says_a_broker_is_already_running(run):
    assert run("broker", "up", "--port", "0").exit_code == 0
    again = run("broker", "up", "--port", "0")
    assert again.exit_code == 1
    assert "already running" in again.output and "broker down" in again.output


def test_missing_binary_gives_a_one_line_error(run, monkeypatch, tmp_path):
    monkeypatch.setenv("POLICYLOOP_BROKER__BINARY", str(tmp_path / "no-such-tansu"))
    result = run("broker", "up", "--port", "0")
    assert result.exit_code == 1
    assert "missing or not executable" in result.output
    assert "\n" not in result.output.strip()


def test_broker_that_never_answers_is_stopped_with_a_clear_error(run, monkeypatch, tmp_path):
    fake = tmp_path / "silent-broker"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("POLICYLOOP_BROKER__BINARY", str(fake))
    monkeypatch.setenv("POLICYLOOP_BROKER__READY_TIMEOUT_S", "1")
    result = run("broker", "up", "--port", "0")
    assert result.exit_code == 1
    assert "did not answer a metadata request" in result.output
    assert "was stopped" in result.output
    status = run("broker", "status")
    assert "not running" in status.output


def test_down_without_broker_says_so(run):
    result = run("broker", "down")
    assert result.exit_code == 0 and "no broker running" in result.output


def _policyloop(home, *args: str) -> subprocess.CompletedProcess:
    """The real ``policyloop`` command in a process of its own, which exits before this returns."""
    env = {k: v for k, v in os.environ.items() if k != "POLICYLOOP_CONFIG"}
    env["POLICYLOOP_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_broker_outlives_the_cli_process_that_started_it(tmp_path):
    home = tmp_path / "home"
    try:
        up = _policyloop(home, "broker", "up", "--port", "0")
        assert up.returncode == 0, up.stderr
        address = re.search(r"broker up at ([\d.]+):(\d+) ", up.stdout)
        assert address, up.stdout
        host, port = address.group(1), int(address.group(2))

        assert metadata_ready(host, port)  # the `up` process is gone; the broker still answers
        handle, ready = broker_status(home)
        assert ready and handle.port == port
        assert "ready" in _policyloop(home, "broker", "status").stdout

        down = _policyloop(home, "broker", "down")
        assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
        assert not metadata_ready(host, port)
    finally:
        stop_broker(home)
