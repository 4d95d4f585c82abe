"""``policyloop import FORMAT PATH...``: other tools' logs into the timeline, exactly once.

The timeline is ``tables.timeline_uri`` (``--table-uri`` sets it), the table the sessionizer
writes; ``[interop]`` holds the batch size, the reject directory and the open-episode cap. One
summary line per file says what was written, refused (by reason, with the reject file) or
skipped as already imported. A source that cannot be imported at all (a missing column, no
propensities, a pickled column) is one line naming the column and the fix, exit 1, and nothing
of it is in the table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from services.cli.context import settings_from_context

__all__ = ["import_"]

FORMATS = ("rllib-json", "rllib-parquet", "reagent", "obp", "csv", "parquet")


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _ts_ms(value: str | None) -> int:
    from services.interop.source import parse_ts

    if value is None:
        return int(time.time() * 1000)
    ts = parse_ts(value)
    if ts is None:
        raise click.BadParameter(f"{value!r}: must be an ISO-8601 time, e.g. 2024-03-01T12:00:00Z")
    return ts


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument("paths", metavar="PATH...", nargs=-1, required=True, type=click.Path())
@click.option("--table-uri", default=None, help="Timeline table; default: tables.timeline_uri.")
@click.option("--actions", default=None, help="Possible actions, e.g. 0,1 (when rows list none).")
@click.option("--obs-names", default=None, help="State names of array observations, in order.")
@click.option(
    "--logger",
    type=click.Choice(["uniform", "deterministic"]),
    default=None,
    help="How data without propensities was logged: uniform over the possible actions, or "
    "deterministic (probability 1).",
)
@click.option("--ts", default=None, help="Event time of rows whose source has none (ISO-8601; "
              "default: now).")  # fmt: skip
@click.option("--policy-version", default=None, help="policy_version of rows that name none.")
@click.option(
    "--episode-end",
    type=click.Choice(["terminal", "truncated"]),
    default=None,
    help="How an episode whose rows do not say how it ended is closed (default per format).",
)
@click.option("--episode-prefix", default="", help="Prefix of this source's episode ids.")
@click.option("--column", "column_flags", multiple=True, metavar="ROLE=COLUMN",
              help="Column map entry (csv, parquet, rllib-parquet); repeatable.")  # fmt: skip
@click.option("--columns", "columns_file", type=click.Path(dir_okay=False), default=None,
              help="TOML file with a [columns] map.")  # fmt: skip
@click.option("--rejects-dir", default=None, help="Default: interop.rejects_dir.")
@click.option("--batch-rows", type=click.IntRange(min=1), default=None)
@click.pass_context
def import_(
    ctx: click.Context,
    /,
    fmt: str,
    paths: tuple[str, ...],
    table_uri: str | None,
    actions: str | None,
    obs_names: str | None,
    logger: str | None,
    ts: str | None,
    policy_version: str | None,
    episode_end: str | None,
    episode_prefix: str,
    column_flags: tuple[str, ...],
    columns_file: str | None,
    rejects_dir: str | None,
    batch_rows: int | None,
) -> None:
    """Import FORMAT files into the timeline: the live contract, exactly once per file."""
    from services.interop.columns import load_column_map, parse_column_flags
    from services.interop.importer import import_files
    from services.interop.progress import RowsProgress
    from services.interop.source import ImportFormatError, ImportOptions

    settings = settings_from_context(
        ctx,
        {
            "tables": {"timeline_uri": table_uri},
            "interop": {"rejects_dir": rejects_dir, "batch_rows": batch_rows},
        },
    )
    try:
        columns: dict[str, Any] = load_column_map(columns_file) if columns_file else {}
        columns.update(parse_column_flags(list(column_flags)))
        options = ImportOptions(
            ts_ms=_ts_ms(ts),
            policy_version=policy_version or settings.interop.policy_version,
            actions=_names(actions),
            obs_names=_names(obs_names),
            logger=logger,  # type: ignore[arg-type]
            end_default=episode_end,  # type: ignore[arg-type]
            episode_prefix=episode_prefix,
            columns=columns,
        )
        uri = settings.tables.timeline_uri
        with RowsProgress(f"import {fmt}") as progress:
            results = import_files(
                fmt, [Path(p) for p in paths], uri, settings.interop, options, progress
            )
    except (ImportFormatError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    for result in results:
        click.echo(_summary(result))
    written = sum(r.rows_written for r in results)
    rejected = sum(r.rows_rejected for r in results)
    click.echo(f"imported {written} rows into {uri}; {rejected} rejected")


def _summary(result: Any) -> str:
    if result.skipped:
        return (
            f"{result.source}: already imported (content sha256 {result.sha256[:16]}...): "
            "nothing added"
        )
    seconds = max(result.seconds, 1e-9)
    line = (
        f"{result.source}: {result.rows_written} rows written (table version "
        f"{result.table_version}), {result.rows_rejected} rejected"
    )
    if result.rejected:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.rejected.items()))
        line += f" ({reasons}) -> {result.rejects_path}"
    counts = result.episodes
    line += f"; {counts.episodes} episodes ({counts.ended_in_file} ended in the file"
    if counts.closed_at_end_of_file:
        line += f", {counts.closed_at_end_of_file} closed at its end"
    if counts.closed_by_cap:
        line += f", {counts.closed_by_cap} closed by max_open_episodes"
    return line + f"); {result.rows_written / seconds:,.0f} rows/s"
