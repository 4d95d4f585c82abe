"""Settings of the logging SDK (``DecisionLogger``) and the policy client."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["SdkSettings"]


class SdkSettings(BaseModel):
    """How the logger batches, bounds its memory and survives a broker outage."""

    queue_max_events: int = Field(
        default=200_000,
        ge=1,
        description="Events held in memory between the caller and the sender thread.",
    )
    when_full: Literal["block", "spill", "drop"] = Field(
        default="block",
        description="block: wait up to block_timeout_s then raise; spill: write to the disk spool; "
        "drop: count and log the drop (never silent).",
    )
    block_timeout_s: float = Field(default=5.0, ge=0)
    spill_at_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="With when_full=spill, the sender moves the in-memory queue to the disk "
        "spool once it is this full, so that callers rarely wait.",
    )
    batch_max_events: int = Field(default=2_000, ge=1, description="Events packed in one record.")
    record_max_bytes: int = Field(
        default=900_000,
        ge=1_024,
        le=1_000_000,
        description="Upper bound of one record value (consumers refuse more than 1,000,000).",
    )
    linger_ms: int = Field(
        default=20, ge=0, description="How long the sender lets events gather between batches."
    )
    inflight_max_records: int = Field(
        default=32, ge=1, description="Records handed to Kafka and not yet acknowledged."
    )
    outage_after_s: float = Field(
        default=2.0,
        gt=0,
        description="The oldest unacknowledged record is this old: treat the broker as "
        "unreachable and send new batches to the disk spool.",
    )
    delivery_timeout_s: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="How long kafka-python keeps retrying a record it was handed. Long on "
        "purpose: a record given up on would have to be re-sent out of order.",
    )
    max_block_ms: int = Field(
        default=2_000,
        ge=1,
        description="How long one attempt to bootstrap or to fetch topic metadata may take "
        "(on a helper thread; the sender keeps spooling meanwhile).",
    )
    max_in_flight_requests: int = Field(
        default=5,
        ge=1,
        le=5,
        description="Produce requests pipelined per connection. Above 1 only with idempotence "
        "(it keeps per-partition order); without idempotence the sender uses 1.",
    )
    reconnect_backoff_s: float = Field(default=1.0, gt=0)
    idempotence: bool = Field(
        default=True,
        description="Idempotent producer: retried records are not written twice by the broker.",
    )
    spool_dir: str = ".policyloop/spool"
    spool_max_bytes: int = Field(
        default=1 << 30,
        ge=1,
        description="Disk bound of the spool. When it is reached, events wait in memory (at "
        "most queue_max_events) and callers see when_full.",
    )
    spool_segment_bytes: int = Field(default=64 << 20, ge=1_024)
    spool_fsync: bool = Field(
        default=True, description="fsync the spool after each batch of appends (once per loop)."
    )
    spool_write_through: bool = Field(
        default=False,
        description="Send every batch through the disk spool (appended, fsynced, then read "
        "back and sent), so that DecisionLogger.durable_events can say which accepted events "
        "survive a kill -9. The decision service's durable mode sets it; it costs a disk write "
        "and read per batch and an fsync per sender loop.",
    )
    compression: Literal["none", "lz4", "gzip"] = "lz4"
    max_open_episodes: int = Field(
        default=1_000_000,
        ge=1,
        description="Episodes whose step order and partition are remembered at once.",
    )
    ended_episode_pins: int = Field(
        default=100_000,
        ge=0,
        description="Ended episodes whose partition is still remembered, so that a reward "
        "logged after episode_end (within the sessionizer's reward window) reaches its "
        "episode's partition even after the topic grew.",
    )
    partition_refresh_s: float = Field(
        default=60.0,
        gt=0,
        description="How often the logger re-reads the events topic's partition count (Kafka "
        "metadata). After the topic grows, new episodes use the new count; open episodes keep "
        "their partition until they end.",
    )
    close_timeout_s: float = Field(
        default=10.0, ge=0, description="How long close() at interpreter exit waits for acks."
    )
    switch_interval_s: float | None = Field(
        default=None,
        gt=0,
        description="If set, the logger calls sys.setswitchinterval(value) when it starts. "
        "PROCESS-GLOBAL: it changes how often every thread of the process may take the GIL. "
        "A smaller value than Python's 0.005 shortens how long a decision() call can wait for "
        "the GIL while the sender thread runs (tail latency), at some throughput cost.",
    )
