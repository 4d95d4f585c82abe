"""The app factory: one worker's FastAPI app, its parts, probes, metrics and error replies.

``create_app(config, index)`` is what each worker process runs (``server.py`` passes it to
uvicorn as a factory, so the settings reach spawned workers through the process pipe, never a
file or a command line). Startup builds the worker's ``DecisionLogger`` (its own spool directory
under ``sdk.spool_dir``: ``services/sdk/spool_owner.py``) and its ``PolicyClient``; with
``fallback = "none"`` and no version to serve, the client is retried every ``poll_interval_s``
while ``/readyz`` says why it is not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry, generate_latest
from starlette.routing import Match

from schemas.events import EventValidationError
from services.decision import routes_personalizer, routes_v1
from services.decision.auth import ApiKeys, RequestGuard, error_body
from services.decision.batching import DecisionBatcher
from services.decision.context import INTERNAL, WorkerState, json_reply
from services.decision.durable import DurableTimeout, DurableWaiter
from services.decision.metrics import (
    HttpMetricsMiddleware,
    Scope,
    ServeMetrics,
    merge_worker_metrics,
)
from services.decision.personalizer import DeferredEvents
from services.decision.service import DecisionService, RequestError, ServiceUnavailable
from services.decision.settings import DecisionServiceSettings
from services.decision.workers import WorkerRing
from services.kafka_settings import KafkaSettings
from services.sdk.errors import SdkError
from services.sdk.settings import SdkSettings

__all__ = ["ServiceConfig", "create_app"]

log = logging.getLogger("policyloop.serve")

#: Net new container objects between young collections (CPython's default is 700).
_YOUNG_GC_THRESHOLD = 10_000


@dataclass(frozen=True)
class ServiceConfig:
    """Everything a worker needs, composed by the command line from the settings' sections."""

    serve: DecisionServiceSettings
    kafka: KafkaSettings
    sdk: SdkSettings
    registry_uri: str
    policy_name: str
    keys: ApiKeys
    socket_dir: str | None = None  # the workers' private sockets (several workers only)


