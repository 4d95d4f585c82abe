"""Kafka connection settings shared by every part that talks to the broker.

TLS and SASL options pass straight through to kafka-python (``client_options()``) and, for the
sessionizer, to Faust/aiokafka (``services/sessionizer/faust_app.py``), so that the same
configuration reaches a real cluster; the embedded broker needs none of them.

The password is a :class:`~pydantic.SecretStr`: the settings' repr, str and JSON show
``**********``, so printing or logging the settings never leaks it; only ``client_options()``
(what the client libraries get) holds the password itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

__all__ = ["KafkaSettings"]

SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseModel):
    """Where the broker is and how to authenticate; topic names derive from ``topic_prefix``."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Comma-separated host:port list. The embedded broker's address by default.",
    )
    topic_prefix: str = Field(default="policyloop", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    partitions: int = Field(
        default=4, ge=1, le=1024, description="Partitions when we create topics."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="SSL and SASL_SSL encrypt; SASL_* log in."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="With SASL_*: PLAIN (default), SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    sasl_plain_username: str | None = Field(default=None, description="The SASL user.")
    sasl_plain_password: SecretStr | None = Field(
        default=None, description="The SASL password; never shown in reprs, logs or errors."
    )
    ssl_cafile: str | None = Field(
        default=None, description="CA certificate(s) to trust (PEM); the system's when unset."
    )
    ssl_certfile: str | None = Field(
        default=None, description="Client certificate (PEM), for brokers that require one."
    )
    ssl_keyfile: str | None = Field(default=None, description="The client certificate's key.")

    @model_validator(mode="after")
    def _sasl_needs_a_login(self) -> KafkaSettings:
        """A SASL protocol without a user or password can only fail at the broker: say so now."""
        if self.security_protocol.startswith("SASL_"):
            for name in ("sasl_plain_username", "sasl_plain_password"):
                if getattr(self, name) is None:
                    raise ValueError(
                        f"security_protocol={self.security_protocol} logs in with SASL: set "
                        f"kafka.{name} (POLICYLOOP_KAFKA__{name.upper()})"
                    )
        return self

    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.events"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic_prefix}.dlq"

    @property
    def policy_updates_topic(self) -> str:
        return f"{self.topic_prefix}.policy-updates"

    def client_options(self) -> dict[str, Any]:
        """Security options as kafka-python keywords, the password itself included.

        Hand them to a client library only: they are the one place the password is revealed.
        (aiokafka takes ``ssl_context`` instead of the ``ssl_*`` files; Faust gets its TLS
        context from ``services.kafka_tls``.)
        """
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        for name in (
            "sasl_mechanism",
            "sasl_plain_username",
            "ssl_cafile",
            "ssl_certfile",
            "ssl_keyfile",
        ):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        if self.sasl_plain_password is not None:
            options["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        return options
