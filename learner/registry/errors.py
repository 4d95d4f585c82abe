"""Errors the registry raises, each naming the version and what is wrong with it."""

from __future__ import annotations

__all__ = ["ManifestError", "RegistryError", "TamperedPolicyError", "VersionNotFoundError"]


class RegistryError(RuntimeError):
    """Base class: something about the policy registry prevents the operation."""


class VersionNotFoundError(RegistryError, KeyError):
    """The version asked for does not exist in the registry (or is not a complete version)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "version not found"


class TamperedPolicyError(RegistryError):
    """``policy.pt`` does not hash to the sha256 recorded in its manifest: it is refused."""


class ManifestError(RegistryError, ValueError):
    """A manifest lacks a required key or has a value that breaks a rule."""
