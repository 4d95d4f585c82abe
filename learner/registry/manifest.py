"""The manifest that travels with every published policy, and its integrity rules.

The manifest is what a reader (a person, the SDK's policy client, the next learner run) needs to
trust and use ``policy.pt`` without the training code: features and their normalization, the
action space, exploration, the data it was trained on, the CPE evidence and the gate's verdict,
and the sha256 that ties it to the exact model bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from learner.registry.errors import ManifestError

__all__ = [
    "REQUIRED_KEYS",
    "dump_manifest",
    "parse_manifest",
    "sha256_hex",
    "stamp_manifest",
    "utc_now_iso",
]

# Keys a manifest must carry; the registry fills the last four itself on publish.
REQUIRED_KEYS = (
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
_CALLER_KEYS = REQUIRED_KEYS[:-4]
_EXPLORATION_KEYS = ("temperature", "epsilon", "min_propensity")
_TRAINED_ON_KEYS = ("table_uri", "table_version", "rows", "episodes")


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``: the identity of a model's bytes."""
    return hashlib.sha256(data).hexdigest()


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _check(manifest: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in manifest]
    if missing:
        raise ManifestError(f"manifest: missing required key(s) {missing}")
    if "feature_names" in keys:
        names = manifest["feature_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ManifestError("manifest.feature_names: must be a list of strings")
    if "actions" in keys:
        actions = manifest["actions"]
        if not isinstance(actions, list) or not actions:
            raise ManifestError("manifest.actions: must be a non-empty list of action texts")
        if not all(isinstance(a, str) for a in actions):
            raise ManifestError("manifest.actions: every action must be text")
        if len(set(actions)) != len(actions):
            raise ManifestError("manifest.actions: actions must be distinct")
    if "exploration" in keys:
        exploration = manifest["exploration"]
        if not isinstance(exploration, Mapping):
            raise ManifestError("manifest.exploration: must be an object")
        for key in _EXPLORATION_KEYS:
            if key not in exploration:
                raise ManifestError(f"manifest.exploration: missing required key {key!r}")
    if "trained_on" in keys:
        trained_on = manifest["trained_on"]
        if not isinstance(trained_on, Mapping):
            raise ManifestError("manifest.trained_on: must be an object")
        for key in _TRAINED_ON_KEYS:
            if key not in trained_on:
                raise ManifestError(f"manifest.trained_on: missing required key {key!r}")
    if "gate" in keys:
        gate = manifest["gate"]
        if not isinstance(gate, Mapping) or "decision" not in gate or "reasons" not in gate:
            raise ManifestError("manifest.gate: must be an object with 'decision' and 'reasons'")


def stamp_manifest(
    manifest: Mapping[str, Any], *, policy_name: str, version: str, policy_bytes: bytes
) -> dict[str, Any]:
    """A copy of the caller's ``manifest`` with the registry's own keys set.

    Raises :class:`ManifestError` naming the key when the caller's part is incomplete, so a
    half-described model never reaches the registry.
    """
    _check(manifest, _CALLER_KEYS)
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
    return json.dumps(_json_safe(manifest), indent=2, sort_keys=True, allow_nan=False).encode()


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """Parse and check a stored manifest; ``where`` names it in errors."""
    try:
        manifest = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: manifest.json must hold a JSON object")
    try:
        _check(manifest, REQUIRED_KEYS)
    except ManifestError as exc:
        raise ManifestError(f"{where}: {exc}") from None
    return manifest