def create_app(config: ServiceConfig, index: int = 0) -> FastAPI:
    """Worker ``index``'s app (see the module doc)."""
    settings = config.serve
    registry = CollectorRegistry()
    metrics = ServeMetrics(registry)
    ring = WorkerRing(
        index,
        settings.workers,
        None if config.socket_dir is None else Path(config.socket_dir),
        tls=settings.ssl_certfile is not None,
    )
    internal = ring.socket_path(index) if ring.sockets is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = _start_worker(config, index, ring, metrics, registry)
        app.state.worker = state
        retry = asyncio.create_task(_load_policy(state, config, index))
        try:
            yield
        finally:
            retry.cancel()
            await ring.close()
            if state.service.client is not None:
                state.service.client.close()
            report = await asyncio.to_thread(state.service.logger.close)
            log.info("worker %d stopped: %s events left in its spool", index, report.spooled_events)

    app = FastAPI(
        title="policyloop decision service",
        description="Decisions from the served policy, logged with their true propensities; "
        "a Personalizer-compatible surface under /personalizer/v1.0.",
        version="1",
        lifespan=lifespan,
    )
    app.include_router(routes_v1.router)
    app.include_router(routes_personalizer.router)
    _add_probes(app)
    _add_error_replies(app, metrics)
    app.add_middleware(
        RequestGuard, settings=settings, keys=config.keys, metrics=metrics, internal_socket=internal
    )

    def route_of(scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            return str(route.path)
        for candidate in app.router.routes:  # refused before routing: match it here
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                return str(getattr(candidate, "path", "other"))
        return "other"

    app.add_middleware(HttpMetricsMiddleware, metrics=metrics, route_of=route_of)
    return app


def _start_worker(
    config: ServiceConfig,
    index: int,
    ring: WorkerRing,
    metrics: ServeMetrics,
    registry: CollectorRegistry,
) -> WorkerState:
    from services.sdk.logger import DecisionLogger

    settings = config.serve
    sdk = config.sdk
    if settings.durability == "durable":
        sdk = sdk.model_copy(update={"spool_write_through": True})
    logger = DecisionLogger(kafka=config.kafka, settings=sdk, registry=registry)
    service = DecisionService(logger, secrets.token_hex(4))
    waiter = DurableWaiter(logger, settings.durable_timeout_s) if sdk.spool_write_through else None
    deferred = DeferredEvents(settings.defer_ttl_s, settings.defer_max_events)
    batcher = DecisionBatcher(service, metrics)
    return WorkerState(settings, service, ring, deferred, metrics, registry, waiter, batcher)


async def _load_policy(state: WorkerState, config: ServiceConfig, index: int) -> None:
    """Build the PolicyClient; with fallback "none", retry until a version loads."""
    from services.sdk.policy_client import PolicyClient
    from services.sdk.policy_serving import PolicyUnavailableError

    settings = config.serve
    seed = None if settings.seed is None else settings.seed + index
    while True:
        try:
            client = await asyncio.to_thread(
                PolicyClient,
                config.registry_uri,
                config.policy_name,
                kafka=config.kafka,
                poll_interval_s=settings.poll_interval_s,
                seed=seed,
                fallback=settings.fallback,
                metrics_registry=state.registry,
                max_open_episodes=settings.max_open_episodes,
            )
        except PolicyUnavailableError as exc:
            state.service.unavailable_reason = str(exc)
            await asyncio.sleep(settings.poll_interval_s)
            continue
        state.service.client = client
        _freeze_heap()
        log.info("worker %d serves %s", index, client.serving)
        return


def _freeze_heap() -> None:
    """Keep what startup built out of the garbage collector's passes, and make young passes
    follow real growth rather than requests in flight.

    Why: a worker holds well over a million long-lived objects (torch, FastAPI, pydantic, the
    Kafka client, the policy), and each full collection walked them all: 80 to 130 ms pauses
    a few times a second under load, which were the service's p99. ``gc.freeze`` moves them to
    the permanent generation, so full passes only see what was created since (open episodes,
    queued events). And with 32 requests in flight a worker holds a few thousand young
    container objects at any moment (frames, futures, dicts) that die with their request: at
    the default threshold of 700 a young collection ran every ten decisions, about 95 µs each
    (10 µs a decision, measured with ``gc.callbacks``). At 10,000 they run when objects
    really accumulate (about once per 10,000 new episodes). Cyclic garbage is still collected.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG_GC_THRESHOLD, middle, old)


def _add_probes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        """The process answers (liveness)."""
        return json_reply({"status": "ok"})

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> Response:
        """Ready once a policy (or the uniform fallback) is loaded and the logger is connected."""
        state: WorkerState = request.app.state.worker
        service = state.service
        reasons = []
        if service.client is None:
            reasons.append(service.unavailable_reason)
        if not service.logger.connected:
            reasons.append("the logger is not connected to the broker")
        state.metrics.ready.set(0 if reasons else 1)
        if reasons:
            return json_reply({"status": "not ready", "reasons": reasons}, 503)
        snapshot = service.client.serving  # type: ignore[union-attr]
        return json_reply(
            {
                "status": "ready",
                "worker": state.ring.index,
                "pid": os.getpid(),
                "policy_version": snapshot.current_version,
                "candidate_version": snapshot.candidate_version,
                "candidate_fraction": snapshot.fraction,
            }
        )

    @app.get("/metrics", tags=["operations"])
    async def metrics(request: Request) -> Response:
        """Prometheus text: policy metrics by version, SDK metrics, policyloop_serve_*."""
        state: WorkerState = request.app.state.worker
        state.held_gauges()
        own = generate_latest(state.registry)
        ring = state.ring
        if ring.count == 1 or request.scope.get(INTERNAL):
            return Response(own, media_type="text/plain; version=0.0.4")
        texts = {ring.index: own.decode()}
        for other in range(ring.count):
            if other != ring.index:
                try:
                    reply = await ring.forward(other, "GET", "/metrics", b"", None)
                except Exception as exc:  # a worker restarting: its series are missing
                    log.warning("worker %d did not answer /metrics: %s", other, exc)
                    continue
                texts[other] = reply.body.decode()
        return Response(merge_worker_metrics(texts), media_type="text/plain; version=0.0.4")


def _add_error_replies(app: FastAPI, metrics: ServeMetrics) -> None:
    def reply(status: int, code: str, text: str, field: str | None, rule: str | None) -> Response:
        return Response(error_body(code, text, field, rule), status, media_type="application/json")

    @app.exception_handler(EventValidationError)
    async def invalid_event(request: Request, exc: EventValidationError) -> Response:
        metrics.invalid.labels(exc.field.split(".", 1)[0].split("[", 1)[0]).inc()
        return reply(400, "BadRequest", str(exc), exc.field, exc.rule)

    @app.exception_handler(RequestValidationError)
    async def invalid_shape(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        field = _field_of(first.get("loc", ()))
        metrics.invalid.labels(field.split(".", 1)[0].split("[", 1)[0]).inc()
        message = f"{field}: {first.get('msg', 'invalid')}"
        return reply(400, "BadRequest", message, field, str(first.get("msg")))

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> Response:
        code = "NotFound" if exc.status == 404 else "BadRequest"
        if exc.status == 400:
            metrics.invalid.labels(exc.field).inc()
        return reply(exc.status, code, str(exc), exc.field, exc.rule)

    @app.exception_handler(ServiceUnavailable)
    @app.exception_handler(SdkError)
    @app.exception_handler(DurableTimeout)
    async def unavailable(request: Request, exc: Exception) -> Response:
        return reply(503, "ServiceUnavailable", str(exc), None, None)


def _field_of(loc: Sequence[object]) -> str:
    """``("body", "state", "x")`` → ``state.x``; ``("body", "possible_actions", 0, "int")`` →
    ``possible_actions[0]`` (the union member's name is dropped)."""
    out = ""
    parts = [p for p in loc if p != "body"]
    for i, part in enumerate(parts):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i == len(parts) - 1 and i > 0 and part in ("int", "str", "float", "bool"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "body"
