"""The registry's write side: publish, promote, roll back, discard, set the rollout, announce.

Used by the learner (publish) and the rollout controller (rollout, promote); serving processes
only read (:class:`~services.registry.reader.RegistryReader`).

Crash safety, the property everything else relies on: a version directory appears complete or
not at all (written and fsynced in a temporary directory, then renamed), and ``CURRENT`` is only
swapped — atomically, under a lock — after that. A publisher killed at any point leaves
``CURRENT`` on a complete version whose ``policy.pt`` matches its manifest's sha256.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from schemas.announcement import Announcement
from schemas.manifest import InvalidManifestError, dump_manifest, stamp_manifest, utc_now_iso
from services.kafka_settings import KafkaSettings
from services.registry.announce import announce_policy
from services.registry.errors import ManifestError, RegistryError, VersionNotFoundError
from services.registry.reader import (
    MANIFEST_FILE,
    POLICY_FILE,
    RegistryReader,
    is_version_name,
    parse_version,
)
from services.registry.storage import NameTakenError

__all__ = ["Registry"]

log = logging.getLogger(__name__)

_MAX_PUBLISH_ATTEMPTS = 1000


class Registry(RegistryReader):
    """Versions of one policy (``policy_name``) under ``uri``: every read, and the writes.

    With ``kafka`` settings, every change of CURRENT is announced on ``policy-updates``.
    """

    def __init__(
        self,
        uri: str,
        policy_name: str,
        *,
        kafka: KafkaSettings | None = None,
        announce_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(uri, policy_name)
        self.kafka = kafka
        self.announce_timeout_s = announce_timeout_s
        self.announce_failures = 0

    # ----------------------------------------------------------------- versions
    def publish(
        self, policy_bytes: bytes, manifest: Mapping[str, Any], *, promote: bool = True
    ) -> str:
        """Store a new version and (by default) make it CURRENT; returns its name.

        Steps: claim the next free ``v<N>`` by atomically renaming a complete, fsynced
        directory onto it (a concurrent publisher that lost the race retries with N+1), then
        swap ``CURRENT``, record the change in ``HISTORY`` and announce the version when Kafka
        settings were given. A failed announcement is logged and counted in
        ``announce_failures``; the version stays published. With ``promote=False`` the version
        is only stored (and not announced): :meth:`promote` or :meth:`discard` it later.
        """
        if not isinstance(policy_bytes, bytes | bytearray) or not policy_bytes:
            raise RegistryError("publish: policy_bytes must be the non-empty TorchScript bytes")
        policy_bytes = bytes(policy_bytes)
        existing = [parse_version(v) for v in self._all_version_dirs()]
        number = max(existing, default=0) + 1
        for _ in range(_MAX_PUBLISH_ATTEMPTS):
            version = f"v{number}"
            try:
                stamped = stamp_manifest(
                    manifest,
                    policy_name=self.policy_name,
                    version=version,
                    policy_bytes=policy_bytes,
                )
            except InvalidManifestError as exc:
                raise ManifestError(str(exc)) from None
            try:
                self._store.publish_dir(
                    self._p(version),
                    {POLICY_FILE: policy_bytes, MANIFEST_FILE: dump_manifest(stamped)},
                )
                break
            except NameTakenError:
                number += 1
        else:
            raise RegistryError(
                f"publish: could not claim a version name after {_MAX_PUBLISH_ATTEMPTS} tries"
            )
        log.info("stored %s/%s (sha256 %s)", self.policy_name, version, stamped["sha256"])
        if promote:
            self._swap_current(version, event="publish")
            self._announce(version, stamped["sha256"])
        return version

    def discard(self, version: str) -> None:
        """Delete a stored version that was never promoted (a run that failed after storing).

        Refused for CURRENT, the rollout candidate, and any version that was ever CURRENT:
        those are part of the record and of what rollback may return to.
        """
        parse_version(version)
        if not self._store.exists(self._p(version)):
            raise VersionNotFoundError(f"policy {self.policy_name!r} has no version {version!r}")
        rollout = self.rollout()
        ever_current = {entry.get("version") for entry in self.history()}
        if version == self.current() or (rollout and rollout["version"] == version):
            raise RegistryError(f"discard {version}: it is CURRENT or in rollout")
        if version in ever_current:
            raise RegistryError(f"discard {version}: it was promoted before; it stays on record")
        self._store.remove_dir(self._p(version))
        log.info("discarded unpromoted %s/%s", self.policy_name, version)

    # ----------------------------------------------------------------- CURRENT
    def promote(self, version: str) -> str | None:
        """Point CURRENT at ``version`` after verifying it; returns the previous CURRENT.

        Promoting the version that is in rollout ends the rollout. The new CURRENT is
        announced like a publication.
        """
        manifest = self.verify(version)
        previous = self._swap_current(version, event="promote")
        self._announce(version, manifest["sha256"])
        rollout = self.rollout()
        if rollout and rollout["version"] == version:
            self.clear_rollout()
        return previous

    def rollback(self) -> str:
        """Point CURRENT back at the version promoted before it; returns that version.

        Repeated rollbacks walk further back through ``HISTORY``; a later promote starts a new
        branch. The target is verified first, so a rollback never lands on a tampered file.
        """
        with self._store.lock(self._p(".lock")):
            stack = self._promotion_stack()
            if len(stack) < 2:
                raise RegistryError(
                    f"rollback: policy {self.policy_name!r} has no earlier promoted version "
                    "to roll back to"
                )
            target = stack[-2]
            if target is None:
                raise RegistryError(
                    f"rollback: HISTORY of policy {self.policy_name!r} has an entry without a "
                    "version; fix or remove that line"
                )
            self.verify(target)
            previous = self._write_current(target, event="rollback")
        log.info("rolled back %s from %s to %s", self.policy_name, previous, target)
        return target

    # ----------------------------------------------------------------- ROLLOUT
    def set_rollout(
        self, version: str, fraction: float, *, plan: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send ``fraction`` of episodes to candidate ``version`` (verified first).

        ``plan`` (JSON-serializable) is stored with it: the staged-rollout controller keeps its
        steps and progress there, so any process can resume or report the rollout.
        """
        if not 0.0 <= float(fraction) <= 1.0:
            raise RegistryError(f"rollout fraction {fraction!r}: must be between 0 and 1")
        self.verify(version)
        state: dict[str, Any] = {
            "version": version,
            "fraction": float(fraction),
            "started_at": utc_now_iso(),
        }
        if plan is not None:
            state["plan"] = plan
        self._store.write_atomic(self._p("ROLLOUT"), json.dumps(state).encode())
        return state

    def clear_rollout(self) -> None:
        """End any rollout: all traffic goes to CURRENT."""
        state = {"version": None, "fraction": 0.0, "started_at": utc_now_iso()}
        self._store.write_atomic(self._p("ROLLOUT"), json.dumps(state).encode())

    # ----------------------------------------------------------------- announcing
    def announce_stored(self, version: str) -> None:
        """Announce a stored, verified version that is *not* CURRENT (``promoted: false``), so
        that rollout tooling learns of it without anyone mistaking it for a promotion."""
        manifest = self.verify(version)
        self._announce(version, manifest["sha256"], promoted=False)

    def _announce(self, version: str, sha256: str, *, promoted: bool = True) -> None:
        if self.kafka is None:
            return
        message = Announcement.now(self.policy_name, version, sha256, promoted=promoted)
        if not announce_policy(self.kafka, message, timeout_s=self.announce_timeout_s):
            self.announce_failures += 1

    # ----------------------------------------------------------------- internals
    def _all_version_dirs(self) -> list[str]:
        """Every ``v<N>`` directory, complete or not, so numbers are never reused."""
        return [n for n in self._store.list_dirs(self._base) if is_version_name(n)]

    def _promotion_stack(self) -> list[str | None]:
        """The promoted versions CURRENT would go back through, oldest first (rollbacks pop)."""
        stack: list[str | None] = []
        for entry in self.history():
            version = entry.get("version")
            if entry.get("event") == "rollback":
                while stack and stack[-1] != version:
                    stack.pop()
                if not stack:
                    stack.append(version)
            elif not stack or stack[-1] != version:
                stack.append(version)
        current = self.current()
        if current is not None and (not stack or stack[-1] != current):
            stack.append(current)  # CURRENT edited outside the registry: it is the truth
        return stack

    def _swap_current(self, version: str, *, event: str) -> str | None:
        with self._store.lock(self._p(".lock")):
            return self._write_current(version, event=event)

    def _write_current(self, version: str, *, event: str) -> str | None:
        previous = self.current()
        self._store.write_atomic(self._p("CURRENT"), f"{version}\n".encode())
        record = {"ts": utc_now_iso(), "event": event, "version": version, "previous": previous}
        self._store.append_line(self._p("HISTORY"), json.dumps(record).encode())
        return previous
