"""What every stage of one learner run shares: its settings, identity, registry and ledger.

The context is the only mutable record of a run: the ledger fills in as stages finish, and
``stored_version`` names a version this run stored but has not yet logged as published, which
the run must discard if it fails (so a failed run leaves the registry as it was).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from rich.console import Console

from learner.run.ledger import RunLedger
from learner.settings import LearnerSettings
from services.registry import Registry

__all__ = ["RunContext", "StageLines", "utc_now"]

log = logging.getLogger(__name__)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StageLines:
    """Stage lines on stderr (rich) so a person watching a long run knows where it is."""

    def __init__(self, enabled: bool) -> None:
        self.console = Console(stderr=True) if enabled else None

    def __call__(self, message: str) -> None:
        log.info(message)
        if self.console is not None:
            self.console.print(f"[bold cyan]learner[/] {message}")


@dataclass
class RunContext:
    """One run: ``timeline_uri`` is the table it reads (the shared ``tables.timeline_uri``)."""

    settings: LearnerSettings
    timeline_uri: str
    run_id: str
    started_at: dt.datetime
    registry: Registry
    ledger: RunLedger
    say: StageLines
    stored_version: str | None = None
