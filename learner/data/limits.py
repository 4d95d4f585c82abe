"""How wide and in how large batches the learner densifies the timeline, and the error past a cap.

Every distinct ``state`` key becomes a float32 column of every row (twice: ``state`` and
``next_state``), every distinct action a column of the masks and of ``logged_probs``. A timeline
whose state maps carry identifiers or free text (thousands of distinct keys) would otherwise be
densified into a matrix that no machine holds, and the process would be killed for memory with
no word of why. The caps turn that into an error naming the table, the column and the count,
raised while the keys are collected, before any dense array is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_ACTIONS",
    "DEFAULT_MAX_STATE_FEATURES",
    "DEFAULT_READ_BATCH_ROWS",
    "ReadLimits",
    "TimelineTooWide",
]

#: 1,024 features cost 8 KiB per row in ``states`` + ``next_states`` (1M rows: 8 GiB) and as
#: much again once the trainer has normalized them; tabular policies use tens to hundreds.
DEFAULT_MAX_STATE_FEATURES = 1024
#: 256 actions cost 6 bytes per row here (two masks, ``logged_probs``) and several float64
#: ``(n, A)`` arrays in CPE (target probabilities, Q estimates); a discrete Q head over more
#: actions than that needs another model (action features, ranking).
DEFAULT_MAX_ACTIONS = 256
#: Rows decoded at a time: small enough that one batch is a few MB beside the dense arrays,
#: large enough that the per-batch overhead stays small (about 250 batches per million rows
#: and pass). Measured (``make bench BENCH=learner_memory``): 4,096 rows had the lowest peak;
#: 8,192 about 5 MB more, 1,024 more too (more small objects left between batches).
DEFAULT_READ_BATCH_ROWS = 4096


@dataclass(frozen=True)
class ReadLimits:
    """Caps on the dense width and the batch size of one read (the learner's settings)."""

    max_state_features: int = DEFAULT_MAX_STATE_FEATURES
    max_actions: int = DEFAULT_MAX_ACTIONS
    batch_rows: int = DEFAULT_READ_BATCH_ROWS

    def __post_init__(self) -> None:
        for name in ("max_state_features", "max_actions", "batch_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")


class TimelineTooWide(ValueError):
    """The timeline has more distinct state keys or actions than the learner densifies."""

    def __init__(self, table: str, column: str, found: int, setting: str, cap: int) -> None:
        self.table, self.column, self.found, self.setting, self.cap = (
            table,
            column,
            found,
            setting,
            cap,
        )
        if setting == "max_state_features":
            what, advice = (
                "distinct keys",
                "if they are all real features; otherwise keep identifiers and free text out "
                "of the state maps",
            )
        else:
            what, advice = (
                "distinct actions",
                "if they are all real actions; a discrete policy over many more actions needs "
                "another model",
            )
        super().__init__(
            f"timeline {table}: column {column!r} has {found} {what} in the rows read so far, "
            f"more than learner.{setting} = {cap}. Each one becomes a dense column of every row, "
            f"so the learner stops before allocating. Raise learner.{setting} {advice}."
        )
