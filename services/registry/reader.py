"""The registry's read side: versions, pointers and verified loading (what serving needs).

Layout (docs/architecture.md)::

    <registry>/<policy>/v1/policy.pt        TorchScript, preprocessing included
    <registry>/<policy>/v1/manifest.json    features, normalization, actions, ..., sha256
    <registry>/<policy>/CURRENT             the version served to everyone (text, e.g. "v3")
    <registry>/<policy>/ROLLOUT             JSON {version, fraction, started_at}: a candidate
    <registry>/<policy>/HISTORY             JSON lines: every change of CURRENT, for rollback

A reader never writes, so a serving process (the SDK's policy client) holds only this side.
Loading re-checks ``policy.pt`` against the manifest's sha256 before any byte reaches
``torch.jit.load`` (:mod:`services.registry.loader`), then the manifest's ``feature_names`` and
``actions`` against those the module carries (the sha256 does not cover the manifest).
The write side is :class:`services.registry.writer.Registry`, built on this class.

Storage goes through :mod:`services.registry.storage` so an object-store backend can follow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from schemas.manifest import InvalidManifestError, parse_manifest, sha256_hex
from schemas.names import POLICY_NAME_PATTERN
from services.registry.errors import (
    ManifestError,
    ManifestMismatchError,
    RegistryError,
    TamperedPolicyError,
    VersionNotFoundError,
)
from services.registry.loader import interface_mismatches, load_torchscript
from services.registry.storage import Store, store_for

__all__ = [
    "MANIFEST_FILE",
    "POLICY_FILE",
    "RegistryReader",
    "VersionInfo",
    "is_version_name",
    "parse_version",
]

POLICY_FILE = "policy.pt"
MANIFEST_FILE = "manifest.json"
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")
_POLICY_NAME_RE = re.compile(POLICY_NAME_PATTERN)


def parse_version(version: str) -> int:
    """The number of a version name ``v<N>`` (N ≥ 1); a clear error for anything else."""
    match = _VERSION_RE.match(str(version))
    if not match:
        raise RegistryError(f"version {version!r}: must look like 'v<N>' with N ≥ 1, e.g. 'v3'")
    return int(match.group(1))


def is_version_name(name: str) -> bool:
    """True for a directory name that is a version (``v<N>``, N ≥ 1)."""
    return _VERSION_RE.match(name) is not None


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


class RegistryReader:
    """Read-only view of the versions of one policy (``policy_name``) under ``uri``."""

    def __init__(self, uri: str, policy_name: str) -> None:
        if not _POLICY_NAME_RE.match(policy_name):
            raise RegistryError(
                f"policy_name {policy_name!r}: must be 1-128 characters of letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            )
        self.uri = str(uri)
        self.policy_name = policy_name
        self._store: Store = store_for(uri)
        self._base = policy_name

    def _p(self, *parts: str) -> str:
        return "/".join((self._base, *parts))

    # ----------------------------------------------------------------- pointers
    def versions(self) -> list[str]:
        """Complete version names, oldest first (directories with a manifest)."""
        found = []
        for name in self._store.list_dirs(self._base):
            if is_version_name(name) and self._store.exists(self._p(name, MANIFEST_FILE)):
                found.append(name)
        return sorted(found, key=parse_version)

    def current(self) -> str | None:
        """The version in ``CURRENT``, or None before the first promotion."""
        if not self._store.exists(self._p("CURRENT")):
            return None
        try:
            text = self._store.read_bytes(self._p("CURRENT")).decode().strip()
        except UnicodeDecodeError:
            raise RegistryError(
                f"{self.policy_name}/CURRENT: must be UTF-8 text naming a version, e.g. 'v3'"
            ) from None
        return text or None

    def rollout(self) -> dict[str, Any] | None:
        """``{version, fraction, started_at}`` of the candidate in rollout, or None.

        A file that breaks the rules (not a JSON object, ``version`` not a version name,
        ``fraction`` not a number in [0, 1]) raises :class:`RegistryError` naming the rule.
        """
        if not self._store.exists(self._p("ROLLOUT")):
            return None
        where = f"{self.policy_name}/ROLLOUT"
        try:
            state = json.loads(self._store.read_bytes(self._p("ROLLOUT")))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
            raise RegistryError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(state, dict):
            raise RegistryError(f"{where}: must be a JSON object, got {type(state).__name__}")
        version = state.get("version")
        if version is None:
            return None
        if not isinstance(version, str) or not is_version_name(version):
            raise RegistryError(f"{where}: version={version!r} must look like 'v<N>', e.g. 'v3'")
        fraction = state.get("fraction", 0.0)
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not 0.0 <= fraction <= 1.0
        ):
            raise RegistryError(f"{where}: fraction={fraction!r} must be a number in [0, 1]")
        return state

    def history(self) -> list[dict[str, Any]]:
        """Every recorded change of ``CURRENT``, oldest first."""
        if not self._store.exists(self._p("HISTORY")):
            return []
        lines = self._store.read_bytes(self._p("HISTORY")).decode().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    # ----------------------------------------------------------------- versions
    def manifest(self, version: str) -> dict[str, Any]:
        """The stored manifest of ``version`` (not verified against policy.pt; see verify)."""
        parse_version(version)
        path = self._p(version, MANIFEST_FILE)
        if not self._store.exists(path):
            raise VersionNotFoundError(
                f"policy {self.policy_name!r} has no version {version!r} in {self.uri}"
            )
        try:
            return parse_manifest(self._store.read_bytes(path), f"{self.policy_name}/{version}")
        except InvalidManifestError as exc:
            raise ManifestError(str(exc)) from None

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
        raises :class:`TamperedPolicyError` and is never executed. The manifest is checked too:
        its ``feature_names`` and ``actions`` must equal, in order, those the module carries,
        or :class:`ManifestMismatchError` names the field and both values (an edited manifest
        is refused, never served with its features permuted).
        """
        if version is None:
            version = self.current()
            if version is None:
                raise VersionNotFoundError(
                    f"policy {self.policy_name!r} has no CURRENT version in {self.uri}"
                )
        data, manifest = self.load_bytes(version)
        module = load_torchscript(data)
        problems = interface_mismatches(module, manifest)
        if problems:
            raise ManifestMismatchError(
                f"{self.policy_name}/{version}: {'; '.join(problems)}; the manifest does not "
                "describe this policy.pt, refusing to load it"
            )
        return module, manifest

    # ----------------------------------------------------------------- reports
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
