"""Building what a :class:`~services.sdk.policy_client.PolicyClient` serves from the registry.

A :class:`ServingState` is immutable: the client publishes a new one by replacing a single
reference, so ``act`` always reads a whole old or a whole new state and never takes a lock for
it. :class:`ServingStateBuilder` makes the next state from ``CURRENT``/``ROLLOUT``, reusing the
models already loaded and refusing versions that fail to load (the last good one keeps serving;
a refused version is not tried again until ``CURRENT`` changes, so a poll never becomes a reload
storm).

Damaged pointers never raise from :meth:`ServingStateBuilder.build` except as
:class:`PolicyUnavailableError` with ``fallback="none"``: a ``ROLLOUT`` that breaks its rules is
"no rollout" (the incumbent serves every new episode), and a ``CURRENT`` that cannot be read or
loaded leaves the last good version serving, or the uniform fallback in a fresh client. Each is
logged once (ERROR) and counted once per occurrence under the version, or under the pointer's
file name (``ROLLOUT``, ``CURRENT``) when no version can be read from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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
        self._pointer_errors: dict[str, str] = {}  # "CURRENT"/"ROLLOUT" -> the reported error

    def build(self, old: ServingState | None) -> ServingState:
        """The state to serve now; PolicyUnavailableError when there is none and no fallback."""
        current, current_error = self._read_pointer("CURRENT")
        rollout, rollout_error = self._read_pointer("ROLLOUT")
        if current != self._seen_current and current_error is None:
            self._broken.clear()  # a new CURRENT: give every version a fresh chance
            self._seen_current = current
        loaded: dict[str, ServedModel] = {}
        if old is not None:
            for model in (old.incumbent, old.candidate):
                if isinstance(model, ServedModel):
                    loaded[model.version] = model

        incumbent: ServedModel | UniformModel | None
        if current_error is not None:
            incumbent = old.incumbent if old is not None else None
            if current_error.new:
                self._refused("CURRENT", "the CURRENT file", current_error.reason, old)
        elif current is None:
            incumbent = old.incumbent if old is not None else None
        else:
            incumbent = loaded.get(current) or self._load(current, old)
            if incumbent is None and old is not None:
                incumbent = old.incumbent  # the last good version keeps serving
        if incumbent is None:
            if self.fallback == "none":
                if current_error is not None:
                    why = f"its CURRENT file cannot be read ({current_error.reason})"
                elif current is not None:
                    why = f"version {current} could not be loaded ({self._broken.get(current)})"
                else:
                    why = "it has no CURRENT version"
                raise PolicyUnavailableError(
                    f"policy {self.registry.policy_name!r} in {self.registry.uri}: {why}, and "
                    "fallback='none' (use fallback='uniform' to serve a uniform policy)"
                )
            incumbent = self.uniform

        if rollout_error is not None and rollout_error.new:
            log.error(
                "policy %s: %s; treated as no rollout, every new episode goes to %s",
                self.registry.policy_name,
                rollout_error.reason,
                incumbent.version,
            )
        candidate: ServedModel | None = None
        fraction = 0.0
        version = rollout.get("version") if rollout else None
        if rollout and version is not None and version != incumbent.version:
            candidate = loaded.get(version) or self._load(version, old)
            if candidate is not None:
                fraction = float(rollout.get("fraction", 0.0))  # in [0, 1]: the reader checks
            if fraction <= 0.0:
                candidate = None
        return ServingState(incumbent, candidate, fraction)

    def _read_pointer(
        self, name: Literal["CURRENT", "ROLLOUT"]
    ) -> tuple[Any, _PointerError | None]:
        """The pointer's value, or its error: counted once (under the file's name) until the
        file reads fine again or fails differently; ``new`` tells the caller to log it."""
        try:
            value = self.registry.current() if name == "CURRENT" else self.registry.rollout()
        except Exception as exc:  # a corrupt pointer: report it, never raise from build
            reason = str(exc) or type(exc).__name__
            new = self._pointer_errors.get(name) != reason
            if new:
                self._pointer_errors[name] = reason
                self.on_load_failure(name)
            return None, _PointerError(reason, new)
        self._pointer_errors.pop(name, None)
        return value, None

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
            self._refused(version, f"version {version}", reason, serving)
            return None

    def _refused(self, version: str, what: str, reason: str, serving: ServingState | None) -> None:
        """Log a refusal: a WARNING while the last good version serves, else an ERROR."""
        if serving is not None:
            log.warning(
                "policy %s %s refused: %s; still serving %s",
                self.registry.policy_name,
                what,
                reason,
                serving.incumbent.version,
            )
            return
        instead = (
            "serving the uniform fallback (fallback='uniform')"
            if self.fallback == "uniform"
            else "refusing to start (fallback='none')"
        )
        log.error(
            "policy %s: CURRENT cannot be served, %s refused: %s; %s",
            self.registry.policy_name,
            what,
            reason,
            instead,
        )


@dataclass(frozen=True)
class _PointerError:
    reason: str
    new: bool  # not reported before: log it
