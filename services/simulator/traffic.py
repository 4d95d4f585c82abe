"""Stand-in production traffic: K worker processes play episodes through the SDK.

Each worker is what one production process would be: its own ``DecisionLogger`` and — unless the
policy is ``uniform`` — its own ``PolicyClient`` serving the registry's CURRENT and ROLLOUT with
the client logging every decision itself (the true propensity of what it sampled). Workers are
separate processes (spawned, not forked: torch and the SDK's sender thread do not survive a
fork) so that K workers really use K cores; each plays a contiguous share of the episodes with
its own seeds and episode ids (``<run_id>-w<k>-<n>``), so runs never collide in the timeline.

How the settings reach a worker: as the model itself, pickled into the pool's task pipe (what a
spawned pool does with every argument), never as JSON. The SASL password is a ``SecretStr``,
which JSON writes as ``**********``: a worker rebuilt from JSON would log in with the mask. A
pickle keeps the secret; it travels in memory, through the pipe between parent and worker,
so it reaches no file, no environment variable and no command line (``ps``); and the plan's
repr, like the settings', shows the mask.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from schemas.names import UNIFORM_VERSION
from services.kafka_settings import KafkaSettings
from services.sdk.settings import SdkSettings
from services.simulator.environments import check_environment
from services.simulator.fleet import EpisodeStats, UniformPolicy, play_episodes

__all__ = ["FleetConnections", "FleetRun", "run_fleet"]

UNIFORM = UNIFORM_VERSION  # the built-in policy's name is its version's


class FleetConnections(BaseModel):
    """What every worker process connects to: the broker, its SDK settings, the registry.

    A part of its own rather than the whole command-line settings, so the fleet knows nothing of
    the learner; the command line composes it (and it crosses to spawned workers pickled, the
    password included: see the module's docstring).
    """

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    sdk: SdkSettings = Field(default_factory=SdkSettings)
    registry_uri: str


@dataclass
class FleetRun:
    """What a fleet run played: per-episode stats, and how long it took."""

    stats: EpisodeStats
    seconds: float
    workers: int

    @property
    def decisions(self) -> int:
        return sum(self.stats.lengths)


@dataclass(frozen=True)
class _WorkerPlan:
    connections: FleetConnections
    env_id: str
    episodes: int
    policy: str
    seed: int
    episode_prefix: str
    poll_interval_s: float
    metrics_port: int | None
    env_kwargs: dict[str, Any] = field(default_factory=dict)


def _play(plan: _WorkerPlan) -> EpisodeStats:
    """One worker: build the logger and the acting policy, play, flush, close."""
    from services.sdk import DecisionLogger

    settings = plan.connections
    if plan.metrics_port is not None:
        import prometheus_client

        prometheus_client.start_http_server(plan.metrics_port, addr="0.0.0.0")
    with DecisionLogger(kafka=settings.kafka, settings=settings.sdk) as logger:
        if plan.policy == UNIFORM:
            return play_episodes(
                plan.env_id,
                plan.episodes,
                UniformPolicy(plan.seed),
                logger,
                seed=plan.seed,
                episode_prefix=plan.episode_prefix,
                env_kwargs=plan.env_kwargs,
            )
        from services.sdk import PolicyClient

        with PolicyClient(
            settings.registry_uri,
            plan.policy,
            kafka=settings.kafka,
            poll_interval_s=plan.poll_interval_s,
            seed=plan.seed,
            logger=logger,
        ) as client:
            return play_episodes(
                plan.env_id,
                plan.episodes,
                client,
                None,
                seed=plan.seed,
                episode_prefix=plan.episode_prefix,
                env_kwargs=plan.env_kwargs,
            )


def run_fleet(
    settings: FleetConnections,
    env_id: str,
    episodes: int,
    policy: str = UNIFORM,
    *,
    workers: int = 1,
    seed: int = 0,
    run_id: str | None = None,
    poll_interval_s: float = 2.0,
    metrics_port: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> FleetRun:
    """Play ``episodes`` episodes of ``env_id`` with ``policy`` (``uniform`` or a registry policy
    name) on ``workers`` processes, logging everything to ``settings.kafka``.

    Returns once every worker has flushed its logger: everything played is on the broker.
    ``metrics_port`` serves each worker's Prometheus metrics on ``metrics_port + k``.
    ``env_id`` is any env spec the fleet plays, made with ``env_kwargs`` (plain, picklable data:
    every worker gets a copy); it is made and checked once here, before any worker starts, so
    that one it cannot play raises ``EnvironmentRefused`` (a ``ValueError``) with one line.
    """
    env_kwargs = dict(env_kwargs or {})
    check_environment(env_id, env_kwargs)
    if episodes < 1:
        raise ValueError(f"episodes={episodes}: must be at least 1")
    if workers < 1:
        raise ValueError(f"workers={workers}: must be at least 1")
    workers = min(workers, episodes)
    run_id = run_id or uuid.uuid4().hex[:8]
    shares = [episodes // workers + (1 if k < episodes % workers else 0) for k in range(workers)]
    plans, first = [], 0
    for k, share in enumerate(shares):
        plans.append(
            _WorkerPlan(
                settings,
                env_id,
                share,
                policy,
                seed + first,
                f"{run_id}-w{k}",
                poll_interval_s,
                None if metrics_port is None else metrics_port + k,
                env_kwargs,
            )
        )
        first += share
    started = time.perf_counter()
    if workers == 1:
        parts = [_play(plans[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_play, plans)
    stats = EpisodeStats()
    for part in parts:
        stats.extend(part)
    return FleetRun(stats, time.perf_counter() - started, workers)
