"""The settings a command runs with: the root's ``--config`` file, then the command's flags.

Its own module so that every command module can import it without importing ``main`` (which
imports the command modules on demand: importing ``main`` back would be a cycle).
"""

from __future__ import annotations

from typing import Any

import click

from services.cli.settings import Settings, load_settings

__all__ = ["settings_from_context"]


def settings_from_context(ctx: click.Context, overrides: dict[str, Any] | None = None) -> Settings:
    """Settings for a command: file and environment, then the command's flags on top."""
    root = ctx.find_root()
    config_file = (root.obj or {}).get("config_file")
    try:
        return load_settings(config_file, overrides)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None
