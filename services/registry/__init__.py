"""Policy registry: publish verified TorchScript policies, move CURRENT/ROLLOUT atomically.

Two sides (docs/architecture.md, section 7):

* **read** — :class:`RegistryReader`: versions, ``CURRENT``/``ROLLOUT``/``HISTORY``, manifests,
  sha256 verification and loading through the one TorchScript loader (:func:`load_policy`,
  :func:`load_torchscript`). The SDK's policy client uses only this side.
* **write** — :class:`Registry` (a reader too): publish, promote, rollback, discard, set and
  clear the rollout, and announce on ``policy-updates``. The learner and the rollout use it.

It depends on :mod:`schemas` and shared plumbing only, never on the training code.
"""

from services.registry.errors import (
    ManifestError,
    ManifestMismatchError,
    RegistryError,
    TamperedPolicyError,
    VersionNotFoundError,
)
from services.registry.loader import load_policy, load_torchscript
from services.registry.reader import RegistryReader, VersionInfo, parse_version
from services.registry.writer import Registry

__all__ = [
    "ManifestError",
    "ManifestMismatchError",
    "Registry",
    "RegistryError",
    "RegistryReader",
    "TamperedPolicyError",
    "VersionInfo",
    "VersionNotFoundError",
    "load_policy",
    "load_torchscript",
    "parse_version",
]
