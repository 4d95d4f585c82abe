"""Kafka with SASL (SCRAM-SHA-512), without and with TLS, for real: a client whose password the
broker refuses is told so at once, with a clear error naming the broker, and the password shows
up nowhere (log lines, errors, the command's output).

The broker is the real embedded Tansu started with ``--authentication``. This build cannot hold
a user (``conftest.py``), so every login is refused: these tests pin the refusal. That the right
password gets in cannot be shown against it; ``test_access_check.py`` checks our SCRAM exchange
against the RFC 7677 test vector instead.
"""

from __future__ import annotations

import logging
import time

import pytest

from schemas.announcement import Announcement
from services.registry.announce import announce_policy
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.security.clients import run_sessionizer
from tests.security.conftest import COMMAND_REFUSED_WITHIN_S, REFUSED_WITHIN_S, SECRET

pytestmark = pytest.mark.integration


def _warnings(records: list[logging.LogRecord], logger: str) -> list[str]:
    """The warnings and errors that ``logger`` (a part of ours, not a client library) logged."""
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING and r.name == logger]


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


def test_the_sdk_says_at_once_that_the_broker_refused_its_login(
    wrong_password_kafka, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    settings = SdkSettings(spool_dir=str(tmp_path / "spool"), close_timeout_s=0)
    started = time.monotonic()
    with DecisionLogger(kafka=wrong_password_kafka, settings=settings) as logger:
        logger.decision("e0", 0, {"x": 1.0}, 0, [0, 1], 0.5, "v1")
        while not _warnings(caplog.records, "services.sdk.sender"):
            assert time.monotonic() - started < REFUSED_WITHIN_S, "no error logged"
            time.sleep(0.1)
        with pytest.raises(TimeoutError) as timed_out:
            logger.flush(1)  # kept for later, not lost, and the call does not hang
    line = _warnings(caplog.records, "services.sdk.sender")[0]
    assert wrong_password_kafka.bootstrap_servers in line
    assert "SASL authentication failed" in line
    assert "user 'policyloop'" in line and "SCRAM-SHA-512" in line
    assert "POLICYLOOP_KAFKA__SASL_PLAIN_PASSWORD" in line
    _assert_no_secret(caplog.text, *(r.getMessage() for r in caplog.records), str(timed_out.value))


def test_the_sessionizer_stops_at_once_when_the_broker_refuses_its_login(
    wrong_password_kafka, tmp_path
):
    done, took_s = run_sessionizer(
        wrong_password_kafka, tmp_path / "timeline", timeout_s=3 * COMMAND_REFUSED_WITHIN_S
    )
    assert done.returncode != 0
    assert took_s < COMMAND_REFUSED_WITHIN_S
    assert wrong_password_kafka.bootstrap_servers in done.stderr
    assert "SASL authentication failed" in done.stderr
    _assert_no_secret(done.stdout, done.stderr)


def test_the_learner_reports_at_once_that_the_broker_refused_its_login(
    wrong_password_kafka, caplog
):
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    message = Announcement.now("ranker", "v7", "ab" * 32)
    assert not announce_policy(wrong_password_kafka, message)
    assert time.monotonic() - started < REFUSED_WITHIN_S
    [line] = _warnings(caplog.records, "services.registry.announce")
    assert wrong_password_kafka.bootstrap_servers in line
    assert "SASL authentication failed" in line
    _assert_no_secret(caplog.text, *(r.getMessage() for r in caplog.records))
