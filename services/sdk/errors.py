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
    "queue_full_error",
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


def queue_full_error(
    max_queue: int,
    block_timeout_s: float,
    event_type: str,
    bootstrap_servers: str,
    spool_full: bool,
    spool_error: str | None,
) -> QueueFullError:
    """The error of an event refused because the queue stayed full, with the setting (or the
    disk problem) to look at: the spool full, the spool refusing writes, or neither."""
    if spool_full:
        hint = "The disk spool is full too: raise sdk.spool_max_bytes."
    elif spool_error is not None:
        hint = (
            f"The disk spool refuses writes too ({spool_error}): free disk "
            "space or point sdk.spool_dir at a writable disk."
        )
    else:
        hint = (
            "Raise sdk.queue_max_events or sdk.block_timeout_s, or set "
            "sdk.when_full=spill to overflow to disk."
        )
    return QueueFullError(
        f"the SDK queue stayed full (queue_max_events={max_queue}) for "
        f"block_timeout_s={block_timeout_s:g}s and the {event_type} "
        f"event was not logged; the broker at {bootstrap_servers} is "
        f"slow or unreachable. {hint}"
    )
