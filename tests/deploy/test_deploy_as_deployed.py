"""deploy/ as deployed: the compose file's services run, and Prometheus scrapes every one of them.

Each compose service that runs the policyloop image is started the way its container would run
it: the image's entrypoint (``deploy/Dockerfile``) with the service's ``command``, the image's
and the service's environment, as the service's user, one process per replica, each in a network
namespace of its own whose address is not loopback (:mod:`tests.deploy.compose_stack`). What
Docker would provide is stood in for, and nothing else is changed:

- the ``kafka`` service is the embedded Tansu broker on the bridge's address:
  ``POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS`` points at it, and its topics are created beforehand,
  as Kafka's topic auto-creation would;
- the named volume ``data`` is one directory owned by the image's user (the image creates
  ``/data`` owned by it), the image's working directory a directory per container, and paths
  in the environment are mapped onto them;
- the ``pushgateway`` service is the Pushgateway binary with the image's default arguments;
- Prometheus runs on the host with ``deploy/prometheus/prometheus.yml`` and its rules; its
  targets are rewritten from service names to the containers' addresses (what compose's DNS
  answers) and its scrape interval is 1 s instead of 15 s, so that the test need not wait.

Grafana is not started: nothing scrapes it. ``test_manifests_hardening.py`` checks the rest of
the files statically.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.broker.embedded import find_free_port, start_broker, stop_broker
from services.kafka_settings import KafkaSettings
from services.kafka_topics import ensure_topics
from tests.deploy.compose_stack import ComposeNetwork, Container, require_network_namespaces
from tests.deploy.deploy_files import (
    COMPOSE_FILE,
    DEPLOY,
    Dockerfile,
    UserSpec,
    compose_services,
    policyloop_services,
    read_dockerfile,
)
from tests.deploy.monitoring_stack import prometheus_query, require_binary, running_prometheus

pytestmark = pytest.mark.integration

REPO = DEPLOY.parent
BOOTSTRAP = "POLICYLOOP_KAFKA__BOOTSTRAP_SERVERS"
#: The image's default user of prom/pushgateway (nobody), when the compose file names none.
PUSHGATEWAY_IMAGE_USER = UserSpec(65534, 65534)
UP_TIMEOUT_S = 60.0


@dataclass
class Launch:
    """How a container's process was started: what a healthcheck runs with too."""

    user: UserSpec
    env: dict[str, str]
    cwd: Path


@dataclass
class Deployed:
    network: ComposeNetwork
    prometheus: str
    config: dict[str, Any]
    targets: list[dict[str, Any]]
    launches: dict[str, Launch] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Deployed(prometheus={self.prometheus!r})"

    def containers(self, service: str) -> list[Container]:
        return [c for c in self.network.containers.values() if c.service == service]


