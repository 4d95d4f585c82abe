"""``policyloop simulate``: gymnasium episodes as stand-in production traffic."""

from __future__ import annotations

import click

from services.cli.main import settings_from_context
from services.simulator.fleet import ENVIRONMENTS

__all__ = ["simulate"]


@click.command()
@click.option(
    "--env",
    "env_id",
    type=click.Choice(sorted(ENVIRONMENTS)),
    default="CartPole-v1",
    show_default=True,
    help="The environment every episode runs in.",
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
    episodes: int,
    policy: str,
    workers: int,
    seed: int,
    poll_interval_s: float,
    metrics_port: int | None,
) -> None:
    """Play EPISODES episodes with a policy, logging every decision through the SDK."""
    from services.simulator.traffic import run_fleet

    settings = settings_from_context(ctx)
    run = run_fleet(
        settings,
        env_id,
        episodes,
        policy,
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
