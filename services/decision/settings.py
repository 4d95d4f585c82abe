"""Settings of the decision service (``policyloop serve``): the ``[serve]`` section.

Why these defaults: the service binds loopback and needs no key there; anything else needs API
keys or an explicit ``allow_unauthenticated``, so that a misconfigured deployment is refused at
start rather than open. ``durability = "queued"`` replies once the event is in the logger's
memory (fast; ``kill -9`` can lose what is queued); ``"durable"`` replies once it is synced to
the disk spool.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

__all__ = ["DecisionServiceSettings"]


class DecisionServiceSettings(BaseModel):
    """How ``policyloop serve`` listens, whom it serves and how it acknowledges events."""

    host: str = Field(default="127.0.0.1", description="Interface to bind (loopback default).")
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes on one socket; each has its own PolicyClient, logger and "
        "spool directory. An episode is served by one worker (others forward to it).",
    )
    policy_name: str | None = Field(
        default=None, description="The registry policy to serve (default: learner.policy_name)."
    )
    fallback: Literal["uniform", "none"] = Field(
        default="uniform",
        description="With no servable version: serve the uniform policy, or refuse decisions "
        "(503) and report not ready until a version loads.",
    )
    poll_interval_s: float = Field(default=5.0, gt=0, description="CURRENT/ROLLOUT re-read.")
    max_open_episodes: int = Field(default=100_000, ge=1)
    seed: int | None = Field(default=None, description="Seed of the action sampler (tests).")
    durability: Literal["queued", "durable"] = Field(
        default="queued",
        description="queued: reply once the event is queued in the logger (kill -9 loses what "
        "is in memory); durable: reply once it is synced to the disk spool "
        "(sdk.spool_write_through).",
    )
    durable_timeout_s: float = Field(
        default=5.0, gt=0, description="A durable reply waits this long for the disk, then 503."
    )
    api_keys_file: str | None = Field(
        default=None, description="File of API keys, one a line ('#' starts a comment)."
    )
    api_keys_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding API keys (comma or newline "
        "separated).",
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="Bind a non-loopback address without API keys (refused otherwise).",
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1_024, description="Larger request bodies are refused with 413."
    )
    rate_limit_per_s: float = Field(
        default=0.0, ge=0, description="Requests per second (token bucket); 0: no limit."
    )
    rate_limit_burst: int = Field(default=200, ge=1, description="The bucket's size.")
    rate_limit_scope: Literal["key", "global"] = Field(
        default="key", description="One bucket per API key, or one for all (per worker)."
    )
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: SecretStr | None = None
    defer_ttl_s: float = Field(
        default=600.0,
        gt=0,
        description="Personalizer deferActivation: a ranked event not activated within this "
        "time is dropped without being logged.",
    )
    defer_max_events: int = Field(
        default=100_000, ge=1, description="Held (not yet activated) events per worker."
    )
    run_dir: str = Field(
        default=".policyloop/serve",
        description="Where workers keep their private sockets (one folder per port).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
