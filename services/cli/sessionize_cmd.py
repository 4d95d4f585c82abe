"""``policyloop sessionize`` (the worker) and ``policyloop table compact|vacuum`` (upkeep).

Flags override ``POLICYLOOP_SESSIONIZER__*`` / ``POLICYLOOP_KAFKA__*`` /
``POLICYLOOP_TABLES__TIMELINE_URI`` variables and the config file (see
``services/cli/settings.py``); unset flags leave them alone. ``--table-uri`` sets the one
timeline location, ``tables.timeline_uri``, that the learner and the rollout read too.

A broker that refuses the TLS or SASL settings (:class:`~services.kafka_errors.KafkaAccessError`)
is a configuration error, not a crash: one line naming the broker and the setting, exit 1.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from services.cli.context import settings_from_context
from services.kafka_errors import KafkaAccessError

__all__ = ["sessionize", "table"]


@click.command()
@click.option(
    "--until-idle",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Batch mode: exit 0 once no event arrived for SECONDS and every row that can become "
    "final is written (rows of ended episodes wait out their reward window first).",
)
@click.option(
    "--close-open-episodes",
    is_flag=True,
    default=False,
    help="With --until-idle: close the episodes that have not ended as truncated at exit "
    "(their later events go to the DLQ as 'late'). Without it they stay open for the next run.",
)
@click.option("--bootstrap-servers", default=None, help="Kafka bootstrap servers.")
@click.option("--topic-prefix", default=None, help="Topics are <prefix>.events and <prefix>.dlq.")
@click.option(
    "--table-uri",
    default=None,
    help="Delta timeline table (path or s3:// URI); default: tables.timeline_uri.",
)
@click.option(
    "--state-uri", default=None, help="Episode-state checkpoints (default <table>.state)."
)
@click.option("--group", "app_id", default=None, help="Consumer group id (and txn id prefix).")
@click.option("--reward-window", "reward_window_s", type=float, default=None, help="Seconds.")
@click.option("--reward-aggregation", type=click.Choice(["sum", "first"]), default=None)
@click.option("--default-reward", type=float, default=None)
@click.option("--episode-timeout", "episode_timeout_s", type=float, default=None, help="Seconds.")
@click.option("--batch-max-rows", type=int, default=None)
@click.option("--batch-max-seconds", type=float, default=None)
@click.option("--metrics-port", type=int, default=None, help="/metrics port (0 = a free one).")
@click.option("--rebalance-timeout", "rebalance_timeout_s", type=float, default=None)
@click.option("--session-timeout", "session_timeout_s", type=float, default=None)
@click.option(
    "--idle-clock-slack",
    "idle_clock_slack_s",
    type=float,
    default=None,
    help="Quiet time: seconds without a record after which a caught-up partition closes the "
    "reward windows of rows whose successor or end is known (the watermark stays on event time).",
)
@click.pass_context
def sessionize(
    ctx: click.Context,
    /,
    until_idle: float | None,
    close_open_episodes: bool,
    bootstrap_servers: str | None,
    topic_prefix: str | None,
    table_uri: str | None,
    **sessionizer: object,
) -> None:
    """Run a sessionizer worker: events in, exactly-once timeline rows out (foreground)."""
    from services.sessionizer.worker import SessionizerWorker

    if close_open_episodes and until_idle is None:
        raise click.UsageError("--close-open-episodes: only with --until-idle (a batch run)")
    settings = settings_from_context(
        ctx,
        {
            "kafka": {"bootstrap_servers": bootstrap_servers, "topic_prefix": topic_prefix},
            "sessionizer": dict(sessionizer),
            "tables": {"timeline_uri": table_uri},
        },
    )
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("faust", "mode", "aiokafka"):  # their INFO lines drown the worker's own
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker = SessionizerWorker(
        settings.kafka,
        settings.sessionizer,
        table_uri=settings.tables.timeline_uri,
        until_idle_s=until_idle,
        close_open_at_exit=close_open_episodes,
    )
    try:
        code = asyncio.run(worker.run())
    except KafkaAccessError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"sessionizer done: {worker.events_seen} events, {worker.rows_written} rows written "
        f"to {settings.tables.timeline_uri}"
    )
    if worker.left_open:
        click.echo(
            f"{worker.left_open} episodes have not ended: kept in the checkpoint for the next "
            f"run (closed as truncated after episode_timeout_s="
            f"{settings.sessionizer.episode_timeout_s:g} s of event time, or at once with "
            "--close-open-episodes)"
        )
    if worker.left_waiting:
        click.echo(f"{worker.left_waiting} rows still wait for their reward window")
    ctx.exit(code)


@click.group()
def table() -> None:
    """Upkeep of the timeline table: compact small files, vacuum unreferenced ones."""


@table.command("compact")
@click.option("--table-uri", default=None, help="Default: tables.timeline_uri.")
@click.option("--target-size", type=int, default=None, help="Target file size in bytes.")
@click.pass_context
def compact(ctx: click.Context, table_uri: str | None, target_size: int | None) -> None:
    """Rewrite the stream's many small files into few large ones (deltalake optimize.compact)."""
    from services.delta_tables import open_table

    settings = settings_from_context(ctx, {"tables": {"timeline_uri": table_uri}})
    uri = settings.tables.timeline_uri
    dt = open_table(uri)
    if dt is None:
        raise click.ClickException(f"no Delta table at {uri}")
    metrics = dt.optimize.compact(target_size=target_size)
    click.echo(
        f"compacted {uri}: {metrics.get('numFilesRemoved', 0)} files removed, "
        f"{metrics.get('numFilesAdded', 0)} added (version {dt.version()})"
    )


@table.command("vacuum")
@click.option("--table-uri", default=None, help="Default: tables.timeline_uri.")
@click.option("--retention-hours", type=int, default=168, show_default=True)
@click.option("--dry-run/--no-dry-run", default=True, show_default=True)
@click.option(
    "--enforce-retention/--no-enforce-retention",
    default=True,
    show_default=True,
    help="Refuse a retention shorter than the table's minimum (readers of old versions break).",
)
@click.pass_context
def vacuum(
    ctx: click.Context,
    table_uri: str | None,
    retention_hours: int,
    dry_run: bool,
    enforce_retention: bool,
) -> None:
    """Delete files no version newer than the retention needs (deltalake vacuum)."""
    from services.delta_tables import open_table

    settings = settings_from_context(ctx, {"tables": {"timeline_uri": table_uri}})
    uri = settings.tables.timeline_uri
    dt = open_table(uri)
    if dt is None:
        raise click.ClickException(f"no Delta table at {uri}")
    try:
        files = dt.vacuum(
            retention_hours=retention_hours,
            dry_run=dry_run,
            enforce_retention_duration=enforce_retention,
        )
    except Exception as exc:  # deltalake raises its own types for a too-short retention
        raise click.ClickException(f"vacuum refused: {exc}") from None
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"vacuum {uri}: {verb} {len(files)} files")
