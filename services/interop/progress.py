"""A rows-and-rows-per-second progress bar for long imports and scoring runs (rich).

Shown only when stderr is a terminal, so logs and tests get the summary lines alone.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["RowsProgress"]


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s")


class RowsProgress:
    """``with RowsProgress("importing") as advance: advance(n)`` after each batch of n rows."""

    def __init__(
        self, description: str, total: int | None = None, stream: TextIO | None = None
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._description = description
        self._total = total
        self._bar: Progress | None = None
        self.rows = 0

    def __enter__(self) -> RowsProgress:
        if self._stream.isatty():
            columns: list[ProgressColumn] = [TextColumn("{task.description}")]
            if self._total is not None:
                columns += [BarColumn(), MofNCompleteColumn()]
            else:
                columns += [TextColumn("{task.completed:,.0f} rows")]
            self._bar = Progress(
                *columns,
                _RateColumn(),
                TimeElapsedColumn(),
                console=Console(file=self._stream),
                transient=True,
            )
            self._task = self._bar.add_task(self._description, total=self._total)
            self._bar.start()
        return self

    def __call__(self, rows: int) -> None:
        self.rows += rows
        if self._bar is not None:
            self._bar.update(self._task, advance=rows)

    def describe(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=description)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
