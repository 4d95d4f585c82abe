"""``policyloop broker up|down|status``: the embedded development broker.

``up`` creates the topics with the configured TLS and SASL settings; a broker that refuses them
(:class:`~services.kafka_errors.KafkaAccessError`) is one error line and exit 1, not a traceback,
and the broker is stopped again (without its topics it would only mislead).
"""

from __future__ import annotations

import click

from services.broker.embedded import BrokerError, broker_status, start_broker, stop_broker
from services.cli.context import settings_from_context
from services.kafka_errors import KafkaAccessError

__all__ = ["broker"]


@click.group()
def broker() -> None:
    """Start, stop or inspect the embedded (in-memory) Kafka-protocol broker."""


@broker.command("up")
@click.option("--port", type=int, default=None, help="Port to listen on (0 = a free port).")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.pass_context
def up(ctx: click.Context, port: int | None, host: str | None) -> None:
    """Start the broker in the background and create the product's topics."""
    from services.kafka_topics import ensure_topics  # kafka-python: only `up` needs it

    settings = settings_from_context(ctx, {"broker": {"port": port, "host": host}})
    try:
        handle = start_broker(
            settings.home,
            port=settings.broker.port,
            host=settings.broker.host,
            binary=settings.broker.binary,
            ready_timeout_s=settings.broker.ready_timeout_s,
        )
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": handle.bootstrap_servers})
    try:
        ensure_topics(kafka)
    except KafkaAccessError as exc:
        stop_broker(settings.home)  # a broker without its topics would only mislead
        raise click.ClickException(f"{exc}; the broker is stopped again") from None
    click.echo(f"broker up at {handle.bootstrap_servers} (pid {handle.pid}, log {handle.log_path})")
    if handle.bootstrap_servers != settings.kafka.bootstrap_servers:
        click.echo(f"export POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS={handle.bootstrap_servers}")


@broker.command("down")
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the broker started by `broker up` (its in-memory topics are lost)."""
    settings = settings_from_context(ctx)
    handle = stop_broker(settings.home)
    if handle is None:
        click.echo("no broker running")
    else:
        click.echo(f"broker at {handle.bootstrap_servers} (pid {handle.pid}) stopped")


@broker.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say whether the broker runs and answers; exit 1 if it does not."""
    settings = settings_from_context(ctx)
    handle, ready = broker_status(settings.home)
    if handle is None:
        click.echo("broker: not running")
        ctx.exit(1)
    state = "ready" if ready else "not answering"
    click.echo(f"broker: {state} at {handle.bootstrap_servers} (pid {handle.pid})")
    if not ready:
        ctx.exit(1)
