"""Published versions are announced on <prefix>.policy-updates; failures never un-publish."""

from __future__ import annotations

import pytest

from services.broker.embedded import find_free_port
from services.kafka_settings import KafkaSettings
from services.registry import Registry
from tests.learner.conftest import read_policy_updates
from tests.registry.tiny_policy import manifest


@pytest.mark.integration
def test_publish_announces_policy_version_and_sha256_exactly_once(tmp_path, kafka, tiny_bytes):
    registry = Registry(str(tmp_path / "registry"), "ranker", kafka=kafka)
    version = registry.publish(tiny_bytes, manifest())
    messages = read_policy_updates(kafka)
    assert [(m["policy"], m["version"], m["promoted"]) for m in messages] == [
        ("ranker", version, True)
    ]
    assert messages[0]["sha256"] == registry.manifest(version)["sha256"]
    assert isinstance(messages[0]["ts"], int)
    assert registry.announce_failures == 0


def test_unreachable_broker_is_counted_and_the_version_stays_published(tmp_path, tiny_bytes):
    port = find_free_port()  # free at this moment: nobody listens there
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")
    registry = Registry(str(tmp_path / "registry"), "ranker", kafka=kafka, announce_timeout_s=1.0)
    version = registry.publish(tiny_bytes, manifest())
    assert registry.announce_failures == 1
    assert registry.current() == version
    assert registry.verify(version)["version"] == version
