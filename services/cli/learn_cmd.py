"""``policyloop learn`` and ``policyloop cpe``: the learner's commands.

``learn --once`` is what a scheduler (cron, a Kubernetes CronJob) runs; ``learn --every 1h`` is
the same run in a loop for setups without a scheduler, skipping when no new data arrived.
``cpe`` evaluates without publishing: a registry version, or any external policy given as
per-decision probabilities. Both read the timeline at ``tables.timeline_uri``, the location the
sessionizer writes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import click

from services.cli.context import settings_from_context

__all__ = ["cpe", "learn", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``30m``, ``1h``, ``1h30m``, ``2d``; ValueError naming the rule."""
    cleaned = text.strip().lower()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned) or total <= 0:
        raise ValueError(
            f"duration {text!r}: must be a positive number with a unit s, m, h or d "
            "(e.g. 30m, 1h, 1h30m)"
        )
    return total


def _learner_overrides(**values: Any) -> dict[str, Any]:
    return {"learner": {k: v for k, v in values.items() if v is not None}}


# --------------------------------------------------------------------------- learn
@click.command("learn")
@click.option("--once", is_flag=True, help="Run once and exit (for cron / CronJobs).")
@click.option("--every", "every", metavar="DURATION", help="Run in a loop: 30m, 1h, 1h30m, 1d.")
@click.option("--pushgateway", metavar="URL", help="Push metrics here instead of a textfile.")
@click.option("--force", is_flag=True, help="Run even if the timeline has no new version.")
@click.option("--policy", "policy_name", help="Policy name in the registry.")
@click.option("--no-progress", is_flag=True, help="No progress bars or stage lines.")
@click.option(
    "--no-promote",
    is_flag=True,
    help="Store and announce a version the gate publishes, but leave CURRENT "
    "(roll it out later with `policyloop rollout start VERSION`).",
)
@click.pass_context
def learn(
    ctx: click.Context,
    once: bool,
    every: str | None,
    pushgateway: str | None,
    force: bool,
    policy_name: str | None,
    no_progress: bool,
    no_promote: bool,
) -> None:
    """Train on the timeline, prove the candidate with CPE, publish it if the gate agrees."""
    if once == (every is not None):
        raise click.UsageError("give exactly one of --once or --every DURATION")
    interval = None
    if every is not None:
        try:
            interval = parse_duration(every)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--every") from None
    settings = settings_from_context(
        ctx,
        _learner_overrides(
            policy_name=policy_name,
            pushgateway=pushgateway,
            progress=False if no_progress else None,
            promote=False if no_promote else None,
        ),
    )
    from learner.run import run_once

    kafka = settings.kafka if settings.learner.announce else None

    def one_run(force_this: bool) -> int:
        result = run_once(
            settings.learner, settings.tables.timeline_uri, kafka=kafka, force=force_this
        )
        click.echo(result.sentence)
        if result.report_path:
            click.echo(f"report: {result.report_path}")
        if result.metrics_target:
            click.echo(f"metrics: {result.metrics_target}")
        return 0 if result.ok else 1

    if interval is None:
        ctx.exit(one_run(force))
    stop = threading.Event()
    first = True
    try:
        while not stop.is_set():
            started = time.monotonic()
            one_run(force and first)
            first = False
            remaining = interval - (time.monotonic() - started)
            if remaining > 0:
                click.echo(f"next run in {remaining:,.0f} s (Ctrl-C stops)")
                stop.wait(remaining)
    except KeyboardInterrupt:
        click.echo("stopped")


# --------------------------------------------------------------------------- cpe
@click.command("cpe")
@click.option("--policy", "version", metavar="VERSION", help="A registry version, e.g. v3.")
@click.option(
    "--target-probs",
    "target_probs",
    metavar="TABLE",
    help="Delta table or parquet file of decision_id, action_probs (over the action space).",
)
@click.option(
    "--all-data",
    is_flag=True,
    help="Evaluate on every decision of the window, not only the eval split "
    "(only honest for policies not trained on this data).",
)
@click.option("--policy-name", "policy_name", help="Policy name in the registry.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def cpe(
    ctx: click.Context,
    version: str | None,
    target_probs: str | None,
    all_data: bool,
    policy_name: str | None,
    as_json: bool,
) -> None:
    """Estimate a policy's value on the logged data, without publishing anything."""
    if (version is None) == (target_probs is None):
        raise click.UsageError("give exactly one of --policy VERSION or --target-probs TABLE")
    settings = settings_from_context(ctx, _learner_overrides(policy_name=policy_name))
    from learner.run import evaluate_external
    from services.registry import RegistryError

    try:
        evaluation = evaluate_external(
            settings.learner,
            settings.tables.timeline_uri,
            version=version,
            target_probs_uri=target_probs,
            all_data=all_data,
        )
    except (RegistryError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(evaluation.to_dict(), indent=2, default=str))
        return
    _print_evaluation(evaluation)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def _print_evaluation(evaluation: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    result = evaluation.result
    table = Table(title=f"CPE of {evaluation.target} on {evaluation.scope}")
    for column in ("estimator", "value", "interval", "÷ logged", "warnings"):
        table.add_column(column, justify="right" if column in ("value", "÷ logged") else "left")
    for est in [*result.estimates.values(), result.logged_value]:
        table.add_row(
            est.estimator,
            _fmt(est.value),
            f"[{_fmt(est.ci_low)}, {_fmt(est.ci_high)}]",
            _fmt(est.normalized),
            "\n".join(est.warnings),
        )
    console.print(table)
    diag = result.diagnostics
    console.print(
        f"effective sample size {_fmt(diag.effective_sample_size)} of {diag.n_units} · "
        f"largest importance weight {_fmt(diag.max_importance_weight)} · "
        f"unsupported share {diag.unsupported_share:.1%}"
    )
    for warning in diag.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(
        f"data: {evaluation.table_uri} version {evaluation.table_version}, "
        f"{evaluation.rows} decisions"
    )
