"""Errors of a Kafka connection that no retry fixes: the broker refused our TLS or SASL settings.

Why a type of their own: kafka-python, aiokafka and Faust treat a refused login or an untrusted
certificate like a broker that is away: they retry until a timeout, then say "unable to
bootstrap" (or, in Faust's case, retry forever). A wrong password is a configuration error, so
:func:`services.kafka_access.check_credentials` raises one of these at once instead, naming the
broker and the setting to fix. The messages never contain a password.
"""

from __future__ import annotations

__all__ = ["KafkaAccessError", "KafkaAuthenticationError", "KafkaTlsError"]


class KafkaAccessError(RuntimeError):
    """The broker at :attr:`broker` refused this client's security settings."""

    def __init__(self, broker: str, message: str) -> None:
        super().__init__(message)
        self.broker = broker


class KafkaTlsError(KafkaAccessError):
    """The TLS handshake failed: most often, the client does not trust the broker's certificate."""


class KafkaAuthenticationError(KafkaAccessError):
    """The broker refused the SASL login (user, password or mechanism)."""
