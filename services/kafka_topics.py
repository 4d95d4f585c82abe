"""Create the product's topics on a broker that does not have them yet."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from services.kafka_access import check_credentials
from services.kafka_settings import KafkaSettings

__all__ = ["ensure_topics", "product_topics"]


class _NoConfigDump(logging.Filter):
    """Drops kafka-python's DEBUG line that prints the admin client's options, password too."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Starting KafkaAdminClient with configuration")


logging.getLogger("kafka.admin.client").addFilter(_NoConfigDump())


def product_topics(kafka: KafkaSettings) -> list[str]:
    """The topics of one ``topic_prefix``: events, dead letters, policy updates."""
    return [kafka.events_topic, kafka.dlq_topic, kafka.policy_updates_topic]


def ensure_topics(kafka: KafkaSettings, names: Iterable[str] | None = None) -> list[str]:
    """Create the missing topics among ``names`` (default: the product's); returns those made.

    Events are keyed by episode, so the events topic's partition count fixes how many
    sessionizer replicas can share the work; set ``kafka.partitions`` before the first start.
    Raises :class:`~services.kafka_errors.KafkaAccessError` if the broker refuses the TLS or
    SASL settings.
    """
    wanted = list(names) if names is not None else product_topics(kafka)
    check_credentials(kafka)  # a refused login or certificate: say so, instead of timing out
    admin = KafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers,
        client_id="policyloop-admin",
        **kafka.client_options(),
    )
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        created = []
        for name in missing:
            partitions = kafka.partitions if name == kafka.events_topic else 1
            try:
                admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
