"""deploy/ hardening, read from the files: who the containers run as, how they are kept alive,
how much memory they may take, and what the host exposes.

Compose (``deploy/compose/docker-compose.yml``), the Kubernetes manifests (``deploy/k8s/``) and
the image (``deploy/Dockerfile``). That the probed endpoints answer, from another address than
loopback, is shown by running the services: ``test_deploy_as_deployed.py``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.cli.settings import Settings
from services.sessionizer.settings import SessionizerSettings
from tests.deploy.deploy_files import (
    UserSpec,
    compose_services,
    k8s_documents,
    k8s_workloads,
    memory_bytes,
    policyloop_services,
    read_dockerfile,
)

LOOPBACK = "127.0.0.1"


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def _containers() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every container of every workload: ``Kind/name/container`` -> (pod spec, container)."""
    return {
        f"{key}/{container['name']}": (_pod_spec(workload), container)
        for key, workload in k8s_workloads().items()
        for container in _pod_spec(workload)["containers"]
    }


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


# --------------------------------------------------------------------------- the image
def test_the_image_runs_as_a_numeric_non_root_user():
    """Numeric, so that Kubernetes' runAsNonRoot can verify it without the image's passwd."""
    user = read_dockerfile().user
    assert user is not None, "deploy/Dockerfile has no USER: its containers run as root"
    assert UserSpec.parse(user).uid != 0


# --------------------------------------------------------------------------- compose
def test_every_compose_service_runs_as_a_non_root_user():
    users = {name: service.get("user") for name, service in compose_services().items()}
    root = {
        name: user for name, user in users.items() if user is None or UserSpec.parse(user).uid == 0
    }
    assert root == {}


def test_the_policyloop_compose_services_run_as_the_images_user():
    """The image's user owns /data, so a fresh `data` volume is writable by the services."""
    image_user = UserSpec.parse(read_dockerfile().user or "0")
    users = {name: UserSpec.parse(s.get("user", "0")) for name, s in policyloop_services().items()}
    assert users == {name: image_user for name in policyloop_services()}


def test_every_compose_service_has_a_memory_limit():
    def limit(service: dict[str, Any]) -> str | None:
        deploy = service.get("deploy", {}).get("resources", {}).get("limits", {})
        return deploy.get("memory", service.get("mem_limit"))

    limits = {name: limit(service) for name, service in compose_services().items()}
    assert {name for name, value in limits.items() if value is None} == set()
    assert all(memory_bytes(value) > 0 for value in limits.values())


def test_every_compose_service_has_a_healthcheck():
    checks = {name: service.get("healthcheck", {}) for name, service in compose_services().items()}
    missing = {
        name for name, check in checks.items() if not check.get("test") or check.get("disable")
    }
    assert missing == set()


def test_each_policyloop_healthcheck_probes_what_its_command_serves():
    """A service with --metrics-port is checked at that port's /metrics in its container; the
    decision service (``serve``) at its --port's /healthz; the learner, which serves nothing, at
    the Pushgateway its command pushes to."""
    probed = {}
    for name, service in policyloop_services().items():
        command = [str(arg) for arg in service["command"]]
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        port, pushgateway = _flag(command, "--metrics-port"), _flag(command, "--pushgateway")
        if command[0] == "serve":
            expected = f"http://{LOOPBACK}:{_flag(command, '--port')}/healthz"
        elif port:
            expected = f"http://{LOOPBACK}:{port}/metrics"
        else:
            expected = f"{pushgateway}/metrics"
        probed[name] = expected in test
    assert probed == {name: True for name in policyloop_services()}


def test_no_compose_port_is_published_beyond_loopback():
    def published(port: Any) -> str:
        if isinstance(port, dict):  # the long syntax
            return str(port.get("host_ip", ""))
        parts = str(port).split(":")
        return parts[0] if len(parts) == 3 else ""  # "HOST_IP:HOST:CONTAINER"; else all hosts

    exposed = {
        f"{name} {port}"
        for name, service in compose_services().items()
        for port in service.get("ports", [])
        if published(port) != LOOPBACK
    }
    assert exposed == set()


@pytest.mark.parametrize("name, port", [("pushgateway", 9091), ("grafana", 3000)])
def test_pushgateway_and_grafana_are_published_on_loopback_only(name, port):
    assert compose_services()[name]["ports"] == [f"{LOOPBACK}:{port}:{port}"]


