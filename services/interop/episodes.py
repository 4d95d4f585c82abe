"""Episodes of an imported file: validated steps in, timeline rows out, with the live rules.

The sessionizer's rules, applied to a file instead of a stream (``services/sessionizer/``,
docs/architecture.md section 3), with the same dead-letter reasons for the rows it refuses:

* an invalid decision or reward is refused with :class:`EventValidationError`'s reason
  (``invalid:<field>``); the episode goes on without that step, as it does live. A row's reward
  is part of the row here, so an invalid reward refuses the whole row rather than writing it
  with the default reward;
* a second row for an (episode, step) is ``duplicate_step``; a row after the step that ended
  its episode is ``after_episode_end``; a row of an episode already closed (in this file, or
  already in the table) is ``late``;
* an episode closes at the step that ends it (``terminal`` or ``truncated``), else at the end
  of the file, or when ``max_open_episodes`` are open and another one starts (the least
  recently read one closes): then its last row is ended as the format's default end says.

Rows are built by :class:`schemas.rows.TimelineRowBuilder`, the sessionizer's own builder, in
step order, so the next state and action, ``time_diff``, ``time_since_first`` and
``step_ordinal`` of an imported row mean what they mean for a live one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from schemas.events import EventValidationError, validate_event
from schemas.rows import TimelineRowBuilder
from services.interop.source import Reject, SourceStep

__all__ = ["EpisodeAssembler", "EpisodeCounts"]


@dataclass
class EpisodeCounts:
    """What the assembler did, for the import's summary."""

    episodes: int = 0
    ended_in_file: int = 0
    closed_at_end_of_file: int = 0
    closed_by_cap: int = 0


@dataclass
class _Open:
    steps: dict[int, SourceStep] = field(default_factory=dict)


class EpisodeAssembler:
    """Collects one file's steps into episodes and emits each episode's rows when it closes."""

    def __init__(
        self,
        *,
        default_end_terminal: bool,
        processed_at_ms: int,
        existing_episodes: Container[str],
        max_open_episodes: int,
        closed_memory_episodes: int,
        reject: Callable[[Reject], None],
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self._default_terminal = default_end_terminal
        self._processed_at = processed_at_ms
        self._existing = existing_episodes
        self._max_open = max_open_episodes
        self._closed_max = closed_memory_episodes
        self._reject = reject
        self._emit = emit
        self._open: OrderedDict[str, _Open] = OrderedDict()
        # episode -> the step that ended it (None: closed without an end row)
        self._closed: OrderedDict[str, int | None] = OrderedDict()
        self._builders: dict[float, TimelineRowBuilder] = {}
        self.counts = EpisodeCounts()

    def add(self, item: SourceStep) -> None:
        """Validate ``item`` and file it under its episode (rows come out as episodes close)."""
        decision = item.decision
        try:
            validate_event(decision)
            for reward in item.rewards:
                validate_event(reward)
        except EventValidationError as exc:
            self._reject(Reject(item.where, exc.reason, str(exc)))
            return
        episode_id = decision["episode_id"]
        step = decision["step"]
        ep = self._open.get(episode_id)
        if ep is None:
            if episode_id in self._closed:
                end_step = self._closed[episode_id]
                if end_step is not None and step > end_step:
                    self._reject(
                        Reject(
                            item.where,
                            "after_episode_end",
                            f"episode {episode_id!r} ended at step {end_step}; step {step} "
                            "comes after its end",
                        )
                    )
                else:
                    self._reject(
                        Reject(
                            item.where,
                            "late",
                            f"episode {episode_id!r} was already closed earlier in this file "
                            "(rows of an episode without an end marker must be contiguous, or "
                            "within the last max_open_episodes episodes read)",
                        )
                    )
                return
            if episode_id in self._existing:
                self._reject(
                    Reject(
                        item.where,
                        "late",
                        f"episode {episode_id!r} already has rows in the table; an episode is "
                        "written once (import its rows in one file, or give this file "
                        "another --episode-prefix)",
                    )
                )
                return
            if len(self._open) >= self._max_open:
                oldest = next(iter(self._open))
                self.counts.closed_by_cap += 1
                self._close(oldest, None)
            ep = self._open[episode_id] = _Open()
            self.counts.episodes += 1
        else:
            self._open.move_to_end(episode_id)
        if step in ep.steps:
            self._reject(
                Reject(
                    item.where,
                    "duplicate_step",
                    f"a second row for episode {episode_id!r} step {step}",
                )
            )
            return
        ep.steps[step] = item
        if item.end is not None:
            self.counts.ended_in_file += 1
            self._close(episode_id, step)

    def finish(self) -> None:
        """End of the file: close every episode still open, as the default end says."""
        self.counts.closed_at_end_of_file += len(self._open)
        for episode_id in list(self._open):
            self._close(episode_id, None)

    def _close(self, episode_id: str, end_step: int | None) -> None:
        ep = self._open.pop(episode_id)
        self._closed[episode_id] = end_step
        while len(self._closed) > self._closed_max:
            self._closed.popitem(last=False)
        steps = sorted(ep.steps)
        if end_step is not None:
            terminal = ep.steps[end_step].end is True
            for late in [s for s in steps if s > end_step]:
                item = ep.steps[late]
                self._reject(
                    Reject(
                        item.where,
                        "after_episode_end",
                        f"episode {episode_id!r} ended at step {end_step}; step {late} comes "
                        "after its end",
                    )
                )
            steps = [s for s in steps if s <= end_step]
        else:
            terminal = self._default_terminal
        first = steps[0]
        last = len(steps) - 1
        for ordinal, step in enumerate(steps):
            item = ep.steps[step]
            successor = ep.steps[steps[ordinal + 1]].decision if ordinal < last else None
            builder = self._builder(item.default_reward)
            self._emit(
                builder.row(
                    item.decision,
                    item.rewards,
                    successor,
                    ordinal,
                    first,
                    terminal,
                    self._processed_at,
                )
            )

    def _builder(self, default_reward: float) -> TimelineRowBuilder:
        builder = self._builders.get(default_reward)
        if builder is None:
            builder = self._builders[default_reward] = TimelineRowBuilder("sum", default_reward)
        return builder
