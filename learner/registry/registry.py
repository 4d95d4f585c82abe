"""The policy registry: versioned, verified TorchScript policies and the pointers to them.

Layout (docs/architecture.md)::

    <registry>/<policy>/v1/policy.pt        TorchScript, preprocessing included
    <registry>/<policy>/v1/manifest.json    features, normalization, actions, ..., sha256
    <registry>/<policy>/CURRENT             the version served to everyone (text, e.g. "v3")
    <registry>/<policy>/ROLLOUT             JSON {version, fraction, started_at}: a candidate
    <registry>/<policy>/HISTORY             JSON lines: every change of CURRENT, for rollback

Crash safety, the property everything else relies on: a version directory appears complete or
not at all (written and fsynced in a temporary directory, then renamed), and ``CURRENT`` is only
swapped — atomically — after that. A publisher killed at any point leaves ``CURRENT`` on a
complete version whose ``policy.pt`` matches its manifest's sha256. Loading re-checks that
sha256 before any byte reaches ``torch.jit.load``.

Storage goes through :mod:`learner.registry.storage` so an object-store backend can follow.
"""

from __future__ import annotations

import io
import json
import logging
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from learner.registry.announce import announce_policy, announcement
from learner.registry.errors import (
    ManifestError,
    RegistryError,
    TamperedPolicyError,
    VersionNotFoundError,
)
from learner.registry.manifest import (
    dump_manifest,
    parse_manifest,
    sha256_hex,
    stamp_manifest,
    utc_now_iso,
)
from learner.registry.storage import NameTakenError, Store, store_for
from services.kafka_settings import KafkaSettings

__all__ = ["MANIFEST_FILE", "POLICY_FILE", "Registry", "VersionInfo", "parse_version"]

log = logging.getLogger(__name__)

POLICY_FILE = "policy.pt"
MANIFEST_FILE = "manifest.json"
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")
_POLICY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MAX_PUBLISH_ATTEMPTS = 1000


def parse_version(version: str) -> int:
    """The number of a version name ``v<N>`` (N ≥ 1); a clear error for anything else."""
    match = _VERSION_RE.match(str(version))
    if not match:
        raise RegistryError(f"version {version!r}: must look like 'v<N>' with N ≥ 1, e.g. 'v3'")
    return int(match.group(1))


@dataclass(frozen=True)
class VersionInfo:
    """One row of ``registry list``."""

    version: str
    created_at: str | None
    algorithm: str | None
    gate_decision: str | None
    sha256: str | None
    is_current: bool
    in_rollout: bool
    verified: bool | None  # None when not checked


