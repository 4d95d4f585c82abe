"""Policy registry: publish verified TorchScript policies, move CURRENT/ROLLOUT atomically."""

from learner.registry.announce import announce_policy, announcement
from learner.registry.errors import (
    ManifestError,
    RegistryError,
    TamperedPolicyError,
    VersionNotFoundError,
)
from learner.registry.manifest import REQUIRED_KEYS, sha256_hex
from learner.registry.registry import Registry, VersionInfo, parse_version

__all__ = [
    "REQUIRED_KEYS",
    "ManifestError",
    "Registry",
    "RegistryError",
    "TamperedPolicyError",
    "VersionInfo",
    "VersionNotFoundError",
    "announce_policy",
    "announcement",
    "parse_version",
    "sha256_hex",
]
