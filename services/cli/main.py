"""``policyloop``: the command line of every part of the product.

Sub-commands are imported only when invoked, so ``policyloop broker status`` does not pay for
importing torch or faust. Every command lives in this package, one module per part
(``<part>_cmd.py``), registered in ``_COMMANDS`` below as ``name -> "module:attribute"``; the
module owns the command's options and help and gets its settings from
:func:`services.cli.context.settings_from_context`.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["cli"]

_COMMANDS: dict[str, str] = {
    "broker": "services.cli.broker_cmd:broker",
    "sessionize": "services.cli.sessionize_cmd:sessionize",
    "table": "services.cli.sessionize_cmd:table",
    "demo": "services.cli.demo_cmd:demo",
    "learn": "services.cli.learn_cmd:learn",
    "cpe": "services.cli.learn_cmd:cpe",
    "registry": "services.cli.registry_cmd:registry",
    "rollout": "services.cli.rollout_cmd:rollout",
    "simulate": "services.cli.simulate_cmd:simulate",
    "serve": "services.cli.serve_cmd:serve",
    "import": "services.cli.import_cmd:import_",
    "export": "services.cli.export_cmd:export",
    "score": "services.cli.score_cmd:score",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module_name, attr = _COMMANDS[name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
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
