"""Monitoring for real: Prometheus scrapes the running services and the learner's Pushgateway.

One stack, as ``deploy/`` wires it: a sessionizer process serving /metrics, a serving process
(PolicyClient with a DecisionLogger, its metrics on an HTTP endpoint) in the middle of a staged
rollout, the decision service (``policyloop serve``, two workers) answering HTTP decisions, the
rollout controller's endpoint, and a learner run pushing to a real Pushgateway.
A real Prometheus scrapes them every second with the repository's alert rules loaded; the
assertions go through its HTTP API, as a dashboard would.
"""

from __future__ import annotations

import re
import time
import uuid

import prometheus_client
import pytest

from learner.run import run_once
from learner.settings import LearnerSettings
from services.cli.settings import Settings
from services.demo.processes import SessionizerProcess
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from services.registry import Registry
from services.rollout.controller import RolloutController
from services.rollout.settings import RolloutSettings
from services.sdk import DecisionLogger, PolicyClient
from services.simulator.fleet import play_episodes
from tests.decision.conftest import STATE, start_server
from tests.deploy.monitoring_stack import (
    prometheus_query,
    running_prometheus,
    running_pushgateway,
)
from tests.deploy.test_prometheus_files import DEPLOY
from tests.rollout.factory import publish

pytestmark = pytest.mark.integration

POLICY = "cartpole"
DECISIONS = 12


def _serve(registry: prometheus_client.CollectorRegistry) -> tuple[int, object]:
    server, _thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    return server.server_port, server


