"""``policyloop export FORMAT --output PATH``: a pinned version of the timeline, for other tools.

The table is ``tables.timeline_uri`` (``--table-uri``); ``--version`` pins the table version
(default: the newest, printed so the export can be repeated), ``--since``/``--until`` keep the
``ds`` partitions in that inclusive range. Formats and their layout: ``services/interop/export.py``.
"""

from __future__ import annotations

import datetime as dt

import click

from services.cli.context import settings_from_context

__all__ = ["export"]


def _day(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: must be a date, YYYY-MM-DD", param_hint=flag
        ) from None


@click.command("export")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["d3rlpy", "rllib-json", "parquet"]))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="File.")
@click.option("--table-uri", default=None, help="Timeline table; default: tables.timeline_uri.")
@click.option("--version", "table_version", type=click.IntRange(min=0), default=None,
              help="Table version to read (default: the newest).")  # fmt: skip
@click.option("--since", default=None, help="First ds (YYYY-MM-DD) to export.")
@click.option("--until", default=None, help="Last ds (YYYY-MM-DD) to export.")
@click.pass_context
def export(
    ctx: click.Context,
    /,
    fmt: str,
    output: str,
    table_uri: str | None,
    table_version: int | None,
    since: str | None,
    until: str | None,
) -> None:
    """Export a pinned version of the timeline as FORMAT (d3rlpy, rllib-json, parquet)."""
    from services.interop.export import export_timeline

    settings = settings_from_context(ctx, {"tables": {"timeline_uri": table_uri}})
    uri = settings.tables.timeline_uri
    try:
        result = export_timeline(
            fmt, uri, output, table_version, _day(since, "--since"), _day(until, "--until")
        )
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # a version the table does not have, among others
        if "version" in str(exc).lower() and table_version is not None:
            raise click.ClickException(f"{uri}: no version {table_version} ({exc})") from None
        raise
    click.echo(
        f"exported {result.rows} rows ({result.episodes} episodes) of {uri} version "
        f"{result.table_version} to {result.path} as {fmt}"
    )
    if fmt != "parquet":
        click.echo(f"features (in order): {','.join(result.feature_names)}")
        click.echo(f"actions (in order): {','.join(result.actions)}")
    if result.missing_values:
        click.echo(f"{result.missing_values} absent feature values written as NaN")
