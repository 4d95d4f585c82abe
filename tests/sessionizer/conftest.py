"""Fixtures of the sessionizer tests."""

from __future__ import annotations

import uuid

import pytest

from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics


@pytest.fixture
def one_partition(broker) -> KafkaSettings:
    """A fresh topic set with one events partition: every episode on it (the caps and the
    watermark are per partition)."""
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=1,
    )
    ensure_topics(kafka)
    return kafka
