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
``step_ordinal`` of an imported row mean what they mean for a live one. This is the row path
(every format; the reference the Arrow path of :mod:`.episode_frames` is tested against); the
rules themselves are :mod:`.episode_rules`, shared by both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.events import EventValidationError, validate_event
from schemas.rows import TimelineRowBuilder
from services.interop.episode_rules import ClosedEpisode, EpisodeCounts, EpisodeRules, RuleOptions
from services.interop.source import Reject, SourceStep

__all__ = ["EpisodeAssembler", "EpisodeCounts", "validated"]


def validated(item: SourceStep) -> Reject | None:
    """The reject of a step whose events break the contract (None: valid)."""
    try:
        validate_event(item.decision)
        for reward in item.rewards:
            validate_event(reward)
    except EventValidationError as exc:
        return Reject(item.where, exc.reason, str(exc))
    return None


class EpisodeAssembler:
    """Collects one file's steps into episodes and emits each episode's rows when it closes."""

    def __init__(
        self,
        options: RuleOptions,
        *,
        processed_at_ms: int,
        reject: Callable[[Reject], None],
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self._processed_at = processed_at_ms
        self._reject = reject
        self._emit = emit
        self._builders: dict[float, TimelineRowBuilder] = {}
        self._rules: EpisodeRules[SourceStep] = EpisodeRules(
            options,
            reject=lambda item, reason, detail: reject(Reject(item.where, reason, detail)),
            close=self._close,
        )
        self.counts: EpisodeCounts = self._rules.counts

    def add(self, item: SourceStep) -> None:
        """Validate ``item`` and file it under its episode (rows come out as episodes close)."""
        refused = validated(item)
        if refused is not None:
            self._reject(refused)
            return
        decision = item.decision
        self._rules.add(decision["episode_id"], decision["step"], item.end, item)

    def finish(self) -> None:
        """End of the file: close every episode still open, as the default end says."""
        self._rules.finish()

    def _close(self, episode: ClosedEpisode[SourceStep]) -> None:
        items = episode.handles
        first = episode.steps[0]
        last = len(items) - 1
        for ordinal, item in enumerate(items):
            successor = items[ordinal + 1].decision if ordinal < last else None
            builder = self._builder(item.default_reward)
            self._emit(
                builder.row(
                    item.decision,
                    item.rewards,
                    successor,
                    ordinal,
                    first,
                    episode.terminal,
                    self._processed_at,
                )
            )

    def _builder(self, default_reward: float) -> TimelineRowBuilder:
        builder = self._builders.get(default_reward)
        if builder is None:
            builder = self._builders[default_reward] = TimelineRowBuilder("sum", default_reward)
        return builder
