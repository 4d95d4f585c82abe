"""Compose without Docker: each container a network namespace of its own on one bridge.

:class:`ComposeNetwork` builds what ``docker compose up`` gives the services: a bridge with an
address on the host, and per container a network namespace whose ``eth0`` (one end of a veth
pair, the other on the bridge) holds a non-loopback address of the bridge's subnet, and whose
``/etc/hosts`` resolves every service name to the addresses of its replicas (``ip netns exec``
mounts ``/etc/netns/<namespace>/hosts`` over ``/etc/hosts``). A process started in a container
runs in its namespace as the container's user. What listens on 127.0.0.1 there is reachable from
that container only, as in Docker: Prometheus, on the host, reaches a container's address
through the bridge.

Creating namespaces needs root and iproute2: without them the test skips on a developer's
machine and fails under CI and ``make test`` (:func:`monitoring_stack.unavailable`).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.deploy.deploy_files import UserSpec
from tests.deploy.monitoring_stack import require_binary, unavailable

__all__ = ["ComposeNetwork", "Container", "require_network_namespaces"]

NETNS_ETC = Path("/etc/netns")


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")


def require_network_namespaces() -> str:
    """``ip``'s path once a network namespace could be created here; else skip or fail."""
    if os.geteuid() != 0:
        unavailable("network namespaces need root: the as-deployed test runs each service in one")
    ip = require_binary("ip")
    require_binary("setpriv")
    probe = f"plprobe{uuid.uuid4().hex[:8]}"
    result = subprocess.run([ip, "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        unavailable(f"`ip netns add` failed here: {result.stderr.strip()}")
    _run(ip, "netns", "delete", probe)
    return ip


@dataclass
class Container:
    """One replica of a compose service: its namespace, address and process."""

    name: str
    service: str
    namespace: str
    address: str
    log_path: Path
    process: subprocess.Popen | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no output)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ComposeNetwork:
    """A bridge on a free 10.x.y.0/24 subnet and one namespace per container (a context manager).

    ``add`` every container first, then ``write_hosts`` (the names of every service), then
    ``start`` processes in them; ``close`` stops the processes and removes every namespace,
    interface and hosts file it made.
    """

    def __init__(self, ip: str, workdir: Path) -> None:
        self.ip = ip
        self.workdir = workdir
        self.tag = uuid.uuid4().hex[:5]
        self.bridge = f"plb{self.tag}"
        self.subnet = self._free_subnet()
        self.gateway = f"{self.subnet}.1"
        self.containers: dict[str, Container] = {}
        self._made_netns_etc = False

    # ------------------------------------------------------------------ network
    def _free_subnet(self) -> str:
        taken = subprocess.run(
            [self.ip, "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
        ).stdout
        candidates = [f"10.{a}.{b}" for a in range(200, 250) for b in range(256)]
        random.shuffle(candidates)
        return next(prefix for prefix in candidates if f" {prefix}." not in taken)

    def __enter__(self) -> ComposeNetwork:
        _run(self.ip, "link", "add", self.bridge, "type", "bridge")
        _run(self.ip, "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run(self.ip, "link", "set", self.bridge, "up")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, name: str, service: str) -> Container:
        """A namespace for container ``name`` of ``service`` with an address on the bridge."""
        index = len(self.containers)
        namespace = f"pl{self.tag}-{name}"
        host_end = f"plh{self.tag}{index}"
        address = f"{self.subnet}.{10 + index}"
        _run(self.ip, "netns", "add", namespace)
        container = Container(name, service, namespace, address, self.workdir / f"{name}.log")
        self.containers[name] = container
        _run(
            self.ip,
            "link",
            "add",
            host_end,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            namespace,
        )
        _run(self.ip, "link", "set", host_end, "master", self.bridge, "up")
        _run(self.ip, "-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _run(self.ip, "-n", namespace, "link", "set", "eth0", "up")
        _run(self.ip, "-n", namespace, "link", "set", "lo", "up")
        _run(self.ip, "-n", namespace, "route", "add", "default", "via", self.gateway)
        return container

    def addresses(self, service: str) -> list[str]:
        """The addresses of ``service``'s replicas (what compose's DNS answers for its name)."""
        return [c.address for c in self.containers.values() if c.service == service]

    def write_hosts(self) -> None:
        """Every container resolves every service's name, and its own, as in compose."""
        lines = ["127.0.0.1 localhost"]
        for container in self.containers.values():
            lines.append(f"{container.address} {container.service} {container.name}")
        if not NETNS_ETC.exists():
            NETNS_ETC.mkdir()
            self._made_netns_etc = True
        for container in self.containers.values():
            directory = NETNS_ETC / container.namespace
            directory.mkdir()
            (directory / "hosts").write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ processes
    def exec_args(self, container: Container, user: UserSpec, argv: Sequence[str]) -> list[str]:
        """``argv`` in ``container``'s namespace as ``user``."""
        args = [self.ip, "netns", "exec", container.namespace]
        if user.uid != 0:
            setpriv = shutil.which("setpriv") or "setpriv"
            args += [setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups"]
            args += ["--"]
        return args + list(argv)

    def start(
        self,
        container: Container,
        user: UserSpec,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
    ) -> None:
        log = open(container.log_path, "ab")  # noqa: SIM115 - closed in close()
        container._log = log
        container.process = subprocess.Popen(
            self.exec_args(container, user, argv),
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def run(
        self,
        container: Container,
        user: UserSpec,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        timeout_s: float = 30.0,
    ) -> subprocess.CompletedProcess:
        """``argv`` in ``container`` to its end (what ``docker exec`` does)."""
        return subprocess.run(
            self.exec_args(container, user, argv),
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def _stop(self, container: Container) -> None:
        process = container.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if container._log is not None:
            container._log.close()

    def close(self) -> None:
        for container in self.containers.values():
            self._stop(container)
        time.sleep(0.1)
        for container in self.containers.values():
            shutil.rmtree(NETNS_ETC / container.namespace, ignore_errors=True)
            subprocess.run([self.ip, "netns", "delete", container.namespace], capture_output=True)
        subprocess.run([self.ip, "link", "delete", self.bridge], capture_output=True)
        if self._made_netns_etc:
            with contextlib.suppress(OSError):
                NETNS_ETC.rmdir()
