"""Settings of the sessionizer (Faust worker turning events into timeline rows)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["SessionizerSettings"]


class SessionizerSettings(BaseModel):
    """Windows, timeouts and sink batching. Durations are in seconds."""

    table_uri: str = ".policyloop/tables/timeline"
    app_id: str = "policyloop-sessionizer"
    reward_window_s: float = Field(default=60.0, ge=0)
    reward_aggregation: Literal["sum", "first"] = "sum"
    default_reward: float = 0.0
    episode_timeout_s: float = Field(default=600.0, gt=0)
    batch_max_rows: int = Field(default=50_000, ge=1)
    batch_max_seconds: float = Field(default=2.0, gt=0)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    web_port: int = Field(default=0, ge=0, le=65535)
