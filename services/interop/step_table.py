"""Valid steps as an Arrow table: what the Arrow path carries from a reader to the episodes.

A *step table* holds one row per valid source step, in file order: the timeline columns a step
fills by itself (its episode, step, time, state, action, propensity, reward, ...; every column
of ``TIMELINE_SCHEMA`` except :data:`DERIVED`, so a column added to the timeline is carried
without a change here), how the step ends its episode (:data:`END`) and where it is in the
source (:data:`WHERE`, for the reject of a row refused later by an episode rule).

The columns in :data:`DERIVED` need the episode (its next row, its first step, how it ended):
:mod:`.episode_frames` computes them when the episode closes.

Steps the row path made (a row that failed a vectorized check but is valid after all, or a
format read row by row) enter the table through the sessionizer's own row builder
(:func:`steps_of_items`), so a column means the same whichever path made it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from schemas.rows import TimelineRowBuilder
from schemas.tables import TIMELINE_SCHEMA, rows_to_table
from services.interop.source import SourceStep

__all__ = [
    "DERIVED",
    "END",
    "END_NONE",
    "END_TERMINAL",
    "END_TRUNCATED",
    "STEP_SCHEMA",
    "WHERE",
    "WHERE_KINDS",
    "end_code",
    "steps_of_items",
]

#: Timeline columns computed per episode, not carried by a step.
DERIVED = frozenset(
    (
        "ds",
        "step_ordinal",
        "next_state",
        "next_action",
        "possible_next_actions",
        "next_propensity",
        "time_diff",
        "time_since_first",
        "terminal",
        "truncated",
        "processed_at",
    )
)
#: How a step ends its episode: not at all (or not known), terminal, truncated.
END = "_end"
END_NONE, END_TERMINAL, END_TRUNCATED = 0, 1, 2
#: Where a step is in its source: kind (index in WHERE_KINDS), number, index within a batch.
WHERE = ("_where_kind", "_where_number", "_where_index")
WHERE_KINDS = ("line", "row")

STEP_SCHEMA = pa.schema(
    [f for f in TIMELINE_SCHEMA if f.name not in DERIVED]
    + [
        pa.field(END, pa.int8(), nullable=False),
        pa.field(WHERE[0], pa.int8(), nullable=False),
        pa.field(WHERE[1], pa.int64(), nullable=False),
        pa.field(WHERE[2], pa.int64(), nullable=True),
    ]
)


def end_code(end: bool | None) -> int:
    """A step's ``end`` (True terminal, False truncated, None not the end) as its code."""
    return END_NONE if end is None else END_TERMINAL if end else END_TRUNCATED


def steps_of_items(items: list[SourceStep]) -> pa.Table:
    """The step table of validated row-path steps, built by the sessionizer's row builder."""
    builders: dict[float, TimelineRowBuilder] = {}
    rows: list[dict[str, Any]] = []
    for item in items:
        builder = builders.get(item.default_reward)
        if builder is None:
            builder = builders[item.default_reward] = TimelineRowBuilder("sum", item.default_reward)
        decision = item.decision
        row = builder.row(decision, item.rewards, None, 0, decision["step"], False, 0)
        row[END] = end_code(item.end)
        row[WHERE[0]] = WHERE_KINDS.index(item.where.kind)
        row[WHERE[1]] = item.where.number
        row[WHERE[2]] = item.where.in_batch
        rows.append(row)
    return rows_to_table(rows, STEP_SCHEMA)
