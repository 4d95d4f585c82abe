"""The message on ``<prefix>.policy-updates`` that announces a registry version.

One JSON object per message, keyed by the policy name::

    {"policy": "cartpole", "version": "v3", "sha256": "<hex>", "ts": 1700000000000,
     "promoted": true}

``ts`` is milliseconds since the epoch (UTC). ``promoted`` is false for a version that was stored
and verified but left for a staged rollout: listeners must not treat it as the new CURRENT.

The writer (the registry) and the readers (the SDK's policy client, other systems) build and
parse it here so that both sides agree on one definition. The message is only a hint — the
registry stays the source of truth — so readers drop what does not parse.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Announcement", "AnnouncementError", "parse_announcement"]


class AnnouncementError(ValueError):
    """Bytes on ``policy-updates`` that are not a well-formed announcement."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """One announced version (see the module doc for the wire form)."""

    policy: str
    version: str
    sha256: str
    ts_ms: int
    promoted: bool = True

    @classmethod
    def now(cls, policy: str, version: str, sha256: str, *, promoted: bool = True) -> Announcement:
        """An announcement stamped with the current time."""
        return cls(policy, version, sha256, int(time.time() * 1000), promoted)

    def to_json(self) -> dict[str, Any]:
        """The message body as a JSON object."""
        return {
            "policy": self.policy,
            "version": self.version,
            "sha256": self.sha256,
            "ts": self.ts_ms,
            "promoted": self.promoted,
        }

    def key(self) -> bytes:
        """The Kafka message key: the policy name, so one policy's updates stay in order."""
        return self.policy.encode()

    def encode(self) -> bytes:
        """The Kafka message value."""
        return json.dumps(self.to_json(), sort_keys=True).encode()


def parse_announcement(value: bytes | None) -> Announcement:
    """The announcement in a message value; :class:`AnnouncementError` saying why if it is not
    one (not JSON, not an object, or a field missing or of the wrong type)."""
    try:
        message = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        raise AnnouncementError("not JSON") from None
    if not isinstance(message, dict):
        raise AnnouncementError("not a JSON object")
    for field in ("policy", "version", "sha256"):
        if not isinstance(message.get(field), str):
            raise AnnouncementError(f"{field!r}: must be text")
    ts = message.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise AnnouncementError("'ts': must be an integer (ms since the epoch)")
    promoted = message.get("promoted", True)
    if not isinstance(promoted, bool):
        raise AnnouncementError("'promoted': must be true or false")
    return Announcement(message["policy"], message["version"], message["sha256"], ts, promoted)
