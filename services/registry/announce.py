"""Announcing a version on ``<prefix>.policy-updates`` (the message: :mod:`schemas.announcement`).

Serving processes hot-reload from the registry anyway; the announcement only makes them notice
sooner and lets other systems react. So it is best effort by design: a failed announcement is
logged and counted, and never undoes a publication that already happened.

The TLS and SASL settings are checked first (:func:`services.kafka_access.check_credentials`):
kafka-python would spend the whole ``timeout_s`` retrying a refused login and then log "unable
to bootstrap"; the check logs at once which broker refused what, and which setting to fix.
"""

from __future__ import annotations

import logging

from schemas.announcement import Announcement
from services.kafka_access import check_credentials
from services.kafka_settings import KafkaSettings

__all__ = ["announce_policy"]

log = logging.getLogger(__name__)


def announce_policy(
    kafka: KafkaSettings, message: Announcement, *, timeout_s: float = 10.0
) -> bool:
    """Send ``message`` keyed by policy name; True when the broker acknowledged it."""
    from kafka import KafkaProducer  # imported here: the registry works without a broker

    producer = None
    try:
        check_credentials(kafka, timeout_s=timeout_s)
        producer = KafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id="policyloop-learner",
            acks="all",
            max_block_ms=int(timeout_s * 1000),
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            **kafka.client_options(),
        )
        future = producer.send(
            kafka.policy_updates_topic, key=message.key(), value=message.encode()
        )
        future.get(timeout=timeout_s)
        return True
    except Exception as exc:  # any failure here is reported, never raised: see module doc
        log.warning(
            "could not announce %s %s on %s: %s",
            message.policy,
            message.version,
            kafka.policy_updates_topic,
            exc,
        )
        return False
    finally:
        if producer is not None:
            try:
                producer.close(timeout=1)
            except Exception:
                pass
