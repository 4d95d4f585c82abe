"""``policyloop simulate``: gymnasium episodes as stand-in production traffic.

Why the checks here: the environment is made and checked once, before any settings are used or
any worker is spawned, so that an environment policyloop cannot play (an unknown id, a continuous
action space, bad ``--env-kwargs``) is one click error line instead of a traceback per worker.
Gymnasium is imported only when the command runs, so ``policyloop --help`` stays quick.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from services.cli.context import settings_from_context

__all__ = ["simulate"]


class _JsonObject(click.ParamType):
    """A JSON object on the command line, as a ``dict`` of keyword arguments."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dict):
            return value
        from services.simulator.environments import parse_env_kwargs

        try:
            return parse_env_kwargs(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command()
@click.option(
    "--env",
    "env_id",
    default="CartPole-v1",
    show_default=True,
    help=(
        "The environment every episode runs in; its action space must be Discrete. A registered "
        "gymnasium id (CartPole-v1, MountainCar-v0, Acrobot-v1, Taxi-v4, FrozenLake-v1, "
        "policyloop/Recommendation-v0, ...), or your own as module:Class (a gymnasium.Env "
        "subclass) or module:function (returning one), importable from the current directory."
    ),
)
@click.option(
    "--env-kwargs",
    type=_JsonObject(),
    default=None,
    help="Keyword arguments for the environment, a JSON object, "
    "e.g. '{\"max_episode_steps\": 50}'.",
)
@click.option("--episodes", type=click.IntRange(min=1), required=True, help="Episodes to play.")
@click.option(
    "--policy",
    default="uniform",
    show_default=True,
    help="'uniform', or a registry policy name served by PolicyClient (CURRENT and ROLLOUT).",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--poll-interval",
    "poll_interval_s",
    type=click.FloatRange(min=0.05),
    default=2.0,
    show_default=True,
    help="How often each PolicyClient re-reads CURRENT/ROLLOUT (updates on Kafka come at once).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=None,
    help="Serve Prometheus metrics; worker k serves on PORT + k.",
)
@click.pass_context
def simulate(
    ctx: click.Context,
    env_id: str,
    env_kwargs: dict[str, Any] | None,
    episodes: int,
    policy: str,
    workers: int,
    seed: int,
    poll_interval_s: float,
    metrics_port: int | None,
) -> None:
    """Play EPISODES episodes with a policy, logging every decision through the SDK."""
    from services.simulator.environments import EnvironmentRefused, check_environment
    from services.simulator.traffic import FleetConnections, run_fleet

    env_kwargs = env_kwargs or {}
    if os.getcwd() not in sys.path:  # module:Class from the current directory, as `python -m`
        sys.path.insert(0, os.getcwd())
    try:
        check_environment(env_id, env_kwargs)
    except EnvironmentRefused as exc:
        hint = ["--env", "--env-kwargs"] if env_kwargs else "'--env'"
        raise click.BadParameter(str(exc), param_hint=hint) from None
    settings = settings_from_context(ctx)
    run = run_fleet(
        FleetConnections(
            kafka=settings.kafka, sdk=settings.sdk, registry_uri=settings.learner.registry_uri
        ),
        env_id,
        episodes,
        policy,
        env_kwargs=env_kwargs,
        workers=workers,
        seed=seed,
        poll_interval_s=poll_interval_s,
        metrics_port=metrics_port,
    )
    stats = run.stats
    click.echo(
        f"played {len(stats.returns)} episodes ({run.decisions} decisions) of {env_id} on "
        f"{run.workers} worker(s) in {run.seconds:.1f} s "
        f"({run.decisions / max(run.seconds, 1e-9):,.0f} decisions/s)"
    )
    for version in sorted(set(stats.versions)):
        mean, mean_discounted, episodes = stats.summary(version)
        click.echo(
            f"  policy_version={version}: {episodes} episodes, mean return "
            f"{mean:.2f}, mean discounted return {mean_discounted:.2f}"
        )
