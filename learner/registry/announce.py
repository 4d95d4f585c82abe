"""Announcing a published version on ``<prefix>.policy-updates``.

Serving processes hot-reload from the registry anyway; the announcement only makes them notice
sooner and lets other systems react. So it is best effort by design: a failed announcement is
logged and counted, and never undoes a publication that already happened.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from services.kafka_settings import KafkaSettings

__all__ = ["announce_policy", "announcement"]

log = logging.getLogger(__name__)


def announcement(
    policy: str, version: str, sha256: str, ts_ms: int | None = None, *, promoted: bool = True
) -> dict[str, Any]:
    """The message body: ``{policy, version, sha256, ts, promoted}`` (ts in ms UTC).

    ``promoted`` is False for a version that was stored and verified but left for a staged
    rollout: listeners must not treat it as the new CURRENT.
    """
    return {
        "policy": policy,
        "version": version,
        "sha256": sha256,
        "ts": int(time.time() * 1000) if ts_ms is None else int(ts_ms),
        "promoted": promoted,
    }


def announce_policy(
    kafka: KafkaSettings, message: dict[str, Any], *, timeout_s: float = 10.0
) -> bool:
    """Send ``message`` as JSON keyed by policy name; True when the broker acknowledged it."""
    from kafka import KafkaProducer  # imported here: the registry works without a broker

    producer = None
    try:
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
            kafka.policy_updates_topic,
            key=str(message["policy"]).encode(),
            value=json.dumps(message, sort_keys=True).encode(),
        )
        future.get(timeout=timeout_s)
        return True
    except Exception as exc:  # any failure here is reported, never raised: see module doc
        log.warning(
            "could not announce %s %s on %s: %s",
            message.get("policy"),
            message.get("version"),
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
