"""DecisionLogger at its limits: a flush that times out, an event too large, a spool that is full.

Each limit raises an error that says what happened and which setting changes it, and nothing
accepted is lost without being counted and logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from schemas.wire import BATCH_OVERHEAD_BYTES, pack_event
from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.sdk import DecisionLogger, EventValidationError, QueueFullError, SdkError
from services.sdk.spool import DiskSpool
from tests.sdk.conftest import read_events

pytestmark = pytest.mark.integration

RECORD_MAX_BYTES = 1_024  # the smallest sdk.record_max_bytes allowed
EVENT_MAX_BYTES = RECORD_MAX_BYTES - BATCH_OVERHEAD_BYTES


def _unreachable() -> KafkaSettings:
    """Kafka settings pointing at a loopback port where nothing listens."""
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{find_free_port()}", topic_prefix="nowhere")


# -- flush timing out ------------------------------------------------------------------------
PENDING = re.compile(
    r"flush timed out after 1s: (\d+) events are not acknowledged by the broker at (\S+) "
    r"\((\d+) queued in memory, (\d+) in flight, (\d+) spooled to disk at (.+)\); "
    r"they are kept and re-sent"
)


def test_flush_against_an_unreachable_broker_times_out_saying_what_remains(
    sdk_settings, registry: CollectorRegistry
) -> None:
    settings = sdk_settings()
    nowhere = _unreachable()
    logger = DecisionLogger(kafka=nowhere, settings=settings, registry=registry)
    try:
        for step in range(10):
            logger.reward("ep", step, 1.0)
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            logger.flush(timeout=1.0)
        waited = time.monotonic() - started
    finally:
        logger.close(timeout=0.1)
    assert 1.0 <= waited < 3.0
    found = PENDING.fullmatch(str(info.value))
    assert found, str(info.value)
    not_acknowledged, where, queued, in_flight, spooled, spool_dir = found.groups()
    assert int(not_acknowledged) == 10
    assert int(queued) + int(in_flight) + int(spooled) == 10
    assert where == nowhere.bootstrap_servers and spool_dir == settings.spool_dir


def test_a_flush_that_timed_out_keeps_every_event_for_the_next_logger(
    sdk_settings, registry: CollectorRegistry
) -> None:
    settings = sdk_settings()
    logger = DecisionLogger(kafka=_unreachable(), settings=settings, registry=registry)
    for step in range(10):
        logger.reward("ep", step, 1.0)
    with pytest.raises(TimeoutError):
        logger.flush(timeout=0.3)
    logger.close(timeout=0.1)
    assert DiskSpool(settings.spool_dir, settings.spool_max_bytes).unread_events == 10


# -- an event over the record size limit -----------------------------------------------------
def _decision(step: int, note_chars: int) -> dict:
    """A decision event whose context holds ``note_chars`` characters."""
    return {
        "type": "decision",
        "event_id": f"d{step}-{note_chars}",
        "episode_id": "ep",
        "step": step,
        "ts": 1_700_000_000_000,
        "state": {"x": 0.5},
        "action": "a",
        "possible_actions": ["a", "b"],
        "propensity": 0.5,
        "policy_version": "v1",
        "context": {"note": "n" * note_chars},
    }


def _chars_for(size: int) -> int:
    """The note length that makes the packed decision exactly ``size`` bytes."""
    base = 400  # a 2-byte-length msgpack string from here to 65,535 characters
    return base + size - len(pack_event(_decision(0, base)))


def _log(logger: DecisionLogger, event: dict) -> str:
    return logger.decision(
        event["episode_id"],
        event["step"],
        event["state"],
        event["action"],
        event["possible_actions"],
        event["propensity"],
        event["policy_version"],
        context=event["context"],
        event_id=event["event_id"],
        ts=event["ts"],
    )


def _record_sizes(kafka: KafkaSettings) -> list[int]:
    """Byte size of every record value in the events topic."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(kafka.events_topic) or set()
        assigned = [TopicPartition(kafka.events_topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(assigned)
        sizes: list[int] = []
        deadline = time.monotonic() + 20
        while any(consumer.position(tp) < ends[tp] for tp in assigned):
            assert time.monotonic() < deadline, "records not read back in time"
            for messages in consumer.poll(timeout_ms=200).values():
                sizes.extend(len(m.value) for m in messages)
        return sizes
    finally:
        consumer.close()


def test_an_event_over_the_record_limit_is_refused_naming_the_limit_and_setting(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    too_large = _decision(0, _chars_for(EVENT_MAX_BYTES + 1))
    with DecisionLogger(
        kafka=kafka, settings=sdk_settings(record_max_bytes=RECORD_MAX_BYTES), registry=registry
    ) as logger:
        with pytest.raises(EventValidationError) as info:
            _log(logger, too_large)
        logger.flush(timeout=10)
    assert info.value.field == "event"
    assert f"{EVENT_MAX_BYTES + 1} bytes" in str(info.value)
    assert f"at most {EVENT_MAX_BYTES} bytes (sdk.record_max_bytes)" in str(info.value)
    assert read_events(kafka, expected=1, timeout_s=2) == []


def test_an_event_exactly_at_the_limit_travels_in_a_record_within_record_max_bytes(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    at_limit = _decision(0, _chars_for(EVENT_MAX_BYTES))
    assert len(pack_event(at_limit)) == EVENT_MAX_BYTES
    with DecisionLogger(
        kafka=kafka, settings=sdk_settings(record_max_bytes=RECORD_MAX_BYTES), registry=registry
    ) as logger:
        _log(logger, at_limit)
        _log(logger, _decision(1, 10))  # shares no record with it: that would be too large
        logger.flush(timeout=10)
    assert [event for _, event in read_events(kafka, expected=2)] == [at_limit, _decision(1, 10)]
    assert max(_record_sizes(kafka)) <= RECORD_MAX_BYTES


def test_a_refused_large_event_leaves_its_step_free_for_the_episode(
    kafka: KafkaSettings, sdk_settings, registry: CollectorRegistry
) -> None:
    with DecisionLogger(
        kafka=kafka, settings=sdk_settings(record_max_bytes=RECORD_MAX_BYTES), registry=registry
    ) as logger:
        with pytest.raises(EventValidationError):
            _log(logger, _decision(0, 2_000))
        _log(logger, _decision(0, 10))  # the same step again, now small enough
        logger.flush(timeout=10)
    assert [event for _, event in read_events(kafka, expected=1)] == [_decision(0, 10)]


# -- events that can be neither sent nor spooled ---------------------------------------------
@pytest.mark.parametrize("when_full", ["block", "spill"])
def test_with_the_spool_full_too_a_waiting_caller_is_told_to_raise_spool_max_bytes(
    sdk_settings, registry: CollectorRegistry, when_full: str
) -> None:
    # Broker unreachable (found out within max_block_ms=0.5 s) and no room in the spool: the
    # queue fills up, and the caller waits block_timeout_s, then learns which limit to raise.
    settings = sdk_settings(
        queue_max_events=100, when_full=when_full, block_timeout_s=1.5, spool_max_bytes=1
    )
    logger = DecisionLogger(kafka=_unreachable(), settings=settings, registry=registry)
    try:
        with pytest.raises(QueueFullError) as info:
            for step in range(10_000):
                logger.reward("ep", step, 1.0)
    finally:
        logger.close(timeout=0.1)
    assert "queue_max_events=100" in str(info.value)
    assert "The disk spool is full too: raise sdk.spool_max_bytes." in str(info.value)


def test_events_that_cannot_be_spooled_at_close_are_counted_and_logged_as_dropped(
    sdk_settings, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    settings = sdk_settings(spool_max_bytes=1)
    logger = DecisionLogger(kafka=_unreachable(), settings=settings, registry=registry)
    for step in range(50):
        logger.reward("ep", step, 1.0)
    with caplog.at_level(logging.ERROR, logger="services.sdk.sender"):
        logger.close(timeout=0.2)

    dropped = registry.get_sample_value(
        "policyloop_sdk_events_dropped_total", {"reason": "spool_full"}
    )
    assert dropped == 50
    logged = [re.match(r"dropped (\d+) events at close", r.getMessage()) for r in caplog.records]
    assert sum(int(m[1]) for m in logged if m) == 50


def test_a_flush_waiting_while_close_drops_what_cannot_be_spooled_raises_saying_so(
    sdk_settings, registry: CollectorRegistry
) -> None:
    settings = sdk_settings(spool_max_bytes=1)
    logger = DecisionLogger(kafka=_unreachable(), settings=settings, registry=registry)
    for step in range(50):
        logger.reward("ep", step, 1.0)
    raised: list[BaseException] = []

    def flush() -> None:
        try:
            logger.flush(timeout=30)
        except BaseException as exc:  # the test inspects it
            raised.append(exc)

    waiting = threading.Thread(target=flush)
    waiting.start()
    time.sleep(0.3)
    logger.close(timeout=0.1)
    waiting.join(10)
    assert not waiting.is_alive(), "flush did not return after close"
    assert len(raised) == 1 and type(raised[0]) is SdkError, raised
    assert str(raised[0]).startswith(
        "50 events could be neither delivered nor spooled (spool_max_bytes=1)"
    )
