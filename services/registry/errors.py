"""Errors the registry raises, each naming the version and what is wrong with it.

All derive from :class:`RegistryError`, so a command line can turn any of them into one clear
line without knowing the registry's internals.
"""

from __future__ import annotations

from schemas.manifest import InvalidManifestError

__all__ = [
    "ManifestError",
    "ManifestMismatchError",
    "RegistryError",
    "TamperedPolicyError",
    "VersionNotFoundError",
]


class RegistryError(RuntimeError):
    """Base class: something about the policy registry prevents the operation."""


class VersionNotFoundError(RegistryError, KeyError):
    """The version asked for does not exist in the registry (or is not a complete version)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "version not found"


class TamperedPolicyError(RegistryError):
    """``policy.pt`` does not hash to the sha256 recorded in its manifest: it is refused."""


class ManifestMismatchError(TamperedPolicyError):
    """The manifest's ``feature_names`` or ``actions`` differ from those ``policy.pt`` carries.

    The sha256 covers ``policy.pt`` only; this check covers the manifest, so an edited manifest
    (say, permuted features) is refused rather than served with its features in the wrong order.
    """


class ManifestError(RegistryError, InvalidManifestError):
    """A manifest lacks a required key or has a value that breaks a rule.

    The rules are the manifest schema's (:mod:`schemas.manifest`); the registry re-raises the
    schema's :class:`~schemas.manifest.InvalidManifestError` as this, so that callers catching
    :class:`RegistryError` see it too.
    """