def _wait_for(url: str, query: str, timeout_s: float = 40.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        result = prometheus_query(url, query)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def _send_garbage(kafka: KafkaSettings) -> None:
    """One record that is not an event batch: the sessionizer dead-letters it as malformed."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    producer.send(kafka.events_topic, b"not msgpack at all", partition=0).get(timeout=10)
    producer.close()


def _queried_metric_names() -> set[str]:
    """Every policyloop_* series name the Grafana dashboard and the alert rules query."""
    text = (DEPLOY.parent / "grafana" / "dashboards" / "policyloop.json").read_text()
    text += (DEPLOY / "rules.yml").read_text()
    return set(re.findall(r"policyloop_[a-z_]+(?=[^a-z_]|$)", text)) - {"policyloop_learner"}


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory):
    """Every service running, scraped by Prometheus; yields what the tests need to know."""
    tmp_path = tmp_path_factory.mktemp("monitoring")
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_prefix=f"mon{uuid.uuid4().hex[:10]}",
        partitions=4,
    )
    ensure_topics(kafka)
    settings = Settings(
        home=str(tmp_path / "home"),
        kafka=kafka,
        sdk={"spool_dir": str(tmp_path / "spool"), "linger_ms": 5},
        tables={"timeline_uri": str(tmp_path / "timeline")},
        sessionizer={
            "reward_aggregation": "first",
            "reward_window_s": 2.0,
            "batch_max_seconds": 0.5,
            "rebalance_timeout_s": 3.0,
            "session_timeout_s": 6.0,
        },
    )
    registry = Registry(str(tmp_path / "registry"), POLICY)
    incumbent = publish(registry, promote=True, seed=1)
    candidate = publish(registry, seed=2)
    servers = []
    decision = start_server(kafka, tmp_path / "registry", tmp_path / "decision", "--workers", "2")
    decision_port = decision.url.rsplit(":", 1)[1]
    sessionizer = SessionizerProcess(settings, tmp_path / "sessionizer.log")
    try:
        sessionizer.wait_ready()
        rollout_registry = prometheus_client.CollectorRegistry()
        controller = RolloutController(
            registry,
            settings.tables.timeline_uri,
            str(tmp_path / "rollout_log"),
            RolloutSettings(),
            metrics_registry=rollout_registry,
        )
        controller.start(candidate, [50, 100], min_episodes=1_000)

        serving_registry = prometheus_client.CollectorRegistry()
        with (
            DecisionLogger(kafka=kafka, settings=settings.sdk, registry=serving_registry) as logger,
            PolicyClient(
                str(tmp_path / "registry"),
                POLICY,
                seed=0,
                logger=logger,
                metrics_registry=serving_registry,
            ) as client,
        ):
            stats = play_episodes("CartPole-v1", 60, client, None, seed=0, episode_prefix="m")
            logger.flush(timeout=30)
            _send_garbage(kafka)
            sessionizer.wait_rows(settings.tables.timeline_uri, sum(stats.lengths))
            tick = controller.evaluate()
            assert tick.decision == "hold"  # 1,000 episodes per side are far away

            with running_pushgateway() as pushgateway:
                learner = LearnerSettings(
                    gate_log_uri=str(tmp_path / "gate_log"),
                    registry_uri=str(tmp_path / "registry"),
                    reports_dir=str(tmp_path / "reports"),
                    policy_name=POLICY,
                    promote=False,
                    progress=False,
                    announce=False,
                    trainer={"steps": 30, "hidden_sizes": [16]},
                    cpe={"n_bootstrap": 20, "fqe": {"n_steps": 30}},
                )
                run = run_once(learner, settings.tables.timeline_uri, pushgateway=pushgateway)
                assert run.ok, run.error

                serving_port, server = _serve(serving_registry)
                rollout_port, rollout_server = _serve(rollout_registry)
                servers += [server, rollout_server]
                host = "127.0.0.1"
                config = {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(DEPLOY / "rules.yml")],
                    "scrape_configs": [
                        {
                            "job_name": "policyloop-sessionizer",
                            "static_configs": [{"targets": [f"{host}:{sessionizer.metrics_port}"]}],
                        },
                        {
                            "job_name": "policyloop-serving",
                            "static_configs": [{"targets": [f"{host}:{serving_port}"]}],
                        },
                        {
                            "job_name": "policyloop-decision",
                            "static_configs": [{"targets": [f"{host}:{decision_port}"]}],
                        },
                        {
                            "job_name": "policyloop-rollout",
                            "static_configs": [{"targets": [f"{host}:{rollout_port}"]}],
                        },
                        {
                            "job_name": "pushgateway",
                            "honor_labels": True,
                            "static_configs": [{"targets": [pushgateway.split("//")[1]]}],
                        },
                    ],
                }
                with decision.client() as http:  # decisions, and one invalid request (400)
                    for _ in range(DECISIONS):
                        body = {"state": STATE, "possible_actions": [0, 1]}
                        assert http.post("/v1/decisions", json=body).status_code == 200
                    assert http.post("/v1/decisions", json={"state": {}}).status_code == 400
                with running_prometheus(config, tmp_path) as prometheus:
                    yield {
                        "prometheus": prometheus,
                        "incumbent": incumbent,
                        "candidate": candidate,
                        "stats": stats,
                        "run": run,
                    }
    finally:
        for server in servers:
            server.shutdown()
        sessionizer.stop()
        decision.stop()


def test_monitoring_stack_scrapes_rollout_serving_pipeline_and_learner_metrics(stack):
    url = stack["prometheus"]
    incumbent, candidate = stack["incumbent"], stack["candidate"]
    played = stack["stats"]

    # Serving: decisions and episodes by policy version, from the serving job.
    serving = 'job="policyloop-serving"'  # the decision service's job has its own test
    decisions = _wait_for(url, f'policyloop_policy_decisions_total{{policy="{POLICY}",{serving}}}')
    by_version = {s["metric"]["policy_version"]: float(s["value"][1]) for s in decisions}
    assert {s["metric"]["job"] for s in decisions} == {"policyloop-serving"}
    assert set(by_version) <= {incumbent, candidate} and by_version
    assert sum(by_version.values()) == sum(played.lengths)
    episodes = _wait_for(
        url, f'sum(policyloop_policy_episodes_total{{policy="{POLICY}",{serving}}})'
    )
    assert float(episodes[0]["value"][1]) == len(played.returns)
    assert _wait_for(url, f'policyloop_policy_propensity_bucket{{policy="{POLICY}",le="1.0"}}')

    # Rollout: the controller's step fraction and evidence, labelled by version and role.
    fraction = _wait_for(url, f'policyloop_rollout_step_fraction{{policy="{POLICY}"}}')
    assert [(s["metric"]["policy_version"], float(s["value"][1])) for s in fraction] == [
        (candidate, 0.5)
    ]
    roles = _wait_for(url, f'policyloop_rollout_episodes{{policy="{POLICY}"}}')
    assert {(s["metric"]["role"], s["metric"]["policy_version"]) for s in roles} == {
        ("candidate", candidate),
        ("incumbent", incumbent),
    }
    client_fraction = _wait_for(url, f'policyloop_rollout_fraction{{policy="{POLICY}"}}')
    assert {s["metric"]["policy_version"] for s in client_fraction} == {candidate}

    # Pipeline: the sessionizer wrote every decision as a row.
    rows = _wait_for(
        url, 'sum(policyloop_sessionizer_rows_written_total{job="policyloop-sessionizer"})'
    )
    assert float(rows[0]["value"][1]) == sum(played.lengths)
    assert _wait_for(url, 'policyloop_sessionizer_events_total{type="decision"}')

    # Learner: the run's push, grouped by job and policy, through the Pushgateway.
    last_run = _wait_for(url, f'policyloop_learner_last_run_timestamp_seconds{{policy="{POLICY}"}}')
    assert [s["metric"]["job"] for s in last_run] == ["policyloop_learner"]
    outcome = _wait_for(url, f'policyloop_learner_gate_decision{{policy="{POLICY}"}} == 1')
    expected = {"published": "publish", "rejected": "reject", "skipped": "skip"}[
        stack["run"].status
    ]
    assert [s["metric"]["outcome"] for s in outcome] == [expected]


def test_alert_rules_load_into_the_running_prometheus(stack):
    import json
    import urllib.request

    with urllib.request.urlopen(stack["prometheus"] + "/api/v1/rules", timeout=5) as response:
        groups = json.load(response)["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"PolicyloopRolloutCandidateRegression", "PolicyloopSessionizerLagHigh"} <= names
    assert all(rule["health"] != "err" for group in groups for rule in group["rules"])


def test_the_decision_services_decisions_latency_and_errors_reach_prometheus(stack):
    """What the dashboard's decision-service row reads, scraped from both workers."""
    url = stack["prometheus"]
    job = 'job="policyloop-decision"'
    decisions = _wait_for(url, f"sum(policyloop_policy_decisions_total{{{job}}})")
    assert float(decisions[0]["value"][1]) == DECISIONS
    routes = _wait_for(url, f'policyloop_serve_requests_total{{{job},route="/v1/decisions"}}')
    by_status: dict[str, float] = {}
    for sample in routes:
        status = sample["metric"]["status"]
        by_status[status] = by_status.get(status, 0.0) + float(sample["value"][1])
    assert by_status == {"200": DECISIONS, "400": 1}
    assert {s["metric"]["worker"] for s in routes} <= {"0", "1"}
    assert _wait_for(url, f"policyloop_serve_request_duration_seconds_bucket{{{job}}}")


#: Series that exist only after something went wrong, which this healthy stack never does.
ONLY_ON_FAILURE = {"policyloop_policy_load_failures_total"}


def test_every_metric_the_dashboard_and_alerts_query_is_scraped_from_the_stack(stack):
    import json
    import urllib.request

    url = stack["prometheus"] + "/api/v1/label/__name__/values"
    deadline = time.monotonic() + 20
    while True:
        with urllib.request.urlopen(url, timeout=5) as response:
            scraped = set(json.load(response)["data"])
        missing = {
            name
            for name in _queried_metric_names() - ONLY_ON_FAILURE
            if name not in scraped and f"{name}_bucket" not in scraped  # a histogram's name
        }
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, f"queried by deploy/ but not exported by any service: {sorted(missing)}"
    assert _wait_for(stack["prometheus"], 'policyloop_sessionizer_dlq_total{reason="malformed"}')
