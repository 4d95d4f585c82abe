"""Kafka connection settings shared by every part that talks to the broker.

TLS and SASL options pass straight through to kafka-python / aiokafka so that the same
configuration reaches a real cluster; the embedded broker needs none of them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["KafkaSettings"]


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
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

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
        """Security options in the keyword form kafka-python and aiokafka both accept."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        for name in (
            "sasl_mechanism",
            "sasl_plain_username",
            "sasl_plain_password",
            "ssl_cafile",
            "ssl_certfile",
            "ssl_keyfile",
        ):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        return options
