"""Batch mode's last stretch: say what ``--until-idle`` is waiting for, and for how long.

Why a wait at all: a row is final only once its reward window has closed (a reward may still
come), and once a caught-up partition is quiet, the windows of rows whose successor or end is
known close on wall time (``watermark.py``, quiet time). So a batch run that stops the moment
the topic goes quiet leaves every recently ended episode in its checkpoint and writes nothing
(the first thing a new user would see). Instead the worker waits, at most one reward window
after the last event, for the rows that can become final; this module tells the person
watching: one line when the wait starts, and a progress bar when stderr is a terminal.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

__all__ = ["DrainProgress", "DrainStatus"]

log = logging.getLogger("policyloop.sessionizer")


@dataclass(frozen=True)
class DrainStatus:
    """Rows waiting for their reward window, the seconds until the last window closes, and
    the episodes whose end is unknown (they stay in the checkpoint)."""

    rows: int
    seconds_left: float
    open_episodes: int


class DrainProgress:
    """Reports one wait: a line when it starts, then a bar on a terminal (nothing else)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._total = 0.0
        self.started = False

    def update(self, status: DrainStatus) -> None:
        """Show ``status``; the first call of a wait prints its one line."""
        if not self.started:
            self.started = True
            self._total = max(status.seconds_left, 0.1)
            log.info(
                "no event for the idle period; waiting %.0f s for the reward windows of %d rows "
                "of ended episodes (%d episodes not ended stay open)",
                status.seconds_left,
                status.rows,
                status.open_episodes,
            )
            if self._stream.isatty():
                self._bar = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TimeRemainingColumn(),
                    console=Console(file=self._stream),
                    transient=True,
                )
                self._task = self._bar.add_task("", total=self._total)
                self._bar.start()
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                completed=max(0.0, self._total - status.seconds_left),
                description=f"reward windows: {status.rows} rows waiting",
            )

    def close(self) -> None:
        """End the wait (it finished, or an event arrived and the worker is busy again)."""
        if self._bar is not None:
            self._bar.stop()
        self._bar, self._task, self.started = None, None, False
