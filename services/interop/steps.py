"""Turning one source row into live events: the conversions every format shares.

Actions are written as table text (an integer action ``1`` is the action ``"1"``, as the
sessionizer writes it); other types stay as they are so that validation refuses them (a float
action is continuous control, which the timeline does not hold). Propensities come from the
source; a source without them is an error that says what to do (:func:`missing_propensities`),
unless the user said how it was logged (``--logger uniform|deterministic``).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from schemas.event_builders import decision_event, reward_event
from services.interop.source import (
    ImportFormatError,
    ImportOptions,
    Reject,
    Shard,
    SourceItem,
    SourceStep,
    Where,
    logged_probabilities,
)

__all__ = ["StepMaker", "missing_propensities", "obs_names_for"]


def missing_propensities(fmt: str, path: str, looked_for: str) -> ImportFormatError:
    """The error for a source that carries no propensities at all."""
    return ImportFormatError(
        f"{fmt}: {path} has no propensities ({looked_for}). Counterfactual evaluation needs the "
        "probability with which the logging policy chose each logged action: log it (RLlib: "
        "action_prob or action_logp; ReAgent: action_probability; OBP: pscore), or say how the "
        "data was logged: --logger uniform (every possible action equally likely) or --logger "
        "deterministic (the logged action had probability 1; CPE can then only evaluate that "
        "same policy)"
    )


def obs_names_for(width: int, options: ImportOptions, where: str) -> list[str]:
    """State names of observations of ``width`` values: ``--obs-names`` or ``obs_0..``."""
    if options.obs_names is None:
        return [f"obs_{i}" for i in range(width)]
    if len(options.obs_names) != width:
        raise ImportFormatError(
            f"--obs-names: {len(options.obs_names)} names given but {where} has observations of "
            f"{width} values"
        )
    return list(options.obs_names)


def _text(action: Any) -> Any:
    return str(action) if type(action) is int else action


class StepMaker:
    """Builds the :class:`SourceStep` of one row (see module doc) for one source file."""

    def __init__(self, sha256: str, options: ImportOptions) -> None:
        self._id_prefix = sha256[:16]
        self._options = options
        self._default_possible = (
            None if options.actions is None else [_text(a) for a in options.actions]
        )
        self._shard = options.shard
        #: Rejects of whole lines (no episode known) are reported by one worker only.
        self.owns_lines = options.shard is None or options.shard.index == 0

    @property
    def id_prefix(self) -> str:
        """What generated decision ids start with (a prefix of the source's content hash)."""
        return self._id_prefix

    @property
    def shard(self) -> Shard | None:
        """This worker's share of the file (None: the whole file)."""
        return self._shard

    def mine(self, episode: Any) -> bool:
        """Whether this worker converts the episode (always, without sharding): by a hash of
        its id as written (``services.interop.workers`` shares the table's ids the same way)."""
        shard = self._shard
        if shard is None:
            return True
        key = self._options.episode_prefix + (episode if type(episode) is str else str(episode))
        return zlib.crc32(key.encode("utf-8", "surrogatepass")) % shard.count == shard.index

    def mine_row(self, number: int) -> bool:
        """Whether this worker converts the one-step episode of source row ``number``."""
        shard = self._shard
        return shard is None or number % shard.count == shard.index

    def episode_for(self, where: Where) -> str:
        """The id of the one-step episode of a source row without an episode id: unique per
        source content and row."""
        return f"{self._id_prefix[:12]}-{where.number}"

    def possible(self, listed: Any) -> Any:
        """The row's possible actions as text: listed in the row, else ``--actions``."""
        if listed is None:
            return self._default_possible
        if type(listed) is list:
            return [_text(a) for a in listed]
        return listed  # validation names what is wrong with it

    def make(
        self,
        where: Where,
        episode_id: Any,
        step: Any,
        ts: Any,
        state: Any,
        action: Any,
        possible: Any,
        propensity: Any,
        reward: Any,
        end: bool | None,
        *,
        action_probs: Any = None,
        policy_version: Any = None,
        decision_id: Any = None,
        metrics: Any = None,
        reward_count: Any = None,
    ) -> SourceItem:
        """The step (events not validated yet: the importer does that), or a reject."""
        action = _text(action)
        if possible is None:
            return Reject(
                where,
                "invalid:possible_actions",
                "decision.possible_actions=None: the source does not list the possible actions; "
                "pass them with --actions (e.g. --actions 0,1)",
            )
        if propensity is None:
            logger = self._options.logger
            if logger is None:
                return Reject(
                    where,
                    "invalid:propensity",
                    "decision.propensity=None: is required (the logging policy's probability of "
                    "the action; or say how the data was logged with --logger)",
                )
            propensity, probs = logged_probabilities(logger, action, possible)
            if action_probs is None:
                action_probs = probs
        if episode_id is None:
            return Reject(where, "invalid:episode_id", "episode_id=None: is required")
        if type(episode_id) is not str:
            episode_id = str(episode_id)
        if self._options.episode_prefix:
            episode_id = self._options.episode_prefix + episode_id
        if decision_id is None:
            decision_id = f"{self._id_prefix}:{where.number}" + (
                "" if where.in_batch is None else f":{where.in_batch}"
            )
        decision = decision_event(
            decision_id,
            episode_id,
            step,
            ts,
            state,
            action,
            possible,
            propensity,
            policy_version or self._options.policy_version,
            action_probs,
        )
        count = 1 if reward_count is None else reward_count
        if type(count) is not int or count < 0:
            return Reject(where, "invalid:reward_count", f"reward_count={count!r}: must be >= 0")
        if count == 0:
            if type(reward) not in (int, float) or not math.isfinite(reward):
                rule = f"reward={reward!r}: must be a finite number"
                return Reject(where, "invalid:reward", rule)
            return SourceStep(where, decision, [], end, float(reward))
        first = reward_event(f"{decision_id}:r0", episode_id, step, ts, reward, metrics)
        rewards = [first]
        for k in range(1, count):  # the row's reward arrived as ``count`` events (sum)
            rewards.append(reward_event(f"{decision_id}:r{k}", episode_id, step, ts, 0.0))
        return SourceStep(where, decision, rewards, end)
