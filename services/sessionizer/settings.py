"""Settings of the sessionizer (the stream worker turning events into timeline rows).

Durations are in seconds. Every field is reachable as ``POLICYLOOP_SESSIONIZER__<FIELD>`` and,
for the ones that matter day to day, as a ``policyloop sessionize`` flag. Where the timeline
table lives is not here: the learner reads it too, so it is the shared ``[tables]`` section
(:mod:`services.storage_settings`), given to the worker as an argument.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["SessionizerSettings"]


class SessionizerSettings(BaseModel):
    """Windows, timeouts, state caps, sink batching and where the worker keeps its state."""

    state_uri: str | None = Field(
        default=None,
        description="Where episode-state checkpoints live (local path or object-store URI); "
        "default: '<timeline_uri>.state' next to the timeline table.",
    )
    app_id: str = Field(
        default="policyloop-sessionizer",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="Kafka consumer group id; also the prefix of the Delta transaction ids.",
    )
    reward_window_s: float = Field(default=60.0, ge=0)
    reward_aggregation: Literal["sum", "first"] = "sum"
    default_reward: float = 0.0
    episode_timeout_s: float = Field(default=600.0, gt=0)
    idle_clock_slack_s: float = Field(
        default=2.0,
        ge=0,
        description="Quiet time: once a caught-up partition has read no record for this long, "
        "rows whose successor or end is known close their reward windows on wall time minus "
        "this slack, so rows are written when traffic stops. Quiet time never times out an "
        "episode (a producer outage looks the same); a batch run's end closes both.",
    )
    closed_memory_episodes: int = Field(
        default=100_000,
        ge=0,
        description="How many recently closed episodes are remembered to tell late events.",
    )
    max_future_skew_s: float = Field(
        default=300.0,
        ge=0,
        description="An event stamped further ahead of the worker's wall clock is a dead letter "
        "(invalid:ts); nearer ones move the partition's watermark only up to their arrival.",
    )
    max_open_episodes: int = Field(
        default=100_000,
        ge=1,
        description="Open episodes per partition; an event opening one more is a dead letter "
        "(state_limit:open_episodes).",
    )
    max_episode_events: int = Field(
        default=10_000,
        ge=1,
        description="Events one open episode may hold (pending decisions and rewards, its end); "
        "one more is a dead letter (state_limit:episode_events).",
    )
    max_episode_event_ids: int = Field(
        default=20_000,
        ge=1,
        description="Event ids one open episode remembers to ignore redeliveries; beyond it the "
        "oldest ids of written events are forgotten (a later event for such a step is a dead "
        "letter state_limit:event_ids instead of late).",
    )
    batch_max_rows: int = Field(
        default=100_000,
        ge=1,
        description="Rows per Delta commit at most. Each commit also checkpoints the episodes "
        "it changed (most of them while catching up on a backlog), so fewer, larger commits "
        "pay off then.",
    )
    batch_max_seconds: float = Field(default=2.0, gt=0)
    checkpoint_base_every: int = Field(
        default=50,
        ge=1,
        description="A partition's checkpoint holds its full state (a base) at least every this "
        "many commits; in between only the episodes that changed are written, chained to the "
        "base. A restart reads at most this many files; 1 writes every checkpoint in full.",
    )
    checkpoint_chain_share: float = Field(
        default=1.0,
        ge=0,
        description="A base is also written once the changes chained to the current one add up "
        "to this share of its bytes, so a restart reads at most about 1 + share full "
        "checkpoints' worth; 0 writes every checkpoint in full.",
    )
    fetch_max_records: int = Field(default=500, ge=1)
    rebalance_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Consumer-group rebalance timeout. The embedded broker completes a join only "
        "after it, so keep it small there.",
    )
    session_timeout_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    metrics_host: str = "127.0.0.1"
    web_port: int = Field(default=0, ge=0, le=65535)

    def resolved_state_uri(self, table_uri: str) -> str:
        """The checkpoint location: ``state_uri``, or ``<table_uri>.state`` beside the table the
        worker writes (so that one flag moves both when no state location is given)."""
        return self.state_uri or f"{table_uri.rstrip('/')}.state"
