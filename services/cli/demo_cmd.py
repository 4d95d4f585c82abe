"""``policyloop demo``: the main job on embedded defaults (what ``make demo`` runs)."""

from __future__ import annotations

import click

from services.cli.main import settings_from_context

__all__ = ["demo"]


@click.command()
@click.option("--episodes", type=int, default=2_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def demo(ctx: click.Context, episodes: int, seed: int) -> None:
    """Start the embedded broker, log episodes through the SDK, show what arrived, stop."""
    from services.demo import run_demo

    result = run_demo(settings_from_context(ctx), episodes=episodes, seed=seed)
    if not result.complete:
        ctx.exit(1)
