"""The service's HTTP surface over real HTTP: API keys, the body-size limit, the rate limit,
probes, metrics and the OpenAPI page. One server with two API keys, a 2 KiB body limit and a
rate limit for the module (no timeline needed: nothing here is about what is logged)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.kafka_settings import KafkaSettings
from services.registry import Registry
from tests.decision.conftest import STATE, Served, start_server

pytestmark = pytest.mark.integration

KEY, OTHER_KEY = "k-7f3a9c1e5b", "k-2d8e4f6a0c"
DECISION = {"state": STATE, "possible_actions": [0, 1]}


@pytest.fixture(scope="module")
def guarded(module_kafka: KafkaSettings, registry: Registry, module_tmp: Path) -> Iterator[Served]:
    keys = module_tmp / "keys"
    keys.write_text(f"# service keys\n{KEY}\n")
    served = start_server(
        module_kafka,
        Path(registry.uri),
        module_tmp / "guarded",
        "--api-keys-file", str(keys),
        "--api-keys-env", "DECISION_TEST_KEYS",
        "--max-body-bytes", "2048",
        "--rate-limit", "20",
        env={"DECISION_TEST_KEYS": OTHER_KEY, "POLICYLOOP_SERVE__RATE_LIMIT_BURST": "20"},
    )  # fmt: skip
    try:
        yield served
    finally:
        served.stop()


def test_a_wrong_api_key_gets_401(guarded):
    with guarded.client("k-wrong") as http:
        reply = http.post("/v1/decisions", json=DECISION)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.json()["error"]["field"] == "authorization"


def test_a_request_without_a_key_gets_401(guarded):
    with guarded.client() as http:
        assert http.post("/v1/decisions", json=DECISION).status_code == 401


def test_keys_from_the_file_and_the_environment_are_accepted_as_bearer_or_ocp_apim(guarded):
    with guarded.client(KEY) as http:
        assert http.post("/v1/decisions", json=DECISION).status_code == 200
    with guarded.client(headers={"Ocp-Apim-Subscription-Key": OTHER_KEY}) as http:
        reply = http.post("/personalizer/v1.0/rank", json={"actions": [{"id": "0"}, {"id": "1"}]})
    assert reply.status_code == 201, reply.text


def test_a_body_declared_over_the_limit_gets_413_before_it_is_read(guarded):
    body = b'{"state": {"x": 1}, "possible_actions": [0, 1], "pad": "' + b"x" * 4000 + b'"}'
    with guarded.client(KEY) as http:
        reply = http.post(
            "/v1/decisions", content=body, headers={"content-type": "application/json"}
        )
    assert reply.status_code == 413
    assert "2048 bytes" in reply.json()["error"]["rule"]


def test_a_streamed_body_over_the_limit_gets_413(guarded):
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b'{"state": {"x": 1}, "possible_actions": [0, 1], "pad": "'
        for _ in range(8):
            yield b"x" * 1000
        yield b'"}'

    with guarded.client(KEY) as http:
        reply = http.post(
            "/v1/decisions", content=chunks(), headers={"content-type": "application/json"}
        )
    assert reply.status_code == 413


def test_probes_and_the_api_description_need_no_key(guarded):
    with guarded.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json()["policy_version"] == "v1"
        paths = http.get("/openapi.json").json()["paths"]
        assert http.get("/docs").status_code == 200
    assert {"/v1/decisions", "/v1/rewards", "/v1/episodes/{episode_id}/end",
            "/personalizer/v1.0/rank", "/personalizer/v1.0/events/{eventId}/reward",
            "/personalizer/v1.0/events/{eventId}/activate"} <= set(paths)  # fmt: skip


def test_metrics_are_open_and_show_policy_sdk_and_http_series_but_no_key(guarded):
    with guarded.client(KEY) as http:
        http.post("/v1/decisions", json=DECISION)
    with guarded.client() as http:  # Prometheus scrapes without a key
        text = http.get("/metrics").text
    for series in (
        'policyloop_policy_decisions_total{policy="cartpole",policy_version="v1"}',
        "policyloop_sdk_events_accepted_total",
        'policyloop_serve_requests_total{method="POST",route="/v1/decisions",status="200"}',
        'policyloop_serve_request_duration_seconds_bucket{le="0.01",route="/v1/decisions"}',
        'policyloop_serve_refused_requests_total{reason="unauthorized"}',
    ):
        assert series in text
    assert KEY not in text and OTHER_KEY not in text


def test_a_key_over_its_rate_gets_429_with_retry_after(guarded):
    with guarded.client(OTHER_KEY) as http:
        replies = [http.post("/v1/rewards", json={}) for _ in range(40)]
    statuses = [r.status_code for r in replies]  # 400 (an empty reward) until the bucket is empty
    assert 400 in statuses and 429 in statuses
    refused = replies[statuses.index(429)]
    assert int(refused.headers["retry-after"]) >= 1
    with guarded.client(KEY) as http:  # the other key has a bucket of its own
        assert http.post("/v1/rewards", json={}).status_code == 400
