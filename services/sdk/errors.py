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
    "SpoolReadError",
    "SpoolWriteError",
]


class SdkError(RuntimeError):
    """Base of the SDK's own runtime errors (invalid input raises EventValidationError)."""


class QueueFullError(SdkError):
    """The in-memory queue stayed full for ``block_timeout_s`` (``when_full=block`` or spill)."""


class SpoolFullError(SdkError):
    """Appending to the disk spool would exceed ``spool_max_bytes``."""


class LoggerClosedError(SdkError):
    """An event was logged after ``close()``."""


class SpoolWriteError(SdkError):
    """Writing to the disk spool failed (disk full, file-size limit, I/O error, path removed).

    Nothing was half-written: the segment is cut back to its last whole entry, and the records
    stay in memory until a later write succeeds.
    """


class SpoolReadError(SdkError):
    """Reading the disk spool failed for a reason other than damaged or removed data.

    The sender pauses its replay and tries again later; nothing is skipped.
    """