def test_grafanas_admin_password_comes_from_the_environment_not_the_file():
    """A required compose variable (``${VAR:?message}``): unset, compose refuses to start, and
    Grafana never falls back to admin/admin."""
    environment = compose_services()["grafana"]["environment"]
    password = str(environment.get("GF_SECURITY_ADMIN_PASSWORD", ""))
    assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*:\?[^}]+\}", password), password


# --------------------------------------------------------------------------- Kubernetes
def test_every_k8s_pod_runs_as_a_non_root_user():
    def non_root(pod: dict[str, Any], container: dict[str, Any]) -> bool:
        context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        uid = context.get("runAsUser")
        return context.get("runAsNonRoot") is True and isinstance(uid, int) and uid != 0

    containers = _containers()
    assert containers
    assert {key for key, (pod, c) in containers.items() if not non_root(pod, c)} == set()


def test_the_k8s_pods_run_as_the_images_user():
    image_user = UserSpec.parse(read_dockerfile().user or "0")
    uids = {
        key: {**pod.get("securityContext", {}), **c.get("securityContext", {})}.get("runAsUser")
        for key, (pod, c) in _containers().items()
    }
    assert uids == {key: image_user.uid for key in uids}


def test_no_k8s_container_may_escalate_privileges():
    loose = {
        key
        for key, (_pod, c) in _containers().items()
        if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False
        or c.get("securityContext", {}).get("capabilities", {}).get("drop") != ["ALL"]
    }
    assert loose == set()


def test_every_k8s_container_has_a_memory_limit_at_least_its_request():
    resources = {key: c.get("resources", {}) for key, (_pod, c) in _containers().items()}
    limits = {key: r.get("limits", {}).get("memory") for key, r in resources.items()}
    assert {key for key, limit in limits.items() if limit is None} == set()
    below = {
        key
        for key, r in resources.items()
        if memory_bytes(limits[key]) < memory_bytes(r.get("requests", {}).get("memory", 0))
    }
    assert below == set()


def test_every_long_running_k8s_container_has_a_liveness_probe():
    containers = {
        key: c for key, (_pod, c) in _containers().items() if not key.startswith("CronJob/")
    }
    assert containers
    assert {key for key, c in containers.items() if "livenessProbe" not in c} == set()


def test_every_k8s_container_with_a_port_has_a_readiness_probe():
    with_ports = {key: c for key, (_pod, c) in _containers().items() if c.get("ports")}
    assert with_ports
    assert {key for key, c in with_ports.items() if "readinessProbe" not in c} == set()


def test_k8s_probes_get_metrics_on_the_port_the_container_serves_them():
    """Each probe is an HTTP GET of /metrics (what Prometheus scrapes) on a declared port,
    the one the container's ``--metrics-port`` serves (the decision service: below)."""
    probes = {}
    for key, (_pod, c) in _containers().items():
        if c["args"][0] == "serve":
            continue
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        served = _flag([str(a) for a in c.get("args", [])], "--metrics-port")
        for kind in ("livenessProbe", "readinessProbe"):
            if kind in c:
                get = c[kind].get("httpGet", {})
                port = ports.get(get.get("port"), get.get("port"))
                probes[f"{key} {kind}"] = (get.get("path"), str(port))
                assert served is not None, f"{key} is probed but serves no --metrics-port"
                assert probes[f"{key} {kind}"] == ("/metrics", served), probes
    assert probes


def _period_s(schedule: str) -> int:
    """The interval of a cron schedule of the forms ``M * * * *`` and ``M H * * *``."""
    minute, hour, *rest = schedule.split()
    assert rest == ["*", "*", "*"] and minute.isdigit(), f"teach this test {schedule!r}"
    if hour == "*":
        return 3600
    assert hour.isdigit(), f"teach this test {schedule!r}"
    return 86400


def test_every_k8s_batch_job_is_ended_before_its_next_scheduled_run():
    """A batch run has no endpoint to probe; its liveness is a deadline. A hung run must not
    outlive its period: with concurrencyPolicy Forbid it would skip every later run."""
    cronjobs = {k: w for k, w in k8s_workloads().items() if w["kind"] == "CronJob"}
    assert cronjobs
    deadlines = {
        key: (
            w["spec"]["jobTemplate"]["spec"].get("activeDeadlineSeconds", float("inf"))
            < _period_s(w["spec"]["schedule"])
        )
        for key, w in cronjobs.items()
    }
    assert deadlines == {key: True for key in cronjobs}


