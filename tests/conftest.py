"""Shared fixtures: one real embedded broker per test session, unique topics per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from services.broker.embedded import BrokerHandle, start_broker, stop_broker
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics


@pytest.fixture(scope="session")
def broker_home(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("broker-home")


@pytest.fixture(scope="session")
def broker(broker_home) -> Iterator[BrokerHandle]:
    """A real Tansu broker on a free loopback port, shared by the whole test session."""
    handle = start_broker(broker_home, port=0)
    try:
        yield handle
    finally:
        stop_broker(broker_home)


@pytest.fixture
def kafka(broker: BrokerHandle) -> KafkaSettings:
    """Kafka settings with a topic prefix of this test's own; its topics exist already."""
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=4,
    )
    ensure_topics(settings)
    return settings
