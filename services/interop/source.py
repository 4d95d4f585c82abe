"""What every format reader yields: source steps (events to validate) and rejects.

A reader turns its format into the *events* of the live contract (``schemas.event_builders``):
one ``decision`` and its ``reward`` events per logged step, plus how the step ends its
episode. The importer then validates them with :func:`schemas.events.validate_event` and builds
rows with the sessionizer's row builder, so that an imported row is made exactly as a live one
and a bad one is refused for the same reason the sessionizer would give its dead letter.

Readers never raise on one bad row: they yield a :class:`Reject`. They raise
:class:`ImportFormatError` only for what makes the whole file unusable (a required column that
is missing, a pickled column, no propensities), before anything of it is committed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

__all__ = [
    "READ_ROWS",
    "EndDefault",
    "ImportFormatError",
    "ImportOptions",
    "LoggerKind",
    "Reject",
    "Shard",
    "SourceItem",
    "SourceStep",
    "Where",
    "logged_probabilities",
    "parse_ts",
]

#: Rows per batch read from a parquet source (and rounds per chunk of an .npz): bounds the
#: Python objects of one batch.
READ_ROWS = 20_000

#: How the data was logged when the source carries no propensities (``--logger``).
LoggerKind = Literal["uniform", "deterministic"]
#: How an episode whose rows say nothing of its end is closed (its last row).
EndDefault = Literal["terminal", "truncated"]


class ImportFormatError(ValueError):
    """The whole source is unusable (named column or rule); nothing of it is imported."""


class Where(NamedTuple):
    """A position in a source file: a 1-based ``line`` (JSON lines; ``index`` within the line's
    batch for RLlib JSON, ``in_batch``) or a 1-based ``row`` (CSV data rows, parquet, npz)."""

    kind: Literal["line", "row"]
    number: int
    in_batch: int | None = None

    def as_dict(self) -> dict[str, int]:
        out: dict[str, int] = {self.kind: self.number}
        if self.in_batch is not None:
            out["index"] = self.in_batch
        return out


class SourceStep(NamedTuple):
    """One logged step as live events: its ``decision``, the ``reward`` events joined to it (none:
    the row gets ``default_reward`` with ``reward_count`` 0) and its ``end`` (True: the
    environment ended the episode here, False: cut here, None: not the end or not known)."""

    where: Where
    decision: dict[str, Any]
    rewards: list[dict[str, Any]]
    end: bool | None
    default_reward: float = 0.0


class Reject(NamedTuple):
    """A row (or a whole line) refused, with the sessionizer's reason code and the rule."""

    where: Where
    reason: str
    detail: str


SourceItem = SourceStep | Reject


@dataclass(frozen=True)
class Shard:
    """The share of a file one import worker converts: the episodes whose id hashes to
    ``index`` modulo ``count`` (all steps of an episode go to one worker)."""

    index: int
    count: int


@dataclass(frozen=True)
class ImportOptions:
    """What the user told the importer about a source (flags; every format reads what applies).

    ``actions``: the possible actions when the source does not list them per row. ``obs_names``:
    the state names of array observations (default ``obs_0``, ``obs_1``, ...). ``logger``: how
    the data was logged when it carries no propensities. ``ts_ms``: the event time of rows whose
    source has none. ``columns``: role -> column name for tabular formats. ``shard``: set by the
    importer for a worker (:mod:`services.interop.workers`), which converts only its share.
    """

    ts_ms: int
    policy_version: str = "imported"
    actions: list[str] | None = None
    obs_names: list[str] | None = None
    logger: LoggerKind | None = None
    end_default: EndDefault | None = None
    episode_prefix: str = ""
    columns: dict[str, Any] = field(default_factory=dict)
    shard: Shard | None = None


def logged_probabilities(
    logger: LoggerKind, action: Any, possible: list[Any]
) -> tuple[float, list[float] | None]:
    """``(propensity, action_probs)`` of a step logged by ``logger``: uniform over ``possible``,
    or deterministic (probability 1 on the action taken, 0 elsewhere)."""
    if logger == "uniform":
        n = len(possible)
        return 1.0 / n, [1.0 / n] * n
    if action in possible:
        return 1.0, [1.0 if a == action else 0.0 for a in possible]
    return 1.0, None  # validation rejects the action itself


def parse_ts(value: Any) -> int | None:
    """Epoch milliseconds from an ISO-8601 text (naive = UTC), a date, or a number of ms."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value else None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(stamp.timestamp() * 1000)
    if isinstance(value, dt.date):
        midnight = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        return int(midnight.timestamp()) * 1000
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parse_ts(parsed)
    return None
