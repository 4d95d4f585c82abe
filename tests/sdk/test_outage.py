"""A broker outage mid-stream: what is logged meanwhile arrives after it, in order, once."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.broker.embedded import (
    start_broker,
    stop_broker,
)
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from services.sdk import DecisionLogger
from tests.proxied_broker import broker_behind
from tests.sdk.conftest import read_events
from tests.sdk.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPISODES = 40


def _log_round(logger: DecisionLogger, step: int, log: dict[str, list[str]]) -> None:
    """One decision and its reward for every episode."""
    for e in range(EPISODES):
        episode = f"ep-{e}"
        log[episode].append(
            logger.decision(episode, step, {"x": float(step)}, 1, [0, 1], 0.25, "v1")
        )
        log[episode].append(logger.reward(episode, step, float(e)))


def _log_for(logger: DecisionLogger, seconds: float, first_step: int, log) -> int:
    step = first_step
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        _log_round(logger, step, log)
        step += 1
        time.sleep(0.02)
    return step


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[TcpProxy, KafkaSettings]]:
    """A private Tansu that advertises a cuttable proxy's address, so clients go through it."""
    with broker_behind(TcpProxy, tmp_path / "tansu.log", "outage") as (proxy, kafka):
        yield proxy, kafka


def test_network_cut_every_event_arrives_exactly_once_in_order(
    proxied_broker, sdk_settings, registry: CollectorRegistry
) -> None:
    proxy, kafka = proxied_broker
    logged: dict[str, list[str]] = defaultdict(list)
    with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
        step = _log_for(logger, 1.0, 0, logged)
        proxy.cut()
        step = _log_for(logger, 3.0, step, logged)
        spooled = registry.get_sample_value("policyloop_sdk_events_spooled_total")
        proxy.restore()
        _log_for(logger, 0.5, step, logged)
        logger.flush(timeout=60)

    assert spooled, "nothing went to the disk spool during the cut"
    total = sum(len(ids) for ids in logged.values())
    got: dict[str, list[str]] = defaultdict(list)
    for _, event in read_events(kafka, total, timeout_s=60):
        got[event["episode_id"]].append(event["event_id"])
    assert got == logged


def test_broker_restart_events_logged_while_it_was_down_arrive_in_order_once(
    tmp_path: Path, sdk_settings, registry: CollectorRegistry
) -> None:
    home = tmp_path / "broker"
    handle = start_broker(home, port=0)
    kafka = KafkaSettings(
        bootstrap_servers=handle.bootstrap_servers, topic_prefix="restart", partitions=4
    )
    ensure_topics(kafka)
    before: dict[str, list[str]] = defaultdict(list)
    during: dict[str, list[str]] = defaultdict(list)
    try:
        with DecisionLogger(kafka=kafka, settings=sdk_settings(), registry=registry) as logger:
            step = _log_for(logger, 1.0, 0, before)
            logger.flush(timeout=30)  # the old broker acknowledged all of `before`
            stop_broker(home)
            step = _log_for(logger, 3.0, step, during)
            start_broker(home, port=handle.port)
            ensure_topics(kafka)
            logger.flush(timeout=60)
        total = sum(len(ids) for ids in during.values())
        # The restarted broker starts empty (Tansu keeps data in memory): it must hold exactly
        # what was logged while it was down, in order, none twice.
        got: dict[str, list[str]] = defaultdict(list)
        for _, event in read_events(kafka, total, timeout_s=60):
            got[event["episode_id"]].append(event["event_id"])
        assert got == during
    finally:
        stop_broker(home)
