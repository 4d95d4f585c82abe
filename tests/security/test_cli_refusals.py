"""The commands that start Kafka clients, against a real broker that refuses their settings: one
error line naming the broker and the setting, exit code 1, no traceback, no password.

``sessionize`` meets the broker requiring SASL (it refuses every login, ``conftest.py``);
``broker up`` meets its own embedded broker, which takes no SASL, with SASL configured.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from services.broker.embedded import broker_status, stop_broker
from services.cli.main import cli
from tests.security.clients import run_sessionizer, security_env
from tests.security.conftest import COMMAND_REFUSED_WITHIN_S, SECRET, sasl_settings

pytestmark = pytest.mark.integration


def test_sessionize_says_in_one_line_that_the_broker_refused_its_login(
    sasl_brokers, certs, tmp_path
):
    kafka = sasl_settings(sasl_brokers.plaintext, tls=False, certs=certs)

    done, _ = run_sessionizer(kafka, tmp_path / "timeline", timeout_s=3 * COMMAND_REFUSED_WITHIN_S)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        f"Error: SASL authentication failed at the broker {kafka.bootstrap_servers}"
    )
    assert "POLICYLOOP_KAFKA__SASL_PLAIN_PASSWORD" in last_line
    assert SECRET not in done.stdout + done.stderr


def test_broker_up_says_in_one_line_that_its_broker_refused_the_login_and_stops_it(
    sasl_brokers, certs, tmp_path
):
    home = tmp_path / "home"
    kafka = sasl_settings(sasl_brokers.plaintext, tls=False, certs=certs)
    env = {"POLICYLOOP_HOME": str(home), **security_env(kafka)}
    try:
        result = CliRunner().invoke(cli, ["broker", "up", "--port", "0"], env=env)
        handle, _ = broker_status(home)
    finally:
        stop_broker(home)

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # click's exit, not a crash
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: SASL authentication failed at the broker 127.0.0.1:")
    assert line.endswith("the broker is stopped again")
    assert SECRET not in result.output
    assert handle is None
