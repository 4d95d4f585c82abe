"""Building what a :class:`~services.sdk.policy_client.PolicyClient` serves from the registry.

A :class:`ServingState` is immutable: the client publishes a new one by replacing a single
reference, so ``act`` always reads a whole old or a whole new state and never takes a lock for
it. :class:`ServingStateBuilder` makes the next state from ``CURRENT``/``ROLLOUT``, reusing the
models already loaded and refusing versions that fail to load (the last good one keeps serving;
a refused version is not tried again until ``CURRENT`` changes, so a poll never becomes a reload
storm).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from services.registry.reader import RegistryReader
from services.sdk.policy_model import ServedModel, UniformModel

__all__ = ["PolicyUnavailableError", "ServingState", "ServingStateBuilder"]

# The refusals are the client's to report: its users configure that logger.
log = logging.getLogger("services.sdk.policy_client")


class PolicyUnavailableError(RuntimeError):
    """No version can be served (no CURRENT, or it fails to load) and ``fallback="none"``."""


@dataclass(frozen=True)
class ServingState:
    """The immutable serving state ``act`` reads through one reference."""

    incumbent: ServedModel | UniformModel
    candidate: ServedModel | None
    fraction: float  # share of new episodes routed to the candidate

    @property
    def key(self) -> tuple[str, str | None, float]:
        """What tells two states apart: the versions served and the candidate's share."""
        candidate = self.candidate.version if self.candidate is not None else None
        return (self.incumbent.version, candidate, self.fraction)


class ServingStateBuilder:
    """Builds the next :class:`ServingState` from the registry (see the module doc).

    ``on_load_failure(version)`` is called once per refused load, for the client's metrics.
    Not thread-safe: the client calls :meth:`build` under its refresh lock.
    """

    def __init__(
        self,
        registry: RegistryReader,
        *,
        fallback: Literal["uniform", "none"],
        on_load_failure: Callable[[str], None],
    ) -> None:
        self.registry = registry
        self.fallback = fallback
        self.on_load_failure = on_load_failure
        self.uniform = UniformModel()
        self._broken: dict[str, str] = {}  # version -> reason, until CURRENT changes
        self._seen_current: str | None = None

    def build(self, old: ServingState | None) -> ServingState:
        """The state to serve now; PolicyUnavailableError when there is none and no fallback."""
        current = self.registry.current()
        rollout = self.registry.rollout()
        if current != self._seen_current:
            self._broken.clear()  # a new CURRENT: give every version a fresh chance
            self._seen_current = current
        loaded: dict[str, ServedModel] = {}
        if old is not None:
            for model in (old.incumbent, old.candidate):
                if isinstance(model, ServedModel):
                    loaded[model.version] = model

        incumbent: ServedModel | UniformModel | None
        if current is None:
            incumbent = old.incumbent if old is not None else None
        else:
            incumbent = loaded.get(current) or self._load(current, old)
            if incumbent is None and old is not None:
                incumbent = old.incumbent  # the last good version keeps serving
        if incumbent is None:
            if self.fallback == "none":
                why = (
                    f"version {current} could not be loaded ({self._broken.get(current)})"
                    if current is not None
                    else "it has no CURRENT version"
                )
                raise PolicyUnavailableError(
                    f"policy {self.registry.policy_name!r} in {self.registry.uri}: {why}, and "
                    "fallback='none' (use fallback='uniform' to serve a uniform policy)"
                )
            incumbent = self.uniform

        candidate: ServedModel | None = None
        fraction = 0.0
        version = rollout.get("version") if rollout else None
        if rollout and version is not None and version != incumbent.version:
            candidate = loaded.get(version) or self._load(version, old)
            if candidate is not None:
                fraction = min(max(float(rollout.get("fraction", 0.0)), 0.0), 1.0)
            if fraction <= 0.0:
                candidate = None
        return ServingState(incumbent, candidate, fraction)

    def _load(self, version: str, serving: ServingState | None) -> ServedModel | None:
        """The loaded version, or None (recorded, logged once, counted) when it fails."""
        if version in self._broken:
            return None
        try:
            module, manifest = self.registry.load(version)
            for parameter in module.parameters():
                parameter.requires_grad_(False)  # no autograd bookkeeping on the act path
            return ServedModel(version, module, manifest)
        except Exception as exc:  # any failure: refuse the version, keep the last good one
            reason = str(exc) or type(exc).__name__
            self._broken[version] = reason
            self.on_load_failure(version)
            log.warning(
                "policy %s version %s refused: %s; still serving %s",
                self.registry.policy_name,
                version,
                reason,
                serving.incumbent.version if serving is not None else "nothing yet",
            )
            return None
