"""What the logger could not keep, by reason: the ledger ``flush()`` and ``close()`` report from.

Why a ledger: events are lost on the sender thread (a spool that cannot be written at close, a
segment removed under the spool) or set aside by the spool (entries moved to the quarantine),
and the caller learns it on its own thread, from ``flush()`` (an ``SdkError`` naming what was
lost since the last report) and ``close()`` (a :class:`CloseReport`). ``flush()`` waits for
the events it was given minus these: an event that can no longer be sent is never waited for.

Reasons for lost events (``policyloop_sdk_events_dropped_total{reason}``): ``spool_full`` and
``spool_write_failed`` (at close, neither delivered nor written to the spool), ``spool_missing``
(a segment was removed or cut short under the spool), ``quarantined`` (in an entry moved to the
quarantine). Reasons for quarantined entries (``policyloop_sdk_spool_quarantined_total{reason}``):
``corrupt`` (fails its header or record CRC), ``torn`` (cut short at the end of a segment),
``undecodable`` (a record spooled before the partition count was known that does not decode),
``undeliverable`` (Kafka refuses it for good, e.g. a partition the topic does not have).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "LOSS_REASONS",
    "QUARANTINE_REASONS",
    "CloseReport",
    "LossCounts",
    "LossLedger",
]

LOSS_REASONS = ("spool_full", "spool_write_failed", "spool_missing", "quarantined")
QUARANTINE_REASONS = ("corrupt", "torn", "undecodable", "undeliverable")
_WRITE_SIDE = {"spool_full", "spool_write_failed"}


@dataclass(slots=True)
class LossCounts:
    """A snapshot of the ledger: lost events and quarantined entries, by reason.

    ``unsized_entries``: quarantined entries whose header was too damaged to tell how many
    events they held (they are in ``entries`` but not in ``events``).
    """

    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOSS_REASONS, 0))
    entries: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUARANTINE_REASONS, 0))
    unsized_entries: int = 0

    @property
    def lost_events(self) -> int:
        return sum(self.events.values())

    @property
    def quarantined_entries(self) -> int:
        return sum(self.entries.values())

    def since(self, earlier: LossCounts) -> LossCounts:
        """What was added after ``earlier`` was taken."""
        return LossCounts(
            {k: v - earlier.events.get(k, 0) for k, v in self.events.items()},
            {k: v - earlier.entries.get(k, 0) for k, v in self.entries.items()},
            self.unsized_entries - earlier.unsized_entries,
        )


class LossLedger:
    """Counts kept by the spool and the sender thread, read by the caller's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = LossCounts()
        self._details: dict[str, str] = {}
        #: The quarantine file items went to (``None`` until the first).
        self.quarantine_file: Path | None = None
        #: Incremented on every change, so that a publisher can skip an unchanged ledger.
        self.changes = 0

    def lose(self, reason: str, n_events: int, detail: str) -> None:
        """``n_events`` events are lost for ``reason`` (one of :data:`LOSS_REASONS`)."""
        with self._lock:
            self._counts.events[reason] += n_events
            self._details[reason] = detail
            self.changes += 1

    def quarantine(self, reason: str, n_events: int | None, detail: str, file: Path | None) -> None:
        """An entry went to the quarantine (``file``; ``None`` if even that failed)."""
        with self._lock:
            self._counts.entries[reason] += 1
            if n_events is None:
                self._counts.unsized_entries += 1
            else:
                self._counts.events["quarantined"] += n_events
            self._details["quarantined"] = f"{reason}: {detail}"
            if file is not None:
                self.quarantine_file = file
            self.changes += 1

    @property
    def lost_events(self) -> int:
        """Events that can no longer be sent, all reasons."""
        with self._lock:
            return self._counts.lost_events

    def counts(self) -> LossCounts:
        """A copy of the counts now."""
        with self._lock:
            c = self._counts
            return LossCounts(dict(c.events), dict(c.entries), c.unsized_entries)

    def describe(self, counts: LossCounts, spool_max_bytes: int) -> str:
        """``counts`` (usually a :meth:`LossCounts.since`) in words, for an error or a log."""
        with self._lock:
            details = dict(self._details)
        where = str(self.quarantine_file) if self.quarantine_file else "nowhere (see the log)"
        parts = []
        for reason, n in counts.events.items():
            if not n:
                continue
            if reason == "spool_full":
                parts.append(f"spool_max_bytes={spool_max_bytes}")
            elif reason == "spool_write_failed":
                parts.append(f"{n} because the disk spool could not be written: {details[reason]}")
            elif reason == "spool_missing":
                parts.append(f"{n} in spool data removed under it: {details[reason]}")
            else:
                parts.append(f"{n} in spool entries moved to the quarantine file {where}")
        lost = counts.lost_events
        if lost and {r for r, n in counts.events.items() if n} <= _WRITE_SIDE:
            text = f"{lost} events could be neither delivered nor spooled ({'; '.join(parts)})"
        elif lost:
            text = f"{lost} events can no longer be delivered ({'; '.join(parts)})"
        else:
            text = "no event was lost"
        if counts.unsized_entries:
            text += (
                f"; {counts.unsized_entries} damaged spool entries whose event count is "
                f"unreadable were moved to the quarantine file {where}"
            )
        return text + "; see the log"


@dataclass(frozen=True, slots=True)
class CloseReport:
    """What ``DecisionLogger.close()`` kept and what was lost over the logger's life.

    ``spooled_events``: left in the disk spool ``spool_directory``, sent first by the next
    logger started on the same ``spool_dir``. ``lost``: everything that can no longer be sent,
    with the quarantine file, if any entry went there.
    """

    spooled_events: int
    lost: LossCounts
    spool_directory: str
    quarantine_file: str | None

    @property
    def lost_events(self) -> int:
        return self.lost.lost_events
