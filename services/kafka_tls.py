"""The client TLS context for the Kafka settings, as kafka-python and aiokafka build it.

One place for it because two users must agree: Faust (which takes a ready context) and the
credential check (which must trust exactly what the clients will trust, or it would pass a
certificate they then refuse, or the other way round).
"""

from __future__ import annotations

import ssl

from services.kafka_settings import KafkaSettings

__all__ = ["client_ssl_context"]


def client_ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The verifying context for ``SSL``/``SASL_SSL`` (``None`` otherwise).

    It trusts ``ssl_cafile`` (the system's CAs when unset), checks the host name, and presents
    ``ssl_certfile``/``ssl_keyfile`` when the broker asks for a client certificate.
    """
    if kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=kafka.ssl_cafile)
    if kafka.ssl_certfile:
        context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile)
    return context
