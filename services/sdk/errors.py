"""Errors the logging SDK raises to its caller.

Each says what happened and which setting or action changes it, so that an application
developer can act on the message alone.
"""

from __future__ import annotations

from schemas.events import EventValidationError

__all__ = [
    "EventValidationError",
    "LoggerClosedError",
    "QueueFullError",
    "SdkError",
    "SpoolFullError",
]


class SdkError(RuntimeError):
    """Base of the SDK's own runtime errors (invalid input raises EventValidationError)."""


class QueueFullError(SdkError):
    """The in-memory queue stayed full for ``block_timeout_s`` (``when_full=block`` or spill)."""


class SpoolFullError(SdkError):
    """Appending to the disk spool would exceed ``spool_max_bytes``."""


class LoggerClosedError(SdkError):
    """An event was logged after ``close()``."""
