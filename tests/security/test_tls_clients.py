"""Kafka over TLS, for real: every client of the product connects to a broker whose certificate
it trusts, and is refused at once, with a clear error, by one whose certificate it does not.

The broker is the real embedded Tansu behind a TLS front (``conftest.py``); the clients are the
SDK's ``DecisionLogger``, the sessionizer command (``policyloop sessionize --until-idle``) and
the learner's announcement of a published policy on ``<prefix>.policy-updates``.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from schemas.announcement import Announcement
from services.kafka_settings import KafkaSettings
from services.registry.announce import announce_policy
from services.sdk import DecisionLogger
from services.sdk.settings import SdkSettings
from tests.security.clients import read_values, run_sessionizer
from tests.security.conftest import COMMAND_REFUSED_WITHIN_S, REFUSED_WITHIN_S

pytestmark = pytest.mark.integration

SDK_LOG = "services.sdk.sender"  # the logger of the SDK's sender and its connection
OLD_TS = int(time.time() * 1000) - 30 * 86_400_000  # long closed reward windows: no waiting


def _log_episodes(kafka: KafkaSettings, spool, episodes: int = 5) -> None:
    with DecisionLogger(kafka=kafka, settings=SdkSettings(spool_dir=str(spool))) as logger:
        for e in range(episodes):
            for step in range(3):
                logger.decision(f"e{e}", step, {"x": 1.0}, 0, [0, 1], 0.5, "v1", ts=OLD_TS + step)
            logger.end_episode(f"e{e}", True, ts=OLD_TS + 3)
        logger.flush(30)


def _refusal_lines(records: list[logging.LogRecord], logger: str) -> list[str]:
    """The warnings and errors that ``logger`` (a part of ours, not a client library) logged."""
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING and r.name == logger]


# -- a client that trusts the broker's certificate ------------------------------------------------
def test_the_sdk_logs_decisions_over_tls(tls_kafka, tmp_path):
    _log_episodes(tls_kafka, tmp_path / "spool")
    assert len(read_values(tls_kafka, tls_kafka.events_topic)) > 0


def test_the_sessionizer_reads_the_events_over_tls(tls_kafka, tmp_path):
    _log_episodes(tls_kafka, tmp_path / "spool", episodes=5)
    done, _ = run_sessionizer(tls_kafka, tmp_path / "timeline", timeout_s=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "15 rows written" in done.stdout


def test_the_learner_announces_a_published_policy_over_tls(tls_kafka):
    message = Announcement.now("ranker", "v7", "ab" * 32)
    assert announce_policy(tls_kafka, message, timeout_s=10)
    [value] = read_values(tls_kafka, tls_kafka.policy_updates_topic)
    assert json.loads(value)["version"] == "v7"


# -- a client that does not trust it ---------------------------------------------------------------
def test_the_sdk_says_at_once_that_it_does_not_trust_the_broker(untrusting_kafka, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    settings = SdkSettings(spool_dir=str(tmp_path / "spool"), close_timeout_s=0)
    started = time.monotonic()
    with DecisionLogger(kafka=untrusting_kafka, settings=settings) as logger:
        logger.decision("e0", 0, {"x": 1.0}, 0, [0, 1], 0.5, "v1")
        while not _refusal_lines(caplog.records, SDK_LOG):
            assert time.monotonic() - started < REFUSED_WITHIN_S, "no error logged"
            time.sleep(0.1)
        with pytest.raises(TimeoutError):
            logger.flush(1)  # kept for later, not lost, and the call does not hang
    [line] = _refusal_lines(caplog.records, SDK_LOG)[:1]
    assert untrusting_kafka.bootstrap_servers in line
    assert "TLS verification of the broker" in line
    assert "certificate verify failed" in line
    assert "POLICYLOOP_KAFKA__SSL_CAFILE" in line


def test_the_sessionizer_stops_at_once_when_it_does_not_trust_the_broker(
    untrusting_kafka, tmp_path
):
    done, took_s = run_sessionizer(
        untrusting_kafka, tmp_path / "timeline", timeout_s=3 * COMMAND_REFUSED_WITHIN_S
    )
    assert done.returncode != 0
    assert took_s < COMMAND_REFUSED_WITHIN_S
    assert untrusting_kafka.bootstrap_servers in done.stderr
    assert "TLS verification of the broker" in done.stderr
    assert "certificate verify failed" in done.stderr


def test_the_learner_reports_at_once_that_it_does_not_trust_the_broker(untrusting_kafka, caplog):
    caplog.set_level(logging.WARNING, logger="services.registry.announce")
    started = time.monotonic()
    assert not announce_policy(untrusting_kafka, Announcement.now("ranker", "v7", "ab" * 32))
    assert time.monotonic() - started < REFUSED_WITHIN_S
    [line] = _refusal_lines(caplog.records, "services.registry.announce")
    assert untrusting_kafka.bootstrap_servers in line
    assert "TLS verification of the broker" in line
    assert "certificate verify failed" in line
