"""``policyloop rollout``: start, watch, tick, inspect and abort staged rollouts.

``watch`` is the long-running controller (a Deployment, or a ``tick`` from cron does the same
one step at a time): it ticks every ``--every`` seconds and exposes its metrics on
``--metrics-port`` or pushes them to ``--pushgateway``. The timeline is ``tables.timeline_uri``
and the registry and policy name are the learner's settings, so the rollout judges the same data
the learner trains on.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import click

from services.cli.context import settings_from_context

__all__ = ["rollout"]


class _FlagError(click.ClickException):
    """A bad flag: one line naming the flag and the rule, exit code 2 like click's own."""

    exit_code = 2


def _controller(ctx: click.Context, metrics_registry: Any = None) -> Any:
    from services.registry import Registry, RegistryError
    from services.rollout.controller import RolloutController

    settings = settings_from_context(ctx)
    policy_name = (ctx.obj or {}).get("rollout_policy") or settings.learner.policy_name
    try:
        registry = Registry(
            settings.learner.registry_uri,
            policy_name,
            kafka=settings.kafka if settings.learner.announce else None,
            announce_timeout_s=settings.learner.announce_timeout_s,
        )
    except (RegistryError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    return RolloutController(
        registry,
        settings.tables.timeline_uri,
        settings.rollout.rollout_log_uri,
        settings.rollout,
        metrics_registry=metrics_registry,
    )


def _refused() -> tuple[type[BaseException], ...]:
    from services.registry import RegistryError
    from services.rollout.plan import RolloutError

    return (RolloutError, RegistryError)


@click.group("rollout")
@click.option("--policy", "policy_name", help="Policy name (default: learner.policy_name).")
@click.pass_context
def rollout(ctx: click.Context, policy_name: str | None) -> None:
    """Staged rollout: candidate traffic grows step by step while it is not worse."""
    ctx.ensure_object(dict)
    ctx.obj["rollout_policy"] = policy_name


@rollout.command("start")
@click.argument("version")
@click.option("--steps", metavar="P1,P2,...,100", help="Percent of episodes per step.")
@click.option("--min-episodes", "min_episodes", metavar="N", help="Episodes per side and step.")
@click.pass_context
def start(ctx: click.Context, version: str, steps: str | None, min_episodes: str | None) -> None:
    """Route the first step's share of episodes to VERSION."""
    from services.rollout.plan import parse_steps

    if steps is not None:
        try:
            parse_steps(steps)
        except ValueError as exc:
            raise _FlagError(f"--steps: {exc}") from None
    count = None
    if min_episodes is not None:
        try:
            count = int(min_episodes)
        except ValueError:
            count = 0
        if count < 1:
            raise _FlagError(f"--min-episodes {min_episodes!r}: must be a whole number >= 1")
    controller = _controller(ctx)
    try:
        result = controller.start(version, steps, count)
    except _refused() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.line())


@rollout.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """The running rollout, its step and the evidence so far."""
    controller = _controller(ctx)
    try:
        state = controller.status()
    except _refused() as exc:
        raise click.ClickException(str(exc)) from None
    for line in state.lines():
        click.echo(line)


@rollout.command("abort")
@click.option("--reason", default="aborted by hand", show_default=True, help="Why (logged).")
@click.pass_context
def abort(ctx: click.Context, reason: str) -> None:
    """Stop the running rollout: all traffic back to the incumbent."""
    controller = _controller(ctx)
    try:
        result = controller.abort(reason)
    except _refused() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.line())


@rollout.command("tick")
@click.pass_context
def tick(ctx: click.Context) -> None:
    """Evaluate once and print the decision in one line."""
    controller = _controller(ctx)
    try:
        result = controller.evaluate()
    except _refused() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.line())


@rollout.command("watch")
@click.option("--every", "every", metavar="SECONDS", help="Seconds between ticks.")
@click.option("--metrics-port", "metrics_port", metavar="P", help="Serve /metrics on this port.")
@click.option("--pushgateway", metavar="URL", help="Push the metrics here after every tick.")
@click.option("--until-done", is_flag=True, help="Exit once no rollout is running any more.")
@click.pass_context
def watch(
    ctx: click.Context,
    every: str | None,
    metrics_port: str | None,
    pushgateway: str | None,
    until_done: bool,
) -> None:
    """Run the controller: tick every SECONDS until stopped (Ctrl-C)."""
    interval = settings_from_context(ctx).rollout.every_s
    if every is not None:
        try:
            interval = float(every)
        except ValueError:
            interval = -1.0
        if not interval > 0:
            raise _FlagError(f"--every {every!r}: must be a positive number of seconds")
    if metrics_port is not None and pushgateway is not None:
        raise _FlagError("--metrics-port and --pushgateway: give at most one of them")
    port = None
    if metrics_port is not None:
        try:
            port = int(metrics_port)
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise _FlagError(f"--metrics-port {metrics_port!r}: must be a port number 1-65535")
    from prometheus_client import CollectorRegistry, push_to_gateway, start_http_server

    metrics_registry = CollectorRegistry()
    controller = _controller(ctx, metrics_registry)
    if port is not None:
        start_http_server(port, registry=metrics_registry)
        click.echo(f"metrics on http://0.0.0.0:{port}/metrics")
    stop = threading.Event()
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = controller.evaluate()
            except _refused() as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(f"{time.strftime('%H:%M:%S')} {result.line()}")
            if pushgateway is not None:
                try:
                    push_to_gateway(
                        pushgateway,
                        job="policyloop_rollout",
                        registry=metrics_registry,
                        grouping_key={"policy": controller.policy_name},
                    )
                except OSError as exc:
                    click.echo(f"could not push metrics to {pushgateway}: {exc}", err=True)
            if until_done and result.decision in ("idle", "promote", "rollback", "abort"):
                return
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        click.echo("stopped")