class Registry:
    """Versions of one policy (``policy_name``) under ``uri``; see the module docstring."""

    def __init__(
        self,
        uri: str,
        policy_name: str,
        *,
        kafka: KafkaSettings | None = None,
        announce_timeout_s: float = 10.0,
    ) -> None:
        if not _POLICY_NAME_RE.match(policy_name):
            raise RegistryError(
                f"policy_name {policy_name!r}: must be 1-128 characters of letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            )
        self.uri = str(uri)
        self.policy_name = policy_name
        self.kafka = kafka
        self.announce_timeout_s = announce_timeout_s
        self.announce_failures = 0
        self._store: Store = store_for(uri)
        self._base = policy_name

    # ----------------------------------------------------------------- paths
    def _p(self, *parts: str) -> str:
        return "/".join((self._base, *parts))

    # ----------------------------------------------------------------- reading
    def versions(self) -> list[str]:
        """Complete version names, oldest first (directories with a manifest)."""
        found = []
        for name in self._store.list_dirs(self._base):
            if _VERSION_RE.match(name) and self._store.exists(self._p(name, MANIFEST_FILE)):
                found.append(name)
        return sorted(found, key=parse_version)

    def current(self) -> str | None:
        """The version in ``CURRENT``, or None before the first promotion."""
        if not self._store.exists(self._p("CURRENT")):
            return None
        text = self._store.read_bytes(self._p("CURRENT")).decode().strip()
        return text or None

    def rollout(self) -> dict[str, Any] | None:
        """``{version, fraction, started_at}`` of the candidate in rollout, or None."""
        if not self._store.exists(self._p("ROLLOUT")):
            return None
        state = json.loads(self._store.read_bytes(self._p("ROLLOUT")))
        if not state or state.get("version") is None:
            return None
        return state

    def history(self) -> list[dict[str, Any]]:
        """Every recorded change of ``CURRENT``, oldest first."""
        if not self._store.exists(self._p("HISTORY")):
            return []
        lines = self._store.read_bytes(self._p("HISTORY")).decode().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def manifest(self, version: str) -> dict[str, Any]:
        """The stored manifest of ``version`` (not verified against policy.pt; see verify)."""
        parse_version(version)
        path = self._p(version, MANIFEST_FILE)
        if not self._store.exists(path):
            raise VersionNotFoundError(
                f"policy {self.policy_name!r} has no version {version!r} in {self.uri}"
            )
        return parse_manifest(self._store.read_bytes(path), f"{self.policy_name}/{version}")

    def load_bytes(self, version: str) -> tuple[bytes, dict[str, Any]]:
        """``policy.pt`` bytes and manifest of ``version``, after checking the sha256."""
        manifest = self.manifest(version)
        path = self._p(version, POLICY_FILE)
        if not self._store.exists(path):
            raise TamperedPolicyError(
                f"{self.policy_name}/{version}: {POLICY_FILE} is missing; refusing to load it"
            )
        data = self._store.read_bytes(path)
        actual = sha256_hex(data)
        if actual != manifest["sha256"]:
            raise TamperedPolicyError(
                f"{self.policy_name}/{version}: {POLICY_FILE} has sha256 {actual}, but the "
                f"manifest records {manifest['sha256']}; the file was altered or corrupted, "
                "refusing to load it"
            )
        return data, manifest

    def verify(self, version: str) -> dict[str, Any]:
        """The manifest of ``version`` if its policy.pt is intact; TamperedPolicyError if not."""
        return self.load_bytes(version)[1]

    def load(self, version: str | None = None) -> tuple[Any, dict[str, Any]]:
        """The served TorchScript module and manifest of ``version`` (default: CURRENT).

        The sha256 is verified before ``torch.jit.load`` sees a byte, so a tampered file
        raises :class:`TamperedPolicyError` and is never executed.
        """
        if version is None:
            version = self.current()
            if version is None:
                raise VersionNotFoundError(
                    f"policy {self.policy_name!r} has no CURRENT version in {self.uri}"
                )
        data, manifest = self.load_bytes(version)
        import torch

        with warnings.catch_warnings():
            # TorchScript is the contract of policy.pt; torch 2.13 merely prefers torch.export.
            warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated")
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        module.eval()
        return module, manifest

    def list_versions(self, *, verify: bool = False) -> list[VersionInfo]:
        """All complete versions with their status; ``verify`` re-hashes every policy.pt."""
        current = self.current()
        rollout = self.rollout()
        rollout_version = rollout["version"] if rollout else None
        rows = []
        for version in self.versions():
            try:
                manifest = self.manifest(version)
            except ManifestError:
                rows.append(
                    VersionInfo(version, None, None, None, None, version == current, False, False)
                )
                continue
            verified: bool | None = None
            if verify:
                try:
                    self.verify(version)
                    verified = True
                except TamperedPolicyError:
                    verified = False
            rows.append(
                VersionInfo(
                    version=version,
                    created_at=manifest.get("created_at"),
                    algorithm=manifest.get("algorithm"),
                    gate_decision=(manifest.get("gate") or {}).get("decision"),
                    sha256=manifest.get("sha256"),
                    is_current=version == current,
                    in_rollout=version == rollout_version,
                    verified=verified,
                )
            )
        return rows

    def show(self, version: str | None = None) -> dict[str, Any]:
        """Manifest of ``version`` (default CURRENT) plus its status and integrity check."""
        version = version or self.current()
        if version is None:
            raise VersionNotFoundError(
                f"policy {self.policy_name!r} has no CURRENT version in {self.uri}"
            )
        manifest = self.manifest(version)
        try:
            self.verify(version)
            integrity = "ok"
        except TamperedPolicyError as exc:
            integrity = str(exc)
        rollout = self.rollout()
        return {
            "manifest": manifest,
            "is_current": version == self.current(),
            "in_rollout": bool(rollout and rollout["version"] == version),
            "integrity": integrity,
        }

    # ----------------------------------------------------------------- writing
    def publish(
        self, policy_bytes: bytes, manifest: Mapping[str, Any], *, promote: bool = True
    ) -> str:
        """Store a new version and (by default) make it CURRENT; returns its name.

        Steps: claim the next free ``v<N>`` by atomically renaming a complete, fsynced
        directory onto it (a concurrent publisher that lost the race retries with N+1), then
        swap ``CURRENT``, record the change in ``HISTORY`` and announce the version when Kafka
        settings were given. A failed announcement is logged and counted in
        ``announce_failures``; the version stays published. With ``promote=False`` the version
        is only stored (and not announced): :meth:`promote` or :meth:`discard` it later.
        """
        if not isinstance(policy_bytes, bytes | bytearray) or not policy_bytes:
            raise RegistryError("publish: policy_bytes must be the non-empty TorchScript bytes")
        policy_bytes = bytes(policy_bytes)
        existing = [parse_version(v) for v in self._all_version_dirs()]
        number = max(existing, default=0) + 1
        for _ in range(_MAX_PUBLISH_ATTEMPTS):
            version = f"v{number}"
            stamped = stamp_manifest(
                manifest, policy_name=self.policy_name, version=version, policy_bytes=policy_bytes
            )
            try:
                self._store.publish_dir(
                    self._p(version),
                    {POLICY_FILE: policy_bytes, MANIFEST_FILE: dump_manifest(stamped)},
                )
                break
            except NameTakenError:
                number += 1
        else:
            raise RegistryError(
                f"publish: could not claim a version name after {_MAX_PUBLISH_ATTEMPTS} tries"
            )
        log.info("stored %s/%s (sha256 %s)", self.policy_name, version, stamped["sha256"])
        if promote:
            self._swap_current(version, event="publish")
            self._announce(version, stamped["sha256"])
        return version

    def promote(self, version: str) -> str | None:
        """Point CURRENT at ``version`` after verifying it; returns the previous CURRENT.

        Promoting the version that is in rollout ends the rollout. The new CURRENT is
        announced like a publication.
        """
        manifest = self.verify(version)
        previous = self._swap_current(version, event="promote")
        self._announce(version, manifest["sha256"])
        rollout = self.rollout()
        if rollout and rollout["version"] == version:
            self.clear_rollout()
        return previous

    def rollback(self) -> str:
        """Point CURRENT back at the version promoted before it; returns that version.

        Repeated rollbacks walk further back through ``HISTORY``; a later promote starts a new
        branch. The target is verified first, so a rollback never lands on a tampered file.
        """
        with self._store.lock(self._p(".lock")):
            stack = self._promotion_stack()
            if len(stack) < 2:
                raise RegistryError(
                    f"rollback: policy {self.policy_name!r} has no earlier promoted version "
                    "to roll back to"
                )
            target = stack[-2]
            self.verify(target)
            previous = self._write_current(target, event="rollback")
        log.info("rolled back %s from %s to %s", self.policy_name, previous, target)
        return target

    def set_rollout(
        self, version: str, fraction: float, *, plan: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send ``fraction`` of episodes to candidate ``version`` (verified first).

        ``plan`` (JSON-serializable) is stored with it: the staged-rollout controller keeps its
        steps and progress there, so any process can resume or report the rollout.
        """
        if not 0.0 <= float(fraction) <= 1.0:
            raise RegistryError(f"rollout fraction {fraction!r}: must be between 0 and 1")
        self.verify(version)
        state = {"version": version, "fraction": float(fraction), "started_at": utc_now_iso()}
        if plan is not None:
            state["plan"] = plan
        self._store.write_atomic(self._p("ROLLOUT"), json.dumps(state).encode())
        return state

    def clear_rollout(self) -> None:
        """End any rollout: all traffic goes to CURRENT."""
        state = {"version": None, "fraction": 0.0, "started_at": utc_now_iso()}
        self._store.write_atomic(self._p("ROLLOUT"), json.dumps(state).encode())

    def discard(self, version: str) -> None:
        """Delete a stored version that was never promoted (a run that failed after storing).

        Refused for CURRENT, the rollout candidate, and any version that was ever CURRENT:
        those are part of the record and of what rollback may return to.
        """
        parse_version(version)
        if not self._store.exists(self._p(version)):
            raise VersionNotFoundError(f"policy {self.policy_name!r} has no version {version!r}")
        rollout = self.rollout()
        ever_current = {entry.get("version") for entry in self.history()}
        if version == self.current() or (rollout and rollout["version"] == version):
            raise RegistryError(f"discard {version}: it is CURRENT or in rollout")
        if version in ever_current:
            raise RegistryError(f"discard {version}: it was promoted before; it stays on record")
        self._store.remove_dir(self._p(version))
        log.info("discarded unpromoted %s/%s", self.policy_name, version)

    # ----------------------------------------------------------------- internals
    def announce_stored(self, version: str) -> None:
        """Announce a stored, verified version that is *not* CURRENT (``promoted: false``), so
        that rollout tooling learns of it without anyone mistaking it for a promotion."""
        manifest = self.verify(version)
        self._announce(version, manifest["sha256"], promoted=False)

    def _announce(self, version: str, sha256: str, *, promoted: bool = True) -> None:
        if self.kafka is None:
            return
        message = announcement(self.policy_name, version, sha256, promoted=promoted)
        if not announce_policy(self.kafka, message, timeout_s=self.announce_timeout_s):
            self.announce_failures += 1

    def _all_version_dirs(self) -> list[str]:
        """Every ``v<N>`` directory, complete or not, so numbers are never reused."""
        return [n for n in self._store.list_dirs(self._base) if _VERSION_RE.match(n)]

    def _promotion_stack(self) -> list[str]:
        stack: list[str] = []
        for entry in self.history():
            version = entry.get("version")
            if entry.get("event") == "rollback":
                while stack and stack[-1] != version:
                    stack.pop()
                if not stack:
                    stack.append(version)
            elif not stack or stack[-1] != version:
                stack.append(version)
        current = self.current()
        if current is not None and (not stack or stack[-1] != current):
            stack.append(current)  # CURRENT edited outside the registry: it is the truth
        return stack

    def _swap_current(self, version: str, *, event: str) -> str | None:
        with self._store.lock(self._p(".lock")):
            return self._write_current(version, event=event)

    def _write_current(self, version: str, *, event: str) -> str | None:
        previous = self.current()
        self._store.write_atomic(self._p("CURRENT"), f"{version}\n".encode())
        record = {"ts": utc_now_iso(), "event": event, "version": version, "previous": previous}
        self._store.append_line(self._p("HISTORY"), json.dumps(record).encode())
        return previous
