"""The files of ``deploy/`` read as a container runtime reads them.

The compose file and the Kubernetes manifests through YAML (anchors and merge keys resolved), the
Dockerfile's final stage as its instructions (``USER``, ``WORKDIR``, ``ENV``, ``ENTRYPOINT``).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COMPOSE_FILE",
    "DEPLOY",
    "DOCKERFILE",
    "Dockerfile",
    "UserSpec",
    "compose_services",
    "k8s_documents",
    "k8s_workloads",
    "memory_bytes",
    "policyloop_services",
    "read_dockerfile",
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"


@dataclass(frozen=True)
class UserSpec:
    """A ``user:`` / ``USER`` value: numeric uid and gid (gid 0 when not given, as Docker does
    for a uid the image's /etc/passwd does not name)."""

    uid: int
    gid: int

    @classmethod
    def parse(cls, value: str | int) -> UserSpec:
        uid, _, gid = str(value).partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ValueError(f"user {value!r} is not numeric (uid or uid:gid)")
        return cls(int(uid), int(gid or 0))


ROOT = UserSpec(0, 0)


@dataclass
class Dockerfile:
    """The final stage of ``deploy/Dockerfile``, as its container starts."""

    user: str | None = None
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)

    @property
    def run_as(self) -> UserSpec:
        return ROOT if self.user is None else UserSpec.parse(self.user)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        out.append((keyword.upper(), arguments.strip()))
    return out


def _env_pairs(arguments: str) -> dict[str, str]:
    words = shlex.split(arguments)
    if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def read_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    image = Dockerfile()
    for keyword, arguments in _instructions(path.read_text()):
        if keyword == "FROM":
            image = Dockerfile()  # a later stage starts from scratch (its base's are not ours)
        elif keyword == "USER":
            image.user = arguments
        elif keyword == "WORKDIR":
            image.workdir = str(Path(image.workdir) / arguments)
        elif keyword == "ENV":
            image.env.update(_env_pairs(arguments))
        elif keyword == "ENTRYPOINT":
            image.entrypoint = json.loads(arguments)
    return image


def compose_services() -> dict[str, dict[str, Any]]:
    """``services:`` of the compose file, anchors and ``<<`` merges resolved."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def policyloop_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the policyloop image (built from ``deploy/Dockerfile``)."""
    return {
        name: service
        for name, service in compose_services().items()
        if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def k8s_documents() -> list[dict[str, Any]]:
    """Every object of every manifest in ``deploy/k8s/``."""
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def k8s_workloads() -> dict[str, dict[str, Any]]:
    """The manifests' workloads (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs) by
    ``Kind/name``."""
    kinds = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc
        for doc in k8s_documents()
        if doc["kind"] in kinds
    }


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([a-zA-Z]*)$")
_FACTORS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


def memory_bytes(value: str | int) -> int:
    """A compose (``2g``, ``512m``) or Kubernetes (``2Gi``) memory quantity in bytes."""
    match = _MEMORY.match(str(value).strip())
    if not match or match.group(2).lower() not in _FACTORS:
        raise ValueError(f"{value!r} is not a memory quantity")
    return int(float(match.group(1)) * _FACTORS[match.group(2).lower()])
