"""``manifest.json``: what travels with every published ``policy.pt``, and its rules.

The manifest is what a reader (a person, the SDK's policy client, the next learner run) needs to
trust and use ``policy.pt`` without the training code: features and their normalization, the
action space, exploration, the data it was trained on, the CPE evidence and the gate's verdict,
and the sha256 that ties it to the exact model bytes.

The learner writes it, the registry stamps, stores and checks it, and the SDK reads it; all three
use the definitions here. Pure functions only: no I/O, nothing of ours imported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "CALLER_KEYS",
    "REQUIRED_KEYS",
    "InvalidManifestError",
    "ServingInterface",
    "check_manifest",
    "dump_manifest",
    "parse_manifest",
    "serving_interface",
    "sha256_hex",
    "stamp_manifest",
    "utc_now_iso",
]

#: Keys a stored manifest must carry; the registry fills the last four itself on publish.
REQUIRED_KEYS: tuple[str, ...] = (
    "feature_names",
    "normalization",
    "actions",
    "exploration",
    "algorithm",
    "trained_on",
    "cpe",
    "gate",
    "policy_name",
    "version",
    "created_at",
    "sha256",
)
#: Keys the publisher must provide (the rest are stamped by the registry).
CALLER_KEYS: tuple[str, ...] = REQUIRED_KEYS[:-4]
_EXPLORATION_KEYS = ("temperature", "epsilon", "min_propensity")
_TRAINED_ON_KEYS = ("table_uri", "table_version", "rows", "episodes")


class InvalidManifestError(ValueError):
    """A manifest lacks a required key or has a value that breaks a rule."""


class ServingInterface(NamedTuple):
    """What serving needs from a manifest: the model's inputs and outputs, in order."""

    feature_names: list[str]
    actions: list[str]


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``: the identity of a model's bytes."""
    return hashlib.sha256(data).hexdigest()


def utc_now_iso() -> str:
    """Now, as the manifest's ``created_at`` (ISO 8601, UTC, milliseconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def check_manifest(manifest: Mapping[str, Any], keys: tuple[str, ...] = REQUIRED_KEYS) -> None:
    """Raise :class:`InvalidManifestError` naming the first broken rule among ``keys``."""
    missing = [k for k in keys if k not in manifest]
    if missing:
        raise InvalidManifestError(f"manifest: missing required key(s) {missing}")
    if "feature_names" in keys:
        names = manifest["feature_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidManifestError("manifest.feature_names: must be a list of strings")
    if "actions" in keys:
        actions = manifest["actions"]
        if not isinstance(actions, list) or not actions:
            raise InvalidManifestError("manifest.actions: must be a non-empty list of action texts")
        if not all(isinstance(a, str) for a in actions):
            raise InvalidManifestError("manifest.actions: every action must be text")
        if len(set(actions)) != len(actions):
            raise InvalidManifestError("manifest.actions: actions must be distinct")
    if "exploration" in keys:
        _check_object(manifest["exploration"], "exploration", _EXPLORATION_KEYS)
    if "trained_on" in keys:
        _check_object(manifest["trained_on"], "trained_on", _TRAINED_ON_KEYS)
    if "gate" in keys:
        gate = manifest["gate"]
        if not isinstance(gate, Mapping) or "decision" not in gate or "reasons" not in gate:
            raise InvalidManifestError(
                "manifest.gate: must be an object with 'decision' and 'reasons'"
            )


def _check_object(value: Any, name: str, keys: tuple[str, ...]) -> None:
    if not isinstance(value, Mapping):
        raise InvalidManifestError(f"manifest.{name}: must be an object")
    for key in keys:
        if key not in value:
            raise InvalidManifestError(f"manifest.{name}: missing required key {key!r}")


def stamp_manifest(
    manifest: Mapping[str, Any], *, policy_name: str, version: str, policy_bytes: bytes
) -> dict[str, Any]:
    """A copy of the caller's ``manifest`` with the registry's own keys set.

    Raises :class:`InvalidManifestError` naming the key when the caller's part is incomplete, so
    a half-described model never reaches the registry.
    """
    check_manifest(manifest, CALLER_KEYS)
    stamped = dict(manifest)
    stamped["policy_name"] = policy_name
    stamped["version"] = version
    stamped.setdefault("created_at", utc_now_iso())
    stamped["sha256"] = sha256_hex(policy_bytes)
    return stamped


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null so every JSON reader can parse the manifest."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def dump_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes of ``manifest.json`` (sorted keys; non-finite numbers as null)."""
    return json.dumps(_json_safe(manifest), indent=2, sort_keys=True, allow_nan=False).encode()


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """Parse and check a stored manifest; ``where`` names it in errors."""
    try:
        manifest = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidManifestError(f"{where}: manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise InvalidManifestError(f"{where}: manifest.json must hold a JSON object")
    try:
        check_manifest(manifest, REQUIRED_KEYS)
    except InvalidManifestError as exc:
        raise InvalidManifestError(f"{where}: {exc}") from None
    return manifest


def serving_interface(manifest: Mapping[str, Any]) -> ServingInterface:
    """The feature names and actions of a (checked) manifest, as fresh lists of text."""
    return ServingInterface(
        [str(n) for n in manifest["feature_names"]], [str(a) for a in manifest["actions"]]
    )
