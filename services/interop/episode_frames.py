"""Episodes of an imported file, in Arrow: step tables in, timeline record batches out.

The Arrow path's counterpart of :class:`services.interop.episodes.EpisodeAssembler`, for the
same rules (:mod:`.episode_rules`, shared): the rules see each row's episode, step and end (a
few dictionary operations a row), and the rows themselves stay in Arrow. When episodes close,
their rows are taken in step order and the columns that need the episode are computed for all
of them at once with numpy and ``pyarrow.compute`` (:func:`_timeline`), as the sessionizer's
row builder defines them: the next row's state, action, possible actions and propensity,
``time_diff``, ``step_ordinal``, ``time_since_first``, ``terminal``/``truncated`` on the last
row, ``ds`` of ``ts``. Columns of the timeline that neither the step nor the episode fills
are null (the schema says which are nullable).

Episodes span batches: the rows of open episodes stay held (their handles are row ids into the
held table) until the episode closes in a later batch. Held rows whose episode closed are
dropped when they are more than half of what is held, so memory follows the open episodes, not
the file.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.tables import TIMELINE_SCHEMA, ds_of
from services.interop.episode_rules import ClosedEpisode, EpisodeCounts, EpisodeRules, RuleOptions
from services.interop.source import Reject, Where
from services.interop.step_table import END, STEP_SCHEMA, WHERE, WHERE_KINDS

__all__ = ["EpisodeFrames"]

_ENDS: tuple[bool | None, ...] = (None, True, False)  # by end code (step_table.END_*)
_DAY_US = 86_400_000_000
_TS = pa.timestamp("us", tz="UTC")


class EpisodeFrames:
    """Files step tables under their episodes; ``emit`` gets the rows of closed episodes as
    record batches of ``schema`` (the timeline's), ``reject`` the rows a rule refuses."""

    def __init__(
        self,
        options: RuleOptions,
        *,
        processed_at_ms: int,
        reject: Callable[[Reject], None],
        emit: Callable[[pa.RecordBatch], None],
        schema: pa.Schema = TIMELINE_SCHEMA,
    ) -> None:
        self._processed_at_us = processed_at_ms * 1000
        self._reject = reject
        self._emit = emit
        self._schema = schema
        self._closed: list[ClosedEpisode[int]] = []
        self._refused: list[tuple[int, str, str]] = []
        self._rules: EpisodeRules[int] = EpisodeRules(
            options,
            reject=lambda row, reason, detail: self._refused.append((row, reason, detail)),
            close=self._closed.append,
        )
        self.counts: EpisodeCounts = self._rules.counts
        self._held = STEP_SCHEMA.empty_table()
        self._ids = np.zeros(0, dtype=np.int64)  # row id of each held row (ascending)
        self._alive = np.zeros(0, dtype=bool)  # held rows not yet written or refused
        self._next_id = 0

    def add(self, steps: pa.Table) -> None:
        """File the rows of ``steps`` (a step table, in file order); emit closed episodes."""
        n = steps.num_rows
        if n == 0:
            return
        first = self._next_id
        self._next_id += n
        self._held = pa.concat_tables([self._held, steps.select(STEP_SCHEMA.names)])
        self._ids = np.concatenate([self._ids, np.arange(first, first + n, dtype=np.int64)])
        self._alive = np.concatenate([self._alive, np.ones(n, dtype=bool)])
        self._file(steps, first)
        self._flush()

    def _file(self, steps: pa.Table, first: int) -> None:
        """The rules over the rows of ``steps`` (row ids from ``first``), a run at a time: a run
        is consecutive rows of one episode, and one whose steps increase and of which only the
        last may end the episode (the usual case) is filed in one call."""
        n = steps.num_rows
        episodes = steps.column("episode_id").combine_chunks()
        step = steps.column("step").to_numpy()
        end = steps.column(END).to_numpy()
        same = pc.equal(episodes.slice(1), episodes.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        starts = np.concatenate([[0], np.flatnonzero(~same) + 1])
        stops = np.append(starts[1:], n)
        irregular = np.concatenate([[0], np.cumsum((np.diff(step) <= 0) | (end[:-1] != 0))])
        regular = (irregular[stops - 1] - irregular[starts] == 0).tolist()
        ids = episodes.take(pa.array(starts)).to_pylist()
        steps_of, ends_of = step.tolist(), end.tolist()
        rules, ends = self._rules, _ENDS
        for r, (a, b) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
            if regular[r]:
                rows = list(range(first + a, first + b))
                rules.add_run(ids[r], steps_of[a:b], rows, ends[ends_of[b - 1]])
            else:
                for i in range(a, b):
                    rules.add(ids[r], steps_of[i], ends[ends_of[i]], first + i)

    def finish(self) -> None:
        """End of the file: close every open episode as the default end says, emit them."""
        self._rules.finish()
        self._flush()

    def _positions(self, rows: list[int]) -> np.ndarray:
        return np.searchsorted(self._ids, np.asarray(rows, dtype=np.int64))

    def _flush(self) -> None:
        if self._refused:
            refused, self._refused = self._refused, []
            positions = self._positions([r for r, _, _ in refused])
            self._alive[positions] = False
            where = self._held.select(list(WHERE)).take(positions).to_pylist()
            for (_, reason, detail), w in zip(refused, where, strict=True):
                place = Where(WHERE_KINDS[w[WHERE[0]]], w[WHERE[1]], w[WHERE[2]])  # type: ignore[arg-type]
                self._reject(Reject(place, reason, detail))
        if self._closed:
            closed = list(self._closed)
            self._closed.clear()  # the rules append to this very list
            positions = self._positions([h for episode in closed for h in episode.handles])
            self._alive[positions] = False
            rows = self._rows_at(positions)
            lengths = np.fromiter((len(e.handles) for e in closed), np.int64, len(closed))
            terminal = np.fromiter((e.terminal for e in closed), bool, len(closed))
            self._emit(_timeline(rows, lengths, terminal, self._processed_at_us, self._schema))
        self._compact()

    def _rows_at(self, positions: np.ndarray) -> pa.Table:
        """The held rows at ``positions``: a slice when they are consecutive (episodes written
        one after another, the usual file), else a take."""
        start = int(positions[0])
        if np.array_equal(positions, np.arange(start, start + len(positions))):
            return self._held.slice(start, len(positions)).combine_chunks()
        return self._held.take(positions).combine_chunks()

    def _compact(self) -> None:
        """Drop held rows that are done once they are the larger part of what is held."""
        alive = int(np.count_nonzero(self._alive))
        if len(self._alive) <= 2 * alive + 1024 and alive:
            return
        keep = np.flatnonzero(self._alive)
        self._held = self._held.take(keep) if alive else STEP_SCHEMA.empty_table()
        self._ids = self._ids[keep]
        self._alive = np.ones(alive, dtype=bool)


def _ds(ts: pa.Array) -> pa.Array:
    """``ds`` of each ``ts`` (UTC day), through :func:`schemas.tables.ds_of` once per day."""
    days = pc.cast(ts, pa.int64()).to_numpy() // _DAY_US
    distinct, inverse = np.unique(days, return_inverse=True)
    names = pa.array([ds_of(int(day) * 86_400_000) for day in distinct], pa.string())
    return names.take(pa.array(inverse.reshape(-1)))


def _timeline(
    rows: pa.Table,
    lengths: np.ndarray,
    terminal: np.ndarray,
    processed_at_us: int,
    schema: pa.Schema,
) -> pa.RecordBatch:
    """Timeline rows of closed episodes: ``rows`` are their steps, episode after episode in
    step order (``lengths`` rows each), ``terminal`` says how each one ended."""
    m = rows.num_rows
    starts = np.cumsum(lengths) - lengths
    last = np.zeros(m, dtype=bool)
    last[starts + lengths - 1] = True
    step = rows.column("step").to_numpy()
    following = np.arange(1, m + 1, dtype=np.int64)
    following[last] = 0
    successor = pa.array(following, mask=last)
    ends = np.repeat(terminal, lengths)
    derived = {
        "ds": _ds(rows.column("ts")),
        "step_ordinal": pa.array(np.arange(m) - np.repeat(starts, lengths)),
        "time_since_first": pa.array(step - np.repeat(step[starts], lengths)),
        "next_state": rows.column("state").take(successor),
        "next_action": rows.column("action").take(successor),
        "possible_next_actions": rows.column("possible_actions").take(successor),
        "next_propensity": rows.column("propensity").take(successor),
        "time_diff": pa.array(step[following] - step, mask=last),
        "terminal": pa.array(last & ends),
        "truncated": pa.array(last & ~ends),
        "processed_at": pa.array(np.full(m, processed_at_us, dtype=np.int64), _TS),
    }
    columns = []
    for field in schema:
        column = derived.get(field.name)
        if column is None:
            if field.name in rows.column_names:
                column = rows.column(field.name)
            elif field.nullable:
                column = pa.nulls(m, field.type)
            else:
                raise ValueError(f"timeline column {field.name!r}: no value for imported rows")
        columns.append(column)
    table = pa.Table.from_arrays(columns, schema=schema).combine_chunks()
    return table.to_batches(max_chunksize=max(m, 1))[0]
