"""Fixtures of the SDK tests: a private spool dir, a private registry, a plain reader."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from schemas.wire import decode_record
from services.kafka_settings import KafkaSettings
from services.sdk.settings import SdkSettings


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def sdk_settings(tmp_path: Path) -> Callable[..., SdkSettings]:
    """SdkSettings with this test's own spool dir and short timeouts; override any field."""

    def make(**overrides: Any) -> SdkSettings:
        values: dict[str, Any] = {
            "spool_dir": str(tmp_path / "spool"),
            "linger_ms": 5,
            "outage_after_s": 0.5,
            "reconnect_backoff_s": 0.2,
            "max_block_ms": 500,
            "close_timeout_s": 5.0,
        }
        values.update(overrides)
        return SdkSettings(**values)

    return make


def read_events(
    kafka: KafkaSettings, expected: int, timeout_s: float = 30.0
) -> list[tuple[int, dict[str, Any]]]:
    """Read the events topic from the start with a plain kafka-python consumer.

    Returns ``(partition, event)`` in per-partition offset order; stops at ``expected`` events
    or after ``timeout_s`` (then it returns what it read, so the assertion shows the gap), and
    reads one more short while to catch duplicates beyond ``expected``.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=32 << 20,
        max_partition_fetch_bytes=8 << 20,
    )
    try:
        partitions = consumer.partitions_for_topic(kafka.events_topic) or set()
        consumer.assign([TopicPartition(kafka.events_topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        out: list[tuple[int, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s
        extra_until: float | None = None
        while time.monotonic() < deadline:
            if len(out) >= expected and extra_until is None:
                extra_until = time.monotonic() + 0.5
            if extra_until is not None and time.monotonic() >= extra_until:
                break
            batches = consumer.poll(timeout_ms=200)
            for tp in sorted(batches, key=lambda t: t.partition):
                for message in batches[tp]:
                    out.extend((tp.partition, e) for e in decode_record(message.value))
        return out
    finally:
        consumer.close()