def _container_environment(container: dict[str, Any]) -> dict[str, str]:
    """What the container's environment holds: its ConfigMaps (envFrom), then ``env``."""
    config_maps = {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
    return env


class _SessionizerSection(BaseSettings):
    """The ``sessionizer`` section read from the environment as :class:`Settings` reads it
    (same prefix and nesting); the other sections are left out, since their secrets (the SASL
    login) come from a Secret that the manifests only name."""

    model_config = SettingsConfigDict(
        env_prefix=Settings.model_config["env_prefix"],
        env_nested_delimiter=Settings.model_config["env_nested_delimiter"],
        extra="ignore",
    )

    sessionizer: SessionizerSettings = Field(default_factory=SessionizerSettings)


def test_the_k8s_sessionizer_serves_metrics_on_the_pods_address(monkeypatch):
    """The kubelet's probes and Prometheus reach the pod's address, never its loopback."""
    (container,) = [
        c
        for key, (_pod, c) in _containers().items()
        if key.startswith("Deployment/") and c["args"][0] == "sessionize"
    ]
    for name in [name for name in os.environ if name.startswith("POLICYLOOP_")]:
        monkeypatch.delenv(name)
    for name, value in _container_environment(container).items():
        monkeypatch.setenv(name, value)
    host = _SessionizerSection().sessionizer.metrics_host
    assert not ipaddress.ip_address(host).is_loopback, host


# --------------------------------------------------------------------------- the decision service
def _decision_containers() -> dict[str, dict[str, Any]]:
    found = {key: c for key, (_pod, c) in _containers().items() if c["args"][0] == "serve"}
    assert found, "deploy/k8s has no decision service (policyloop serve)"
    return found


def test_the_k8s_decision_service_is_live_at_healthz_and_ready_at_readyz_on_its_port():
    """Readiness is /readyz (a policy loaded, the logger connected): a pod without either gets no
    traffic; liveness is /healthz (the process answers), on the port ``--port`` serves."""
    for key, c in _decision_containers().items():
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        served = _flag([str(a) for a in c["args"]], "--port")
        probes = {
            kind: (c[kind]["httpGet"]["path"], str(ports.get(c[kind]["httpGet"]["port"])))
            for kind in ("livenessProbe", "readinessProbe")
        }
        assert probes == {
            "livenessProbe": ("/healthz", served),
            "readinessProbe": ("/readyz", served),
        }, key


def test_the_decision_service_binds_a_public_address_only_with_api_keys_from_a_secret():
    """``--host 0.0.0.0`` without keys is refused at start; the keys come from a Secret (k8s) or
    a required variable (compose), never from the files, and nothing allows unauthenticated."""
    for key, c in _decision_containers().items():
        args = [str(a) for a in c["args"]]
        variable = _flag(args, "--api-keys-env")
        assert _flag(args, "--host") == "0.0.0.0" and variable, key
        assert "--allow-unauthenticated" not in args
        (source,) = [e for e in c["env"] if e["name"] == variable]
        assert "secretKeyRef" in source.get("valueFrom", {}), source
    service = compose_services()["decision"]
    command = [str(a) for a in service["command"]]
    assert "--allow-unauthenticated" not in command
    keys = str(service["environment"][_flag(command, "--api-keys-env")])
    assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*:\?[^}]+\}", keys), keys


def test_the_k8s_decision_service_scales_on_cpu():
    (hpa,) = [d for d in k8s_documents() if d["kind"] == "HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    assert f"{target['kind']}/{target['name']}" in {
        key.rsplit("/", 1)[0] for key in _decision_containers()
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2  # a rolling restart keeps one pod serving
    (container,) = _decision_containers().values()
    assert container["resources"]["requests"]["cpu"]  # utilization is relative to the request


def test_the_k8s_decision_service_is_reachable_through_a_service_on_its_port():
    (deployment,) = {k.split("/")[1] for k in _decision_containers()}
    services = [d for d in k8s_documents() if d["kind"] == "Service"]
    (service,) = [
        s for s in services if s["spec"]["selector"] == {"app.kubernetes.io/name": "decision"}
    ]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert deployment == service["metadata"]["name"]