# --------------------------------------------------------------------------- the stand-ins
def _volumes(service: dict[str, Any], root: Path, user: UserSpec) -> dict[str, Path]:
    """The service's mounts: container path -> host directory."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):  # a bind mount, relative to the compose file
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
        else:  # a named volume
            path = root / "volumes" / source
            if not path.exists():
                path.mkdir(parents=True)
                shutil.chown(path, user.uid, user.gid)
            mounts[target] = path
    return mounts


def _mapped(value: str, mounts: dict[str, Path]) -> str:
    for target in sorted(mounts, key=len, reverse=True):
        if value == target or value.startswith(target.rstrip("/") + "/"):
            return str(mounts[target]) + value[len(target) :]
    return value


def _environment(
    service: dict[str, Any], image: Dockerfile, mounts: dict[str, Path], broker: str
) -> dict[str, str]:
    """The container's environment: the image's, then the service's, paths mapped; Kafka is
    the embedded broker."""
    environment = service.get("environment", {})
    if isinstance(environment, list):  # the KEY=VALUE list form
        environment = dict(item.split("=", 1) for item in environment)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(mounts[image.workdir]),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),  # the image installs this repository's code
    }
    env.update({key: _mapped(str(value), mounts) for key, value in image.env.items()})
    env.update({key: _mapped(str(value), mounts) for key, value in environment.items()})
    assert env.get(BOOTSTRAP, "").split(":")[0] == "kafka", f"{BOOTSTRAP}: {env.get(BOOTSTRAP)}"
    env[BOOTSTRAP] = broker
    return env


def _entrypoint(image: Dockerfile) -> list[str]:
    assert image.entrypoint == ["policyloop"], image.entrypoint
    return [sys.executable, "-m", "services.cli"]  # what `policyloop` runs


def _prometheus_config(network: ComposeNetwork, own_address: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with its targets at the containers' addresses."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mounts = _volumes(compose_services()["prometheus"], network.workdir, UserSpec(0, 0))
    config["rule_files"] = [_mapped(path, mounts) for path in config.get("rule_files", [])]
    config["global"]["scrape_interval"] = "1s"

    def addresses(host: str) -> list[str]:
        if host == "localhost":  # in the Prometheus container: Prometheus itself
            return [own_address.split(":")[0]]
        found = network.addresses(host)
        assert found, f"prometheus.yml scrapes {host!r}, which is no running compose service"
        return found

    for job in config["scrape_configs"]:
        static = []
        for group in job.pop("static_configs", []):
            targets = []
            for target in group["targets"]:
                host, port = target.rsplit(":", 1)
                port = own_address.split(":")[1] if host == "localhost" else port
                targets += [f"{address}:{port}" for address in addresses(host)]
            static.append({**group, "targets": targets})
        for discovery in job.pop("dns_sd_configs", []):
            assert discovery.get("type") == "A", discovery  # compose DNS answers A records
            targets = [
                f"{address}:{discovery['port']}"
                for name in discovery["names"]
                for address in addresses(name)
            ]
            static.append({"targets": targets})
        assert not [key for key in job if key.endswith("_sd_configs")], job
        job["static_configs"] = static
    return config


def _active_targets(prometheus: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{prometheus}/api/v1/targets?state=active", timeout=5) as r:
        return json.load(r)["data"]["activeTargets"]


def _wait_until_all_up(prometheus: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + UP_TIMEOUT_S
    while True:
        targets = _active_targets(prometheus)
        done = targets and all(t["health"] == "up" for t in targets)
        if done or time.monotonic() > deadline:
            return targets
        time.sleep(0.5)


@pytest.fixture(scope="module")
def deployed():
    """Every compose service of the policyloop image and the Pushgateway running in their own
    namespaces, the embedded broker for Kafka, Prometheus scraping them with the repository's
    config; yields once Prometheus sees every target up (or after UP_TIMEOUT_S)."""
    ip = require_network_namespaces()
    pushgateway = require_binary("prometheus-pushgateway", "pushgateway")
    require_binary("prometheus")
    services = compose_services()
    ours = policyloop_services()
    image = read_dockerfile()
    root = Path(tempfile.mkdtemp(prefix="policyloop-deploy-"))
    root.chmod(0o755)  # the containers' users traverse it
    try:
        with ComposeNetwork(ip, root) as network:
            for name, service in {**ours, "pushgateway": services["pushgateway"]}.items():
                replicas = service.get("deploy", {}).get("replicas", 1)
                for k in range(1, replicas + 1):
                    network.add(f"{name}-{k}", name)
            network.write_hosts()
            broker = start_broker(root / "broker", port=0, host=network.gateway)
            try:
                launches = {}
                user = services["pushgateway"].get("user")
                user = UserSpec.parse(user) if user else PUSHGATEWAY_IMAGE_USER
                # The image's defaults: no persistence file (Debian's build sets one).
                argv = [pushgateway, "--persistence.file="]
                env = {"PATH": "/usr/bin:/bin"}
                network.start(network.containers["pushgateway-1"], user, argv, env, root)

                kafka_settings = None
                for container in network.containers.values():
                    if container.service not in ours:
                        continue
                    service = ours[container.service]
                    user = UserSpec.parse(service["user"]) if "user" in service else image.run_as
                    workdir = root / container.name / "workdir"
                    workdir.mkdir(parents=True)
                    shutil.chown(workdir, user.uid, user.gid)
                    mounts = {**_volumes(service, root, user), image.workdir: workdir}
                    env = _environment(service, image, mounts, broker.bootstrap_servers)
                    if kafka_settings is None:
                        prefix = "POLICYLOOP_KAFKA__"
                        kafka_settings = KafkaSettings(
                            **{
                                key.removeprefix(prefix).lower(): value
                                for key, value in env.items()
                                if key.startswith(prefix)
                            }
                        )
                        ensure_topics(kafka_settings)
                    argv = _entrypoint(image) + [str(arg) for arg in service["command"]]
                    network.start(container, user, argv, env, workdir)
                    launches[container.name] = Launch(user, env, workdir)

                port = find_free_port()
                config = _prometheus_config(network, f"127.0.0.1:{port}")
                (root / "prometheus").mkdir()
                with running_prometheus(config, root / "prometheus", port=port) as prometheus:
                    targets = _wait_until_all_up(prometheus)
                    yield Deployed(network, prometheus, config, targets, launches)
            finally:
                stop_broker(root / "broker")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _logs(deployed: Deployed) -> str:
    return "\n".join(
        f"--- {c.name} ({'running' if c.running() else 'exited'}):\n{c.log_tail(8)}"
        for c in deployed.network.containers.values()
    )


# --------------------------------------------------------------------------- the tests
def test_prometheus_reports_every_target_of_the_deployed_config_up(deployed):
    expected = {
        (job["job_name"], target): "up"
        for job in deployed.config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    reported = {
        (t["labels"]["job"], t["labels"]["instance"]): (
            "up" if t["health"] == "up" else f"{t['health']}: {t['lastError']}"
        )
        for t in deployed.targets
    }
    assert reported == expected, _logs(deployed)


def test_the_sessionizer_replicas_are_two_targets_of_their_own(deployed):
    sessionizers = deployed.containers("sessionizer")
    scraped = {
        t["labels"]["instance"]
        for t in deployed.targets
        if t["labels"]["job"] == "policyloop-sessionizer"
    }
    assert len(sessionizers) == 2
    assert scraped == {f"{c.address}:9400" for c in sessionizers}


def test_each_sessionizer_serves_metrics_on_its_container_address(deployed):
    answers = {}
    for container in deployed.containers("sessionizer"):
        url = f"http://{container.address}:9400/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read().decode()
                answers[url] = response.status == 200 and "policyloop_sessionizer" in body
        except OSError as exc:
            answers[url] = repr(exc)
    assert answers and all(answer is True for answer in answers.values()), answers


def test_every_policyloop_healthcheck_passes_inside_its_container(deployed):
    """Each service's compose healthcheck, run in its first replica as its user (what Docker
    does), succeeds: the endpoints the checks probe exist. The learner's passes once its first
    run has reached the Pushgateway."""
    outcomes: dict[str, str] = {}
    deadline = time.monotonic() + UP_TIMEOUT_S
    for name, service in policyloop_services().items():
        test = service.get("healthcheck", {}).get("test")
        if not test:
            outcomes[name] = "no healthcheck"
            continue
        kind, *argv = test
        assert kind in ("CMD", "CMD-SHELL"), test
        argv = ["/bin/sh", "-c", argv[0]] if kind == "CMD-SHELL" else argv
        argv = [sys.executable if arg == "python" else arg for arg in argv]
        container = deployed.containers(name)[0]
        launch = deployed.launches[container.name]
        while True:
            result = deployed.network.run(container, launch.user, argv, launch.env, launch.cwd)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        outcomes[name] = "passes" if result.returncode == 0 else result.stderr.strip()[-300:]
    assert outcomes == {name: "passes" for name in policyloop_services()}


def test_the_learners_run_reaches_prometheus_through_the_pushgateway(deployed):
    deadline = time.monotonic() + UP_TIMEOUT_S
    query = 'policyloop_learner_last_run_timestamp_seconds{job="policyloop_learner"}'
    while not (result := prometheus_query(deployed.prometheus, query)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result, _logs(deployed)


def test_no_deployed_service_exits(deployed):
    exited = {c.name: c.log_tail() for c in deployed.network.containers.values() if not c.running()}
    assert exited == {}
