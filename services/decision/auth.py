"""API keys, the rate limit and the body-size limit: what runs before any route.

Why one ASGI middleware (not FastAPI dependencies): a refused request must cost next to nothing
and a body over the limit must be refused *before* it is parsed. The guard answers 401 for a
missing or wrong key (``Authorization: Bearer <key>``, or Personalizer's
``Ocp-Apim-Subscription-Key``; compared with :func:`hmac.compare_digest` against every key), 429
when the token bucket is empty (per key or one for all), and 413 when ``Content-Length`` says
too much or the streamed body grows past ``max_body_bytes``; only then does the route read the
body, from memory. Keys are :class:`~pydantic.SecretStr` and never logged or counted by value.
Probes (``/healthz``, ``/readyz``), ``/metrics`` (counts by route, status and version: what
Prometheus and the kubelet read without a key) and the API description (``/docs``,
``/openapi.json``) are open; everything else needs a key once keys are configured.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from services.decision.context import INTERNAL
from services.decision.metrics import Scope, ServeMetrics
from services.decision.settings import DecisionServiceSettings

__all__ = ["ApiKeys", "RequestGuard", "TokenBucket", "error_body", "load_api_keys"]

OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect"}
)


def error_body(code: str, message: str, field: str | None = None, rule: str | None = None) -> bytes:
    """The one error shape of both surfaces."""
    return orjson.dumps({"error": {"code": code, "message": message, "field": field, "rule": rule}})


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys; empty means no authentication."""

    keys: tuple[SecretStr, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keys)

    def match(self, presented: str) -> int | None:
        """The index of the key ``presented`` equals, compared in constant time with each."""
        given = presented.encode()
        found = None
        for i, key in enumerate(self.keys):
            if hmac.compare_digest(given, key.get_secret_value().encode()):
                found = i
        return found


def load_api_keys(settings: DecisionServiceSettings, environ: Mapping[str, str]) -> ApiKeys:
    """Keys from ``api_keys_file`` and the variable ``api_keys_env`` names (ValueError if a
    configured source is missing or holds no key)."""
    keys: list[str] = []
    if settings.api_keys_file:
        path = Path(settings.api_keys_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"serve.api_keys_file {path}: cannot be read ({exc})") from None
        found = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        if not found:
            raise ValueError(f"serve.api_keys_file {path}: holds no key")
        keys.extend(found)
    if settings.api_keys_env:
        value = environ.get(settings.api_keys_env)
        if not value:
            raise ValueError(
                f"serve.api_keys_env names {settings.api_keys_env}, which is not set or empty"
            )
        keys.extend(k.strip() for k in value.replace("\n", ",").split(",") if k.strip())
    return ApiKeys(tuple(SecretStr(k) for k in keys))


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; one request takes one."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = time.monotonic()

    def take(self) -> float:
        """0 if a token was taken, else the seconds until one is there."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RequestGuard:
    """The ASGI middleware of the module doc. ``internal_socket``: requests arriving on that
    Unix socket were forwarded by another worker, which already checked them."""

    def __init__(
        self,
        app: Any,
        settings: DecisionServiceSettings,
        keys: ApiKeys,
        metrics: ServeMetrics,
        internal_socket: str | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics
        self.max_body = settings.max_body_bytes
        self.internal_socket = internal_socket
        self.rate = settings.rate_limit_per_s
        self.burst = settings.rate_limit_burst
        self.per_key = settings.rate_limit_scope == "key"
        self.buckets: dict[int | None, TokenBucket] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._internal(scope):  # first: a forwarded request is never forwarded again
            scope[INTERNAL] = True
            await self.app(scope, receive, send)
            return
        if scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope["headers"])
        key_index = None
        if self.keys:
            key_index = self.keys.match(_presented_key(headers))
            if key_index is None:
                self.metrics.refused.labels("unauthorized").inc()
                rule = "Authorization: Bearer <key> (or Ocp-Apim-Subscription-Key)"
                await _reply(send, 401, "Unauthorized", "a valid API key is required",
                             "authorization", rule, [(b"www-authenticate", b"Bearer")])  # fmt: skip
                return
        if self.rate > 0:
            bucket_key = key_index if self.per_key else None
            bucket = self.buckets.get(bucket_key)
            if bucket is None:
                bucket = self.buckets[bucket_key] = TokenBucket(self.rate, self.burst)
            wait = bucket.take()
            if wait:
                self.metrics.refused.labels("rate_limited").inc()
                retry = str(max(1, round(wait + 0.5))).encode()
                await _reply(send, 429, "TooManyRequests", "rate limit reached", None,
                             f"at most {self.rate:g} requests/s, bursts of {self.burst}",
                             [(b"retry-after", retry)])  # fmt: skip
                return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = await self._read_body(headers, receive, send)
            if body is None:
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _internal(self, scope: Scope) -> bool:
        server = scope.get("server")
        return (
            self.internal_socket is not None
            and server is not None
            and (server[0] == self.internal_socket)
        )

    async def _read_body(
        self, headers: dict[bytes, bytes], receive: Any, send: Any
    ) -> bytes | None:
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await self._too_large(send)
            return None
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Any) -> None:
        self.metrics.refused.labels("too_large").inc()
        await _reply(send, 413, "PayloadTooLarge", "the request body is too large", "body",
                     f"must be at most {self.max_body} bytes (serve.max_body_bytes)")  # fmt: skip


def _presented_key(headers: dict[bytes, bytes]) -> str:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get(b"ocp-apim-subscription-key", b"").decode("latin-1").strip()


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> Scope:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: Scope = await receive()
        return message

    return replay


async def _reply(
    send: Any,
    status: int,
    code: str,
    message: str,
    field: str | None,
    rule: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = error_body(code, message, field, rule)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})
