"""The one place where ``policy.pt`` bytes become a TorchScript module.

Everything that runs a policy — the registry's :meth:`~services.registry.RegistryReader.load`
(and through it the SDK's policy client and the rollout controller), the learner checking what
it exported — loads through here, so the safety rules hold everywhere: bytes only (no pickle of
Python objects), CPU, eval mode, and one clear error for bytes that are not TorchScript.
The registry checks the sha256 *before* calling :func:`load_torchscript`.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "SERVED_INTERFACE",
    "interface_mismatches",
    "load_policy",
    "load_torchscript",
    "torchscript_is_the_contract",
]

#: What a served policy module has besides ``forward(state, possible)`` (docs/architecture.md).
SERVED_INTERFACE = ("probs_dense", "feature_names", "actions")

#: The manifest fields a served module carries too; they must agree, in order.
_CHECKED_FIELDS = ("feature_names", "actions")


@contextlib.contextmanager
def torchscript_is_the_contract() -> Iterator[None]:
    """torch 2.13 deprecates TorchScript; ``policy.pt`` is TorchScript by contract (serving
    without Python code), so its deprecation warnings are silenced here only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated")
        yield


def load_torchscript(data: bytes | bytearray | memoryview) -> Any:
    """The TorchScript module in ``policy.pt`` bytes, on CPU and in eval mode.

    Raises ValueError (naming ``policy.pt``) for empty bytes or bytes that are not TorchScript.
    """
    if not isinstance(data, bytes | bytearray | memoryview) or not len(data):
        raise ValueError("policy.pt: expected non-empty bytes")
    import torch  # imported here: reading the registry's pointers needs no torch

    try:
        with torchscript_is_the_contract():
            # torch.jit.load carries no annotations
            module = torch.jit.load(  # type: ignore[no-untyped-call]
                io.BytesIO(bytes(data)), map_location="cpu"
            )
    except RuntimeError as exc:
        raise ValueError(f"policy.pt: not a TorchScript module ({exc})") from exc
    return module.eval()


def load_policy(data: bytes | bytearray | memoryview) -> Any:
    """:func:`load_torchscript`, checking the module has the served-policy interface."""
    module = load_torchscript(data)
    for name in SERVED_INTERFACE:
        if not hasattr(module, name):
            raise ValueError(f"policy.pt: has no {name!r}; not a policyloop served policy")
    return module


def interface_mismatches(module: Any, manifest: Mapping[str, Any]) -> list[str]:
    """Each manifest field (``feature_names``, ``actions``) that differs from the module's.

    One message per difference, naming the field and both values; empty when they agree. A
    field the module does not carry is not compared (:func:`load_policy` requires both).
    """
    problems = []
    for field in _CHECKED_FIELDS:
        if not hasattr(module, field):
            continue
        carried = [str(v) for v in getattr(module, field)]
        listed = [str(v) for v in manifest.get(field, [])]
        if carried != listed:
            problems.append(f"manifest {field}={listed} but policy.pt carries {field}={carried}")
    return problems
