"""``policyloop demo``: the closed loop on embedded defaults (what ``make demo`` runs).

A broker that refuses the configured TLS or SASL settings
(:class:`~services.kafka_errors.KafkaAccessError`, when the topics are created) is one error line
and exit 1, not a traceback; the demo stops everything it started either way.
"""

from __future__ import annotations

import click

from services.cli.context import settings_from_context
from services.kafka_errors import KafkaAccessError

__all__ = ["demo"]

_ENVS = {"cartpole": "CartPole-v1", "bandit": "policyloop/Recommendation-v0"}


@click.command()
@click.option(
    "--env",
    "env",
    type=click.Choice([*_ENVS, *_ENVS.values()]),
    default="cartpole",
    show_default=True,
    help="CartPole-v1 (sequential) or the recommendation bandit (one step).",
)
@click.option("--seed", type=int, default=None, help="Default 0.")
@click.option("--rounds", "max_rounds", type=click.IntRange(min=1), default=None)
@click.option("--cold-start-episodes", type=click.IntRange(min=1), default=None)
@click.option("--batch-episodes", type=click.IntRange(min=1), default=None)
@click.option("--min-episodes", type=click.IntRange(min=1), default=None)
@click.option(
    "--time-budget",
    "time_budget_s",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds after which no new round starts.",
)
@click.option(
    "--trainer-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Gradient steps of each learner run (default: the environment's demo default).",
)
@click.pass_context
def demo(ctx: click.Context, /, env: str, trainer_steps: int | None, **overrides: object) -> None:
    """Start the broker, a sessionizer and a fleet on the uniform policy; then rounds of
    learn → gate → publish → staged rollout → more traffic, one line per round, an HTML report,
    and every process stopped. Exits 1 if the served policy misses the environment's target."""
    from services.demo import demo_settings, run_demo

    settings = settings_from_context(ctx)
    chosen = demo_settings(_ENVS.get(env, env), **overrides)
    if trainer_steps is not None:
        chosen.learner = {**chosen.learner, "trainer": {"steps": trainer_steps}}
    try:
        result = run_demo(settings, chosen)
    except KafkaAccessError as exc:
        raise click.ClickException(str(exc)) from None
    if not result.reached_target:
        ctx.exit(1)
