"""``policyloop registry``: list, inspect, promote and roll back published policy versions.

Moving the ``CURRENT`` pointer by hand is the operator's escape hatch beside the learner's gate
and the staged rollout; the registry verifies every target against its manifest's sha256 first.
The registry's location and the default policy name are the learner's settings (it publishes).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from services.cli.context import settings_from_context

if TYPE_CHECKING:
    from services.registry import Registry

__all__ = ["registry"]


@click.group("registry")
@click.option("--policy", "policy_name", help="Policy name (default: learner.policy_name).")
@click.pass_context
def registry(ctx: click.Context, policy_name: str | None) -> None:
    """List, inspect, promote and roll back published policy versions."""
    ctx.ensure_object(dict)
    ctx.obj["registry_policy"] = policy_name


def _open_registry(ctx: click.Context) -> Registry:
    from services.registry import Registry, RegistryError

    settings = settings_from_context(ctx)
    policy_name = (ctx.obj or {}).get("registry_policy") or settings.learner.policy_name
    kafka = settings.kafka if settings.learner.announce else None
    try:
        return Registry(
            settings.learner.registry_uri,
            policy_name,
            kafka=kafka,
            announce_timeout_s=settings.learner.announce_timeout_s,
        )
    except (RegistryError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _registry_errors() -> tuple[type[Exception], ...]:
    from services.registry import RegistryError

    return (RegistryError, ValueError)


@registry.command("list")
@click.option("--verify", is_flag=True, help="Re-hash every policy.pt against its manifest.")
@click.pass_context
def list_cmd(ctx: click.Context, verify: bool) -> None:
    """Every version, newest last, with CURRENT and ROLLOUT marked."""
    from rich.console import Console
    from rich.table import Table

    reg = _open_registry(ctx)
    rows = reg.list_versions(verify=verify)
    if not rows:
        click.echo(f"no versions of {reg.policy_name!r} in {reg.uri}")
        return
    table = Table(title=f"{reg.policy_name} in {reg.uri}")
    for column in ("version", "status", "created", "algorithm", "gate", "sha256", "intact"):
        table.add_column(column)
    rollout = reg.rollout()
    for row in rows:
        status = []
        if row.is_current:
            status.append("CURRENT")
        if row.in_rollout and rollout:
            status.append(f"ROLLOUT {rollout['fraction']:.0%}")
        intact = {None: "", True: "yes", False: "NO"}[row.verified]
        table.add_row(
            row.version,
            " ".join(status),
            row.created_at or "",
            row.algorithm or "",
            row.gate_decision or "",
            (row.sha256 or "")[:12],
            intact,
        )
    Console().print(table)


@registry.command("show")
@click.argument("version", required=False)
@click.pass_context
def show_cmd(ctx: click.Context, version: str | None) -> None:
    """The manifest of VERSION (default: CURRENT) and whether its policy.pt is intact."""
    reg = _open_registry(ctx)
    try:
        shown = reg.show(version)
    except _registry_errors() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(shown, indent=2, sort_keys=True))
    if shown["integrity"] != "ok":
        ctx.exit(1)


@registry.command("promote")
@click.argument("version")
@click.pass_context
def promote_cmd(ctx: click.Context, version: str) -> None:
    """Make VERSION the CURRENT policy (after verifying its sha256)."""
    reg = _open_registry(ctx)
    try:
        previous = reg.promote(version)
    except _registry_errors() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{reg.policy_name}: CURRENT {previous or '—'} -> {version}")


@registry.command("rollback")
@click.pass_context
def rollback_cmd(ctx: click.Context) -> None:
    """Point CURRENT back at the previously promoted version."""
    reg = _open_registry(ctx)
    previous = reg.current()
    try:
        target = reg.rollback()
    except _registry_errors() as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{reg.policy_name}: CURRENT {previous} -> {target} (rolled back)")
