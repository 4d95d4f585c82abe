"""What a :class:`~services.sessionizer.sessionize.PartitionSessionizer` hands to its worker.

Rows (plain dicts, ``schemas/rows.py``), dead letters for ``<prefix>.dlq`` (``dlq.py`` turns
them into records), per-outcome event counts and state-cap hits for the metrics, and, for batch
mode's last stretch, what still waits for the clock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DeadLetter", "Output", "Waiting"]


@dataclass(frozen=True)
class DeadLetter:
    """One rejected record or event: what to send to ``<prefix>.dlq``.

    ``value`` is the original record value when the whole record is rejected (``index`` None)
    or the record was a single event; for one event of a batch it is that event re-encoded
    alone (MessagePack round-trips what it decoded). ``offset``/``index`` locate the source.
    """

    reason: str
    detail: str
    value: bytes
    offset: int
    index: int | None
    event_type: str = "unknown"


@dataclass
class Output:
    """What processing produced since the last :meth:`PartitionSessionizer.take_output`.

    Each row carries ``_last_event_ts`` (ms): the newest event that went into it, from which
    the worker measures event-to-row latency; ``rows_to_table`` ignores the extra key.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, outcome) -> n
    #: State caps hit (``state_limits.py``): cap name -> events turned away or ids forgotten.
    limits: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Waiting:
    """What still waits in a partition: rows that become final once the clock passes
    ``deadline_ms`` (the latest of their reward windows; -1 when none), and episodes whose end
    is unknown (their last row waits for a successor, the end, or the episode timeout)."""

    rows: int = 0
    deadline_ms: int = -1
    open_episodes: int = 0
