"""Settings of the logging SDK (``DecisionLogger``) and the policy client."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["SdkSettings"]


class SdkSettings(BaseModel):
    """How the logger batches, bounds its memory and survives a broker outage."""

    queue_max_events: int = Field(default=200_000, ge=1)
    when_full: Literal["block", "spill", "drop"] = Field(
        default="block",
        description="block: wait up to block_timeout_s then raise; spill: write to the disk spool; "
        "drop: count and log the drop (never silent).",
    )
    block_timeout_s: float = Field(default=5.0, ge=0)
    batch_max_events: int = Field(default=2_000, ge=1, description="Events packed in one record.")
    linger_ms: int = Field(default=20, ge=0)
    spool_dir: str = ".policyloop/spool"
    spool_max_bytes: int = Field(default=1 << 30, ge=1)
    compression: Literal["none", "lz4", "gzip"] = "lz4"
