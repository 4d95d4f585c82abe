"""The sender's Kafka producer: its configuration, and connecting it in the background.

Why in the background: bootstrapping a kafka-python producer blocks for up to
``sdk.max_block_ms``; on the sender's thread that would stop the queue from draining to the
disk spool meanwhile. So :meth:`ProducerConnection.ensure` starts a short-lived thread, and the
sender treats "a producer is set" as "ready to send". A failed attempt (or a failed record, see
``Sender``) backs off ``sdk.reconnect_backoff_s`` before the next one.

The events topic's partition count is read at each connection and again whenever the producer's
metadata changes: kafka-python refreshes it every ``sdk.partition_refresh_s`` (its
``metadata_max_age_ms``) and after errors, and a listener on that metadata hands each new count
to the partitioner. Without it, a grown topic would never get new episodes on its added
partitions until the process restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Set
from pathlib import Path
from typing import Any

from services.kafka_access import check_credentials
from services.kafka_settings import KafkaSettings
from services.sdk.settings import SdkSettings

__all__ = ["ProducerConnection"]

# The sender's logger: its lines read (and are filtered) as the sender's, as before the split.
log = logging.getLogger("services.sdk.sender")


class ProducerConnection:
    """Holds the producer (``None`` until connected) and the failures since the last success.

    ``on_partition_count(n_partitions)`` runs on the connecting thread just before
    :attr:`producer` is set, so that whatever needs the partition count is ready first; later it
    runs again, on kafka-python's network thread or at a reconnection, each time the count
    changes (never twice in a row with the same count).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: SdkSettings,
        producer_options: dict[str, Any],
        on_partition_count: Callable[[int], None],
        stop_requested: threading.Event,
        spool_directory: Path,
    ) -> None:
        self._kafka = kafka
        self._topic = kafka.events_topic
        self._settings = settings
        self._producer_options = dict(producer_options)
        self._on_partition_count = on_partition_count
        #: The count last handed to ``on_partition_count`` (``None`` before the first).
        self.partition_count: int | None = None
        self._count_lock = threading.Lock()
        self._watched: Any = None  # the metadata our listener is registered on
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
            # kafka-python refreshes its metadata at least this often: how a grown topic is seen.
            "metadata_max_age_ms": max(1, int(s.partition_refresh_s * 1000)),
            # kafka-python's own sensors (producer.metrics()) are never read here: recording
            # them cost about a sixth of its sender thread's CPU, taken from the callers' GIL.
            "metrics_enabled": False,
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
            check_credentials(self._kafka)  # a refused login or certificate: said at once
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
        self._count_partitions(partitions)
        self._watch_metadata(producer)
        self.producer = producer

    def _count_partitions(self, partitions: Set[int] | None) -> None:
        """Hand a changed partition count to ``on_partition_count``; say so when it grew.

        Called from the connecting thread and from kafka-python's network thread (the metadata
        listener), hence the lock. ``None`` or empty (the topic is missing from this answer,
        e.g. while it is being re-created) changes nothing: events keep their partitions.
        """
        if not partitions:
            return
        count = len(partitions)
        with self._count_lock:
            before = self.partition_count
            if count == before:
                return
            self._on_partition_count(count)
            self.partition_count = count
        if before is None:
            return
        if count > before:
            log.info(
                "the events topic %s now has %d partitions (was %d): new episodes use all of "
                "them; open episodes keep their partition until they end",
                self._topic,
                count,
                before,
            )
        else:
            log.warning(
                "the events topic %s now has %d partitions (was %d): it was re-created; open "
                "episodes on partitions that no longer exist move to another",
                self._topic,
                count,
                before,
            )

    def _on_metadata(self, cluster: Any) -> None:
        """kafka-python's metadata listener: runs after each successful metadata refresh.

        A discarded producer's network thread may still call it once; that answer is ignored.
        """
        if cluster is not self._watched:
            return
        try:
            self._count_partitions(cluster.partitions_for_topic(self._topic))
        except Exception:  # never break kafka-python's network thread
            log.exception("reading the partition count of %s from new metadata", self._topic)

    def _watch_metadata(self, producer: Any) -> None:
        """Listen to the producer's metadata updates (kafka-python's ``ClusterMetadata``).

        kafka-python has no public accessor for it; ``_metadata`` is stable across its 2.x and
        3.x producers, and its absence only costs the re-reading between connections.
        """
        metadata: Any = getattr(producer, "_metadata", None)
        if not callable(getattr(metadata, "add_listener", None)):
            log.warning(
                "this kafka-python offers no metadata listener: the partition count of %s is "
                "re-read only when the logger reconnects",
                self._topic,
            )
            return
        self._watched = metadata
        metadata.add_listener(self._on_metadata)

    def discard(self) -> None:
        """Close and forget the producer (the next :meth:`ensure` connects a new one)."""
        producer, self.producer = self.producer, None
        # Not removed from the old metadata (its network thread may be iterating over its
        # listeners right now); _on_metadata ignores a metadata that is no longer watched.
        self._watched = None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception as exc:
                log.warning("closing the producer: %s: %s", type(exc).__name__, exc)

    def join(self) -> None:
        """Wait for a connection attempt under way (at shutdown)."""
        if self._thread is not None:
            self._thread.join()
