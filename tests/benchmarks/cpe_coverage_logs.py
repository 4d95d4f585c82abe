"""Uniform logs of a gymnasium environment as the learner reads them, built in-process.

The coverage benchmark needs dozens of logged data sets; logging them through the broker and
the sessionizer (``policyloop simulate`` + ``sessionize``) takes minutes each. So the product's
pieces that decide *what* the learner sees are run here without the transport: the fleet's
:func:`~services.simulator.fleet.play_episodes` plays the episodes with the cold-start
:class:`~services.simulator.fleet.UniformPolicy` (state maps, possible actions from the
environment's ``action_mask``, propensities: the fleet's adapter), :class:`EventRecorder`
stands in for the SDK's ``DecisionLogger`` and turns each finished episode into timeline rows
with the sessionizer's own :class:`~schemas.rows.TimelineRowBuilder`, and
:meth:`~learner.data.LoggedData.from_table` densifies them as ``learn`` does (feature and
action order, masks, terminal vs truncated).
"""

from __future__ import annotations

from typing import Any

from learner.data import LoggedData
from schemas.rows import TimelineRowBuilder
from schemas.tables import rows_to_table
from services.simulator.fleet import UniformPolicy, play_episodes

__all__ = ["EventRecorder", "uniform_logs"]

_START_MS = 1_709_251_200_000  # 2024-03-01: any fixed day, the learner reads no clock here


class EventRecorder:
    """The ``DecisionLogger`` calls the fleet makes, kept in memory as timeline rows.

    One episode is held until its end (as the sessionizer holds it), then each decision
    becomes one row joined to its reward and its successor: the rows a sessionized episode
    has, without Kafka in between.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._builder = TimelineRowBuilder("sum", 0.0)
        self._decisions: list[dict[str, Any]] = []
        self._rewards: dict[int, float] = {}
        self._episodes = 0

    def decision(
        self,
        episode_id: str,
        step: int,
        state: dict[str, float],
        action: int | str,
        possible_actions: list[Any],
        propensity: float,
        policy_version: str,
        action_probs: list[float] | None = None,
    ) -> None:
        """One decision event, as the SDK would send it."""
        self._decisions.append(
            {
                "event_id": f"{episode_id}/{step}",
                "episode_id": episode_id,
                "step": step,
                "ts": _START_MS + self._episodes * 1_000 + step,
                "state": state,
                "action": action,
                "possible_actions": possible_actions,
                "propensity": propensity,
                "action_probs": action_probs,
                "policy_version": policy_version,
            }
        )

    def reward(self, episode_id: str, step: int, reward: float) -> None:
        """The reward of ``step`` (one per step in the fleet)."""
        self._rewards[step] = self._rewards.get(step, 0.0) + float(reward)

    def end_episode(self, episode_id: str, terminal: bool, last_step: int) -> None:
        """The episode's rows: the last one ``terminal`` (the environment ended it) or
        truncated (the time limit cut it)."""
        decisions = self._decisions
        for i, decision in enumerate(decisions):
            successor = decisions[i + 1] if i + 1 < len(decisions) else None
            rewards = [{"reward": self._rewards.get(decision["step"], 0.0)}]
            self.rows.append(
                self._builder.row(decision, rewards, successor, i, 0, terminal, _START_MS)
            )
        self._decisions, self._rewards = [], {}
        self._episodes += 1


def uniform_logs(env_id: str, episodes: int, seed: int) -> LoggedData:
    """``episodes`` episodes of ``env_id`` played by the uniform logger, as ``LoggedData``.

    Episode ``n`` is reset with seed ``seed * 1_000_003 + n`` and named ``s<seed>-<n>``, so that
    data seeds never share an episode.
    """
    recorder = EventRecorder()
    play_episodes(
        env_id,
        episodes,
        UniformPolicy(seed),
        recorder,
        seed=seed * 1_000_003,
        episode_prefix=f"s{seed}",
    )
    return LoggedData.from_table(rows_to_table(recorder.rows))
