"""``policyloop serve``: the decision service over HTTP (``services/decision``).

The command composes what the service needs from the settings' sections (``serve``, ``kafka``,
``sdk``, and the learner's ``registry_uri`` and ``policy_name``, the registry the learner
publishes to), reads the API keys once (file, or the environment variable that
``serve.api_keys_env`` names), and hands one :class:`~services.decision.app.ServiceConfig` to
the server. FastAPI and uvicorn are imported only when the command runs.
"""

from __future__ import annotations

import os
from typing import Any

import click

from services.cli.context import settings_from_context

__all__ = ["serve"]


@click.command()
@click.option("--host", help="Interface to bind (default 127.0.0.1, serve.host).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default 8080).")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (default 1).")
@click.option("--policy", "policy_name", help="Registry policy (default learner.policy_name).")
@click.option(
    "--durability",
    type=click.Choice(["queued", "durable"]),
    help="queued: reply once the event is queued (default); durable: once it is on disk.",
)
@click.option("--api-keys-file", type=click.Path(dir_okay=False), help="API keys, one a line.")
@click.option("--api-keys-env", metavar="VAR", help="Environment variable holding API keys.")
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    default=None,
    help="Serve a non-loopback address without API keys (something in front authenticates).",
)
@click.option("--ssl-certfile", type=click.Path(dir_okay=False), help="TLS certificate (PEM).")
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False), help="TLS private key (PEM).")
@click.option("--max-body-bytes", type=click.IntRange(min=1024), help="Larger bodies get 413.")
@click.option("--rate-limit", type=click.FloatRange(min=0), help="Requests/s per key; 0: none.")
@click.option("--fallback", type=click.Choice(["uniform", "none"]), help="With no version.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), help="CURRENT/ROLLOUT re-read.")
@click.option("--seed", type=int, help="Seed of the action sampler (reproducible tests).")
@click.option("--bootstrap-servers", help="Kafka bootstrap servers (kafka.bootstrap_servers).")
@click.option("--topic-prefix", help="Topic prefix (kafka.topic_prefix).")
@click.option("--registry", "registry_uri", help="Policy registry (learner.registry_uri).")
@click.option("--spool-dir", help="Disk spool root; each worker owns a directory under it.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    policy_name: str | None,
    durability: str | None,
    api_keys_file: str | None,
    api_keys_env: str | None,
    allow_unauthenticated: bool | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    max_body_bytes: int | None,
    rate_limit: float | None,
    fallback: str | None,
    poll_interval: float | None,
    seed: int | None,
    bootstrap_servers: str | None,
    topic_prefix: str | None,
    registry_uri: str | None,
    spool_dir: str | None,
) -> None:
    """Serve decisions over HTTP: /v1 and a Personalizer-compatible surface (see /docs)."""
    overrides: dict[str, Any] = {
        "serve": {
            "host": host,
            "port": port,
            "workers": workers,
            "policy_name": policy_name,
            "durability": durability,
            "api_keys_file": api_keys_file,
            "api_keys_env": api_keys_env,
            "allow_unauthenticated": allow_unauthenticated,
            "ssl_certfile": ssl_certfile,
            "ssl_keyfile": ssl_keyfile,
            "max_body_bytes": max_body_bytes,
            "rate_limit_per_s": rate_limit,
            "fallback": fallback,
            "poll_interval_s": poll_interval,
            "seed": seed,
        },
        "kafka": {"bootstrap_servers": bootstrap_servers, "topic_prefix": topic_prefix},
        "learner": {"registry_uri": registry_uri},
        "sdk": {"spool_dir": spool_dir},
    }
    settings = settings_from_context(ctx, overrides)
    from services.decision.app import ServiceConfig
    from services.decision.auth import load_api_keys
    from services.decision.server import ServeRefused
    from services.decision.server import serve as run_server
    from services.decision.workers import socket_dir

    section = settings.serve
    try:
        keys = load_api_keys(section, os.environ)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if (section.ssl_certfile is None) != (section.ssl_keyfile is None):
        raise click.ClickException("--ssl-certfile and --ssl-keyfile: give both or neither")
    config = ServiceConfig(
        serve=section,
        kafka=settings.kafka,
        sdk=settings.sdk,
        registry_uri=settings.learner.registry_uri,
        policy_name=section.policy_name or settings.learner.policy_name,
        keys=keys,
        socket_dir=str(socket_dir(section.run_dir, section.port)) if section.workers > 1 else None,
    )
    try:
        run_server(config)
    except ServeRefused as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {section.host}:{section.port}: {exc}"
        ) from None
