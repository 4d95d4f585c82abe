"""Hot reload for the policy client: a poll thread, woken early by ``policy-updates``.

The registry is the source of truth, so the client re-reads it every ``poll_interval_s``
whatever happens; an announcement of its policy on ``<prefix>.policy-updates`` (with ``kafka``
given) only wakes the poll thread at once. A failed refresh is logged and retried at the next
poll: the client keeps serving what it has.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from services.kafka_settings import KafkaSettings

if TYPE_CHECKING:
    from services.sdk.policy_updates import PolicyUpdateListener

__all__ = ["PolicyReloader"]

log = logging.getLogger("services.sdk.policy_client")  # reported as the client's, as before


class PolicyReloader:
    """Calls ``refresh()`` every ``poll_interval_s`` and on each announcement of the policy."""

    def __init__(
        self,
        refresh: Callable[[], object],
        policy_name: str,
        *,
        poll_interval_s: float,
        kafka: KafkaSettings | None = None,
    ) -> None:
        self.refresh = refresh
        self.policy_name = policy_name
        self.poll_interval_s = poll_interval_s
        self.kafka = kafka
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_loop, name=f"policyloop-policy-poll-{policy_name}", daemon=True
        )
        self._listener: PolicyUpdateListener | None = None

    def start(self) -> None:
        """Start the poll thread, and the ``policy-updates`` listener when ``kafka`` is given."""
        self._poller.start()
        if self.kafka is not None:
            from services.sdk.policy_updates import PolicyUpdateListener  # imports kafka-python

            self._listener = PolicyUpdateListener(self.kafka, self.policy_name, self._on_update)
            self._listener.start()

    def wait_listening(self, timeout: float | None = None) -> bool:
        """True once the listener reads from the topic's end (False without ``kafka``, or if it
        is not there within ``timeout``)."""
        if self._listener is None:
            return False
        return self._listener.ready.wait(timeout)

    def stop(self) -> None:
        """Stop both threads and wait (up to 5 s each) for them to end."""
        self._stop.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.stop()
        self._poller.join(timeout=5)
        if self._listener is not None:
            self._listener.join(timeout=5)

    def _on_update(self, version: str) -> None:
        self._wake.set()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
            except Exception as exc:  # keep serving what we have; try again next time
                log.warning("policy %s: reading the registry failed: %s", self.policy_name, exc)
