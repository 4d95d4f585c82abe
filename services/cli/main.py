"""``policyloop``: the command line of every part of the product.

Sub-commands are imported only when invoked, so ``policyloop broker status`` does not pay for
importing torch or faust. Each part registers its command group in ``_COMMANDS`` below as
``name -> "module:attribute"``; the module owns the command's options and help.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from services.settings import Settings, load_settings

__all__ = ["cli", "settings_from_context"]

_COMMANDS: dict[str, str] = {
    "broker": "services.cli.broker_cmd:broker",
    "sessionize": "services.sessionizer.cli:sessionize",
    "table": "services.sessionizer.cli:table",
    "demo": "services.cli.demo_cmd:demo",
    "learn": "learner.cli:learn",
    "cpe": "learner.cli:cpe",
    "registry": "learner.cli:registry",
    "rollout": "services.rollout.cli:rollout",
    "simulate": "services.simulator.cli:simulate",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module_name, attr = _COMMANDS[name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="POLICYLOOP_CONFIG",
    help="TOML config file (default ./policyloop.toml if present).",
)
@click.version_option(package_name="policyloop")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """Log decisions, sessionize them, learn, prove with CPE, publish and roll out."""
    ctx.obj = {"config_file": config_file}


def settings_from_context(ctx: click.Context, overrides: dict[str, Any] | None = None) -> Settings:
    """Settings for a command: file and environment, then the command's flags on top."""
    root = ctx.find_root()
    config_file = (root.obj or {}).get("config_file")
    try:
        return load_settings(config_file, overrides)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None
