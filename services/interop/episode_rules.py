"""The live episode rules over one file, on keys only: which rows an episode keeps, and when.

The sessionizer's rules (docs/architecture.md section 3) applied to a file, with the same
dead-letter reasons: a second row for an (episode, step) is ``duplicate_step``; a row after the
step that ended its episode is ``after_episode_end``; a row of an episode already closed (in
this file, or already in the table) is ``late``. An episode closes at the step that ends it,
else at the end of the file, or when ``max_open_episodes`` are open and another one starts (the
least recently read one closes, as the format's default end).

Why a module of its own: both ways of building rows use it, so they cannot disagree on a rule.
The row path (:mod:`.episodes`) files :class:`~services.interop.source.SourceStep` objects under
their episode; the Arrow path (:mod:`.episode_frames`) files row numbers of an Arrow table. The
rules see only ``(episode_id, step, end, handle)`` and hand back the handles: refused ones with
their reason, and each closed episode's in step order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

__all__ = ["ClosedEpisode", "EpisodeCounts", "EpisodeRules", "RuleOptions"]

H = TypeVar("H")


@dataclass(frozen=True)
class RuleOptions:
    """What the rules of one file depend on, given once to whichever path builds its rows.

    ``default_end_terminal``: how an episode whose rows do not say how it ended closes (the
    format's default end, or ``--end``); ``existing_episodes``: the episodes the table already
    holds (a row of one is ``late``); ``max_open_episodes``: the cap on open episodes;
    ``closed_memory_episodes``: how many closed ones are remembered to refuse their late rows.
    """

    default_end_terminal: bool
    existing_episodes: Container[str]
    max_open_episodes: int
    closed_memory_episodes: int


@dataclass
class EpisodeCounts:
    """What the rules did, for the import's summary."""

    episodes: int = 0
    ended_in_file: int = 0
    closed_at_end_of_file: int = 0
    closed_by_cap: int = 0


class ClosedEpisode(NamedTuple, Generic[H]):
    """An episode whose rows are final: its handles in step order (its first step is
    ``steps[0]``) and whether its last row ends it as terminal (else truncated)."""

    episode_id: str
    steps: list[int]
    handles: list[H]
    terminal: bool


class _Open(Generic[H]):
    __slots__ = ("ends", "handles")

    def __init__(self) -> None:
        self.handles: dict[int, H] = {}
        self.ends: dict[int, bool] = {}


class EpisodeRules(Generic[H]):
    """The rules of one file (see module doc). ``reject(handle, reason, detail)`` is called for
    each refused row, ``close(episode)`` for each episode whose rows are final."""

    def __init__(
        self,
        options: RuleOptions,
        *,
        reject: Callable[[H, str, str], None],
        close: Callable[[ClosedEpisode[H]], None],
    ) -> None:
        self._default_terminal = options.default_end_terminal
        self._existing = options.existing_episodes
        self._max_open = options.max_open_episodes
        self._closed_max = options.closed_memory_episodes
        self._reject = reject
        self._on_close = close
        self._open: OrderedDict[str, _Open[H]] = OrderedDict()
        # episode -> the step that ended it (None: closed without an end row)
        self._closed: OrderedDict[str, int | None] = OrderedDict()
        self.counts = EpisodeCounts()

    def add(self, episode_id: str, step: int, end: bool | None, handle: H) -> None:
        """File one valid step (``end``: True terminal, False truncated, None not the end)."""
        ep = self._open.get(episode_id)
        if ep is None:
            if episode_id in self._closed:
                self._refuse_closed(episode_id, step, handle)
                return
            if episode_id in self._existing:
                self._reject(
                    handle,
                    "late",
                    f"episode {episode_id!r} already has rows in the table; an episode is "
                    "written once (import its rows in one file, or give this file "
                    "another --episode-prefix)",
                )
                return
            if len(self._open) >= self._max_open:
                self.counts.closed_by_cap += 1
                self._close(next(iter(self._open)), None)
            ep = self._open[episode_id] = _Open()
            self.counts.episodes += 1
        else:
            self._open.move_to_end(episode_id)
        if step in ep.handles:
            self._reject(
                handle, "duplicate_step", f"a second row for episode {episode_id!r} step {step}"
            )
            return
        ep.handles[step] = handle
        if end is not None:
            ep.ends[step] = end
            self.counts.ended_in_file += 1
            self._close(episode_id, step)

    def add_run(
        self, episode_id: str, steps: list[int], handles: list[H], last_end: bool | None
    ) -> None:
        """File consecutive rows of one episode whose steps increase and of which only the last
        may end it: as ``add`` row by row would, in one go when the episode is new."""
        if episode_id in self._open or episode_id in self._closed or episode_id in self._existing:
            last = len(steps) - 1
            for i, (step, handle) in enumerate(zip(steps, handles, strict=True)):
                self.add(episode_id, step, last_end if i == last else None, handle)
            return
        if len(self._open) >= self._max_open:
            self.counts.closed_by_cap += 1
            self._close(next(iter(self._open)), None)
        ep: _Open[H] = _Open()
        ep.handles = dict(zip(steps, handles, strict=True))
        self._open[episode_id] = ep
        self.counts.episodes += 1
        if last_end is not None:
            ep.ends[steps[-1]] = last_end
            self.counts.ended_in_file += 1
            self._close(episode_id, steps[-1])

    def finish(self) -> None:
        """End of the file: close every episode still open, as the default end says."""
        self.counts.closed_at_end_of_file += len(self._open)
        for episode_id in list(self._open):
            self._close(episode_id, None)

    def _refuse_closed(self, episode_id: str, step: int, handle: H) -> None:
        end_step = self._closed[episode_id]
        if end_step is not None and step > end_step:
            self._reject(
                handle,
                "after_episode_end",
                f"episode {episode_id!r} ended at step {end_step}; step {step} comes after its end",
            )
        else:
            self._reject(
                handle,
                "late",
                f"episode {episode_id!r} was already closed earlier in this file (rows of an "
                "episode without an end marker must be contiguous, or within the last "
                "max_open_episodes episodes read)",
            )

    def _close(self, episode_id: str, end_step: int | None) -> None:
        ep = self._open.pop(episode_id)
        self._closed[episode_id] = end_step
        while len(self._closed) > self._closed_max:
            self._closed.popitem(last=False)
        steps = sorted(ep.handles)
        if end_step is not None and steps[-1] > end_step:  # rows read before the end row
            for late in [s for s in steps if s > end_step]:
                self._reject(
                    ep.handles[late],
                    "after_episode_end",
                    f"episode {episode_id!r} ended at step {end_step}; step {late} comes after "
                    "its end",
                )
            steps = [s for s in steps if s <= end_step]
        terminal = self._default_terminal if end_step is None else ep.ends[end_step]
        self._on_close(ClosedEpisode(episode_id, steps, [ep.handles[s] for s in steps], terminal))
