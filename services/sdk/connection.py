"""The sender's Kafka producer: its configuration, and connecting it in the background.

Why in the background: bootstrapping a kafka-python producer blocks for up to
``sdk.max_block_ms``; on the sender's thread that would stop the queue from draining to the
disk spool meanwhile. So :meth:`ProducerConnection.ensure` starts a short-lived thread, and the
sender treats "a producer is set" as "ready to send". A failed attempt (or a failed record, see
``Sender``) backs off ``sdk.reconnect_backoff_s`` before the next one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.kafka_settings import KafkaSettings
from services.sdk.settings import SdkSettings

__all__ = ["ProducerConnection"]

# The sender's logger: its lines read (and are filtered) as the sender's, as before the split.
log = logging.getLogger("services.sdk.sender")


class ProducerConnection:
    """Holds the producer (``None`` until connected) and the failures since the last success.

    ``on_connected(n_partitions)`` runs on the connecting thread just before :attr:`producer`
    is set, so that whatever needs the partition count is ready first.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: SdkSettings,
        producer_options: dict[str, Any],
        on_connected: Callable[[int], None],
        stop_requested: threading.Event,
        spool_directory: Path,
    ) -> None:
        self._kafka = kafka
        self._topic = kafka.events_topic
        self._settings = settings
        self._producer_options = dict(producer_options)
        self._on_connected = on_connected
        self._stop_requested = stop_requested
        self._spool_directory = spool_directory  # named in the warning
        self.producer: Any = None
        #: Failed attempts (or failed records) since the last successful connection.
        self.failures = 0
        self._next_attempt = 0.0
        self._thread: threading.Thread | None = None

    def config(self) -> dict[str, Any]:
        """kafka-python producer options from the settings (``producer_options`` last)."""
        s = self._settings
        config: dict[str, Any] = {
            "bootstrap_servers": self._kafka.bootstrap_servers,
            "client_id": "policyloop-sdk",
            "acks": "all",
            "enable_idempotence": s.idempotence,
            # Retries may reorder pipelined requests unless the producer is idempotent.
            "max_in_flight_requests_per_connection": s.max_in_flight_requests
            if s.idempotence
            else 1,
            "compression_type": None if s.compression == "none" else s.compression,
            "linger_ms": 0,
            "batch_size": 1 << 20,
            "max_request_size": 4 << 20,
            "delivery_timeout_ms": int(s.delivery_timeout_s * 1000),
            "max_block_ms": s.max_block_ms,
            "bootstrap_timeout_ms": s.max_block_ms,
            "reconnect_backoff_max_ms": int(s.reconnect_backoff_s * 1000),
            **self._kafka.client_options(),
        }
        config.update(self._producer_options)
        return config

    def ensure(self, now: float) -> None:
        """Start a connection attempt in the background if there is no producer yet."""
        if self.producer is not None or now < self._next_attempt:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(
            target=self._connect, name="policyloop-sdk-connect", daemon=True
        )
        self._thread.start()

    def failed(self, now: float) -> None:
        """Count a failure and wait ``reconnect_backoff_s`` before the next attempt."""
        self.failures += 1
        self._next_attempt = now + self._settings.reconnect_backoff_s

    def _connect(self) -> None:
        from kafka import KafkaProducer  # imported here: kafka-python's import is slow

        producer = None
        try:
            producer = KafkaProducer(**self.config())
            partitions = producer.partitions_for(self._topic)
            if not partitions:
                raise RuntimeError(f"topic {self._topic} has no partitions (does it exist?)")
        except Exception as exc:
            if producer is not None:
                try:
                    producer.close(timeout=0)
                except Exception:
                    pass
            self.failed(time.monotonic())
            if self.failures == 1 or self.failures % 60 == 0:
                log.warning(
                    "cannot reach Kafka at %s for topic %s (%s: %s); events go to the disk "
                    "spool %s and are sent when it is reachable",
                    self._kafka.bootstrap_servers,
                    self._topic,
                    type(exc).__name__,
                    exc,
                    self._spool_directory,
                )
            return
        if self._stop_requested.is_set():
            producer.close(timeout=0)
            return
        if self.failures:
            log.warning("connected to Kafka at %s", self._kafka.bootstrap_servers)
        self.failures = 0
        self._on_connected(len(partitions))
        self.producer = producer

    def discard(self) -> None:
        """Close and forget the producer (the next :meth:`ensure` connects a new one)."""
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception as exc:
                log.warning("closing the producer: %s: %s", type(exc).__name__, exc)

    def join(self) -> None:
        """Wait for a connection attempt under way (at shutdown)."""
        if self._thread is not None:
            self._thread.join()
