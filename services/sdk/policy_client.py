"""``PolicyClient``: serve the registry's policy (and its rollout candidate) to an application.

    from services.sdk import PolicyClient

    with PolicyClient(".policyloop/registry", "default", seed=7) as client:
        act = client.act("ep-1", {"x": 0.5}, [0, 1])
        ... take act.action ...
        client.reward("ep-1", 1.0)
        client.end_episode("ep-1", terminal=True)

What it guarantees, and why:

* **Verified models.** Versions are read through :meth:`RegistryReader.load`, which checks
  ``policy.pt`` against the manifest's sha256 before TorchScript sees a byte. A version that
  fails to load is refused: the last good one keeps serving, one WARNING names the version and
  the reason, ``policyloop_policy_load_failures_total`` counts it, and the version is not tried
  again until ``CURRENT`` changes (no reload storm on every poll).
* **Stochastic, logged truthfully.** Actions are sampled with the client's own seeded
  ``random.Random`` from the served probabilities, and the returned ``propensity`` is exactly
  the probability the action was drawn with — what counterfactual evaluation needs.
* **Stable routing.** An episode goes to the rollout candidate iff
  :func:`~services.sdk.policy_routing.episode_bucket` of its id is below the rollout fraction,
  decided at its first act; the version then sticks for the whole episode, even across reloads
  (the client remembers up to ``max_open_episodes`` open episodes; ``end_episode`` forgets one).
* **Hot reload without a failed call.** A daemon thread re-reads ``CURRENT``/``ROLLOUT`` every
  ``poll_interval_s`` (and at once when ``<prefix>.policy-updates`` announces a version, with
  ``kafka`` given; :mod:`services.sdk.policy_reload`). The new serving state is built completely
  (:mod:`services.sdk.policy_serving`), then published by replacing one reference, so ``act``
  always sees a whole old or a whole new state.
* **Cold start, explicit fallback.** When a fresh client has no version to serve — no
  ``CURRENT`` yet, or a ``CURRENT`` that cannot be read or loaded (tampered, missing, not
  TorchScript) — ``fallback="uniform"`` (the default) serves a uniform policy whose version is
  ``"uniform"``, logging one ERROR that names the version and the reason and counting it in
  ``policyloop_policy_load_failures_total``; ``fallback="none"`` raises
  :class:`~services.sdk.policy_serving.PolicyUnavailableError` naming both instead.
* **A damaged ROLLOUT is no rollout.** A ``ROLLOUT`` file that is not valid JSON or breaks its
  rules never makes the constructor or a reload fail: every new episode goes to the incumbent,
  one ERROR names the file and the rule, and the metric counts it under
  ``policy_version="ROLLOUT"`` (an unreadable ``CURRENT`` likewise under ``"CURRENT"``).

With a :class:`~services.sdk.logger.DecisionLogger` attached, every ``act`` is logged as a
``decision`` (step = the client's per-episode counter, the true propensity and
``action_probs``), and ``reward``/``end_episode`` pass through. The logger stays the caller's to
close.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from schemas.events import LIMITS
from services.kafka_settings import KafkaSettings
from services.registry.reader import RegistryReader
from services.sdk.policy_batch import ActRequest, batched_probs
from services.sdk.policy_metrics import VersionStats, collector_for
from services.sdk.policy_model import ServedModel, UniformModel
from services.sdk.policy_reload import PolicyReloader
from services.sdk.policy_routing import routes_to_candidate
from services.sdk.policy_sampling import sample_index
from services.sdk.policy_serving import ServingState, ServingStateBuilder

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from services.sdk.logger import DecisionLogger

__all__ = ["ActRequest", "PolicyAct", "PolicyClient", "ServingSnapshot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PolicyAct:
    """One decision; attribute-compatible with ``services.simulator.fleet.Decision``."""

    action: int | str
    propensity: float
    action_probs: list[float]  # aligned with the possible_actions given to act
    policy_version: str
    step: int
    decision_id: str


@dataclass(frozen=True)
class ServingSnapshot:
    """What the client serves right now."""

    current_version: str  # the incumbent: CURRENT's version, or "uniform"
    candidate_version: str | None
    fraction: float  # share of new episodes routed to the candidate


class _Episode:
    __slots__ = ("model", "step")

    def __init__(self, model: ServedModel | UniformModel, step: int) -> None:
        self.model = model
        self.step = step


class PolicyClient:
    """Serves a registry policy with staged-rollout routing (see the module doc)."""

    def __init__(
        self,
        registry_uri: str,
        policy_name: str,
        *,
        kafka: KafkaSettings | None = None,
        poll_interval_s: float = 5.0,
        seed: int | None = None,
        logger: DecisionLogger | None = None,
        fallback: Literal["uniform", "none"] = "uniform",
        metrics_registry: CollectorRegistry | None = None,
        max_open_episodes: int = 100_000,
    ) -> None:
        if fallback not in ("uniform", "none"):
            raise ValueError(f"fallback={fallback!r}: must be 'uniform' or 'none'")
        if not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s={poll_interval_s!r}: must be a positive number")
        if max_open_episodes < 1:
            raise ValueError(f"max_open_episodes={max_open_episodes!r}: must be at least 1")
        self.registry_uri = str(registry_uri)
        self.policy_name = policy_name
        self.kafka = kafka
        self.poll_interval_s = float(poll_interval_s)
        self.fallback = fallback
        self.logger = logger
        self.max_open_episodes = max_open_episodes
        self._registry = RegistryReader(self.registry_uri, policy_name)
        self._rng = random.Random(seed)
        self._random = self._rng.random
        self._lock = threading.Lock()  # episodes, stats, rng
        self._refresh_lock = threading.Lock()
        self._episodes: dict[str, _Episode] = {}
        self._evicted_warned = False
        self._stats: dict[str, VersionStats] = {}
        self._id_prefix = secrets.token_hex(6) + "-"
        self._ids = itertools.count()
        self._states = ServingStateBuilder(
            self._registry, fallback=fallback, on_load_failure=self._count_load_failure
        )
        self._closed = False

        # the first state, or PolicyUnavailableError with fallback="none"
        self._serving: ServingState = self._states.build(None)
        self._collector = collector_for(metrics_registry)
        self._collector.add(self)
        self._reloader = PolicyReloader(
            self.refresh, policy_name, poll_interval_s=self.poll_interval_s, kafka=kafka
        )
        self._reloader.start()

    # -- serving -------------------------------------------------------------------------------
    def act(
        self,
        episode_id: str,
        state: dict[str, float],
        possible_actions: Sequence[int | str],
        action_features: dict[str, dict[str, float]] | None = None,
    ) -> PolicyAct:
        """Sample an action for ``episode_id``'s next step; see the module doc.

        ``action_features`` are only logged with the decision (the policy decides by action)."""
        model = self._model_for(episode_id, self._serving)
        probs = model.probs(state, possible_actions)
        return self._draw(episode_id, state, possible_actions, model, probs, action_features)

    def act_many(self, requests: Sequence[ActRequest]) -> list[PolicyAct | Exception]:
        """:meth:`act` for each request, in order, with one model call per served version and
        possible actions (:meth:`ServedModel.probs_many`): what a service that gathers
        concurrent decisions calls. A request that ``act`` would refuse gets the exception
        ``act`` would raise in its place; the others are served all the same."""
        serving = self._serving
        models = [self._model_for(r.episode_id, serving) for r in requests]
        acts: list[PolicyAct | Exception] = []
        for r, model, row in zip(requests, models, batched_probs(models, requests), strict=True):
            try:
                if isinstance(row, Exception):
                    raise row
                args = (r.episode_id, r.state, r.possible_actions, model, row, r.action_features)
                acts.append(self._draw(*args))
            except Exception as exc:  # refused by the model, or by an attached logger
                acts.append(exc)
        return acts

    def _model_for(self, episode_id: str, serving: ServingState) -> ServedModel | UniformModel:
        """The open episode's version, else the one its routing bucket picks."""
        episode = self._episodes.get(episode_id)
        if episode is not None:
            return episode.model
        if serving.candidate is not None and routes_to_candidate(episode_id, serving.fraction):
            return serving.candidate
        return serving.incumbent

    def _draw(
        self,
        episode_id: str,
        state: dict[str, float],
        possible_actions: Sequence[int | str],
        model: ServedModel | UniformModel,
        probs: list[float],
        action_features: dict[str, dict[str, float]] | None = None,
    ) -> PolicyAct:
        """Sample from ``probs``, advance the episode, count, log: the rest of an act."""
        version = model.version
        with self._lock:
            chosen = sample_index(probs, self._random())
            stats = self._stats_for(version)
            episode = self._episodes.get(episode_id)
            if episode is None:
                step = 0
                if len(self._episodes) >= self.max_open_episodes:
                    self._evict_oldest()
                self._episodes[episode_id] = _Episode(model, 0)
                stats.episodes += 1
            else:
                step = episode.step = episode.step + 1
            propensity = probs[chosen]
            stats.decisions += 1
            stats.observe_propensity(propensity)
        action = possible_actions[chosen]
        decision_id = f"{self._id_prefix}{next(self._ids)}"
        if self.logger is not None:
            self.logger.decision(
                episode_id,
                step,
                state,
                action,
                possible_actions if type(possible_actions) is list else list(possible_actions),
                propensity,
                version,
                action_probs=probs,
                action_features=action_features,
                event_id=decision_id,
            )
        return PolicyAct(action, propensity, probs, version, step, decision_id)

    def reward(
        self,
        episode_id: str,
        reward: float,
        *,
        step: int | None = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        """Report ``reward`` for ``step`` (default: the episode's last act) of ``episode_id``."""
        if isinstance(reward, bool) or not isinstance(reward, int | float):
            raise ValueError(f"reward={reward!r}: must be a finite number")
        if not math.isfinite(reward):
            raise ValueError(f"reward={reward!r}: must be a finite number")
        if step is not None and (type(step) is not int or not 0 <= step <= LIMITS["step_max"]):
            # checked here too: without a logger nothing else would, and the sum would count it
            raise ValueError(f"reward.step={step!r}: must be an integer in [0, 2**53]")
        with self._lock:
            episode = self._episodes.get(episode_id)
            if episode is None:
                if step is None:
                    raise ValueError(
                        f"reward: episode {episode_id!r} has no open act in this client (never "
                        "acted, ended, or evicted); pass step= explicitly"
                    )
            else:
                if step is None:
                    step = episode.step
                self._stats_for(episode.model.version).reward_sum += float(reward)
        if self.logger is not None:
            self.logger.reward(episode_id, step, float(reward), metrics=metrics)

    def end_episode(self, episode_id: str, terminal: bool) -> None:
        """Forget the episode (its version no longer sticks) and log its end if logging."""
        with self._lock:
            episode = self._episodes.pop(episode_id, None)
        if self.logger is not None:
            last_step = episode.step if episode is not None else None
            self.logger.end_episode(episode_id, bool(terminal), last_step=last_step)

    @property
    def serving(self) -> ServingSnapshot:
        """The versions served right now and the candidate's share."""
        serving = self._serving
        candidate = serving.candidate.version if serving.candidate is not None else None
        return ServingSnapshot(serving.incumbent.version, candidate, serving.fraction)

    def episode_step(self, episode_id: str) -> int | None:
        """The last step acted in ``episode_id``, or None if it is not open in this client."""
        episode = self._episodes.get(episode_id)
        return None if episode is None else episode.step

    @property
    def open_episodes(self) -> int:
        return len(self._episodes)

    # -- reloading -----------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Re-read CURRENT and ROLLOUT now; True if what is served changed."""
        with self._refresh_lock:
            return self._refresh()

    def _refresh(self) -> bool:
        old = self._serving
        new = self._states.build(old)
        if new.key == old.key:
            return False
        self._serving = new
        log.info(
            "policy %s now serves %s (candidate %s at %.0f%%)",
            self.policy_name,
            new.incumbent.version,
            new.candidate.version if new.candidate else None,
            new.fraction * 100,
        )
        return True

    def _count_load_failure(self, version: str) -> None:
        with self._lock:
            self._stats_for(version).load_failures += 1

    def _stats_for(self, version: str) -> VersionStats:
        """``version``'s counters, created at its first use (call with ``_lock`` held)."""
        stats = self._stats.get(version)
        if stats is None:
            stats = self._stats[version] = VersionStats()
        return stats

    def _evict_oldest(self) -> None:
        oldest = next(iter(self._episodes))
        del self._episodes[oldest]
        if not self._evicted_warned:
            self._evicted_warned = True
            log.warning(
                "policy %s: more than max_open_episodes=%d open episodes; forgetting the "
                "oldest ones (call end_episode when an episode ends)",
                self.policy_name,
                self.max_open_episodes,
            )

    def wait_listening(self, timeout: float | None = None) -> bool:
        """True once the ``policy-updates`` listener reads from the topic's end (False
        without ``kafka``, or if it is not there within ``timeout``); announcements made
        after that trigger a reload at once."""
        return self._reloader.wait_listening(timeout)

    # -- metrics -------------------------------------------------------------------------------
    def metric_snapshot(self) -> tuple[dict[str, VersionStats], dict[str, Any]]:
        """Per-version counts and the serving state, for the Prometheus collector."""
        serving = self.serving
        with self._lock:
            stats = dict(self._stats)
        return stats, {
            "incumbent": serving.current_version,
            "candidate": serving.candidate_version,
            "fraction": serving.fraction,
        }

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the reload threads and leave the metrics (the logger stays the caller's)."""
        if self._closed:
            return
        self._closed = True
        self._reloader.stop()
        self._collector.remove(self)

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
