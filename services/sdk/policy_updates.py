"""Listening to ``<prefix>.policy-updates`` so a client reloads as soon as a version is announced.

The registry stays the source of truth (the client re-reads CURRENT/ROLLOUT on every
notification and polls anyway); the announcement only cuts the delay. So the listener is
best effort: it reads the topic from its end without a consumer group (a group join would cost
the broker's rebalance timeout and nothing is gained from committed offsets), calls
``on_update`` for messages naming this policy (parsed with :mod:`schemas.announcement`), and
logs and retries when the broker is away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from schemas.announcement import AnnouncementError, parse_announcement
from services.kafka_settings import KafkaSettings

__all__ = ["PolicyUpdateListener"]

log = logging.getLogger(__name__)


class PolicyUpdateListener(threading.Thread):
    """A daemon thread calling ``on_update(version)`` for announcements of ``policy_name``."""

    def __init__(
        self,
        kafka: KafkaSettings,
        policy_name: str,
        on_update: Callable[[str], None],
        *,
        retry_s: float = 5.0,
    ) -> None:
        super().__init__(name=f"policyloop-policy-updates-{policy_name}", daemon=True)
        self.kafka = kafka
        self.policy_name = policy_name
        self.on_update = on_update
        self.retry_s = retry_s
        self.ready = threading.Event()  # set once the listener reads from the topic's end
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as exc:  # reconnect: the poll loop keeps the client current
                log.warning(
                    "policy updates on %s: %s; retrying in %.0f s",
                    self.kafka.policy_updates_topic,
                    exc,
                    self.retry_s,
                )
                self._stopping.wait(self.retry_s)

    def _listen(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        topic = self.kafka.policy_updates_topic
        consumer = KafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers,
            client_id=f"policyloop-client-{self.policy_name}",
            group_id=None,
            enable_auto_commit=False,
            **self.kafka.client_options(),
        )
        try:
            partitions = None
            while partitions is None and not self._stopping.is_set():
                partitions = consumer.partitions_for_topic(topic)
                if partitions is None:
                    self._stopping.wait(1.0)
            if self._stopping.is_set() or partitions is None:
                return
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            consumer.seek_to_end(*assigned)
            for tp in assigned:
                consumer.position(tp)  # resolve the end offsets now, before "ready"
            self.ready.set()
            while not self._stopping.is_set():
                batches = consumer.poll(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self._handle(record.value)
        finally:
            consumer.close()

    def _handle(self, value: bytes | None) -> None:
        try:
            message = parse_announcement(value)
        except AnnouncementError as exc:
            log.warning("policy updates: ignoring a message that is not an announcement: %s", exc)
            return
        if message.policy == self.policy_name:
            self.on_update(message.version)
