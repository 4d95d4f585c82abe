"""``RolloutController``: advance a candidate step by step on evidence, or roll it back.

One :meth:`~RolloutController.evaluate` (a *tick*) reads the step's evidence from the timeline
(:mod:`services.rollout.evidence`) and decides:

* **rollback** — the candidate is significantly worse than the incumbent (and each side has at
  least ``min_test_episodes`` episodes): ``ROLLOUT`` is cleared, all traffic goes back to the
  incumbent;
* **advance** — each side has ``min_episodes`` complete episodes in this step and the candidate
  is not significantly worse: the next step's fraction is set (a new step starts now, so the
  next decision is taken on traffic at the new split);
* **promote** — the same, when the next step is 100 %: ``Registry.promote`` makes the candidate
  CURRENT (a step at 100 % would leave no incumbent traffic to compare with, so reaching it *is*
  the promotion);
* **hold** — otherwise, saying what it waits for.

Every decision except repeated holds within a step is appended to the Delta ``rollout_log``
with its evidence, and the controller's gauges are set at every tick. The plan lives in the
registry's ``ROLLOUT`` file, so any process can tick, report or abort the same rollout.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.names import UNIFORM_VERSION
from services.rollout.evidence import Comparison, compare_returns, episode_returns
from services.rollout.log_table import append_rollout_log
from services.rollout.metrics import rollout_metrics
from services.rollout.plan import RolloutError, RolloutPlan, parse_steps
from services.rollout.settings import RolloutSettings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from services.registry import Registry

__all__ = ["UNIFORM_INCUMBENT", "RolloutController", "RolloutStatus", "TickResult"]

log = logging.getLogger(__name__)

#: The incumbent's version when there is no CURRENT: the policy client's uniform fallback.
UNIFORM_INCUMBENT = UNIFORM_VERSION


@dataclass(frozen=True)
class TickResult:
    """What a controller call decided, with the evidence."""

    decision: str  # start | hold | advance | promote | rollback | abort | idle
    reason: str
    candidate: str | None
    incumbent: str | None
    step_index: int | None
    fraction_before: float
    fraction_after: float
    comparison: Comparison | None = None

    def line(self) -> str:
        """One line for a terminal or a log."""
        if self.candidate is None:
            return f"{self.decision}: {self.reason}"
        head = (
            f"{self.decision} {self.candidate} vs {self.incumbent}: "
            f"{self.fraction_before:.0%} -> {self.fraction_after:.0%}"
        )
        c = self.comparison
        if c is not None:
            head += (
                f" | candidate {c.candidate.episodes} ep mean {_fmt(c.candidate.mean)}, "
                f"incumbent {c.incumbent.episodes} ep mean {_fmt(c.incumbent.mean)}, "
                f"p={_fmt(c.p_value, '.3g')}"
            )
        return f"{head} | {self.reason}"


@dataclass(frozen=True)
class RolloutStatus:
    """The running rollout (if any) and the evidence of its current step."""

    running: bool
    current: str | None
    plan: RolloutPlan | None
    fraction: float
    comparison: Comparison | None

    def lines(self) -> list[str]:
        if not self.running or self.plan is None:
            return [f"no staged rollout running; CURRENT is {self.current or 'none (uniform)'}"]
        p, c = self.plan, self.comparison
        steps = ",".join(f"{s * 100:g}" for s in p.steps)
        out = [
            f"rollout of {p.candidate} (incumbent {p.incumbent}), started {p.started_at}",
            f"step {p.step_index + 1}/{len(p.steps) - 1} at {self.fraction:.0%} since "
            f"{p.step_started_at}; steps {steps}; min_episodes {p.min_episodes}",
        ]
        if c is not None:
            out.append(
                f"candidate: {c.candidate.episodes} episodes, mean {_fmt(c.candidate.mean)} "
                f"(std {_fmt(c.candidate.std)}); incumbent: {c.incumbent.episodes} episodes, "
                f"mean {_fmt(c.incumbent.mean)} (std {_fmt(c.incumbent.std)}); "
                f"z={_fmt(c.statistic)} p={_fmt(c.p_value, '.3g')}"
            )
        return out


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RolloutController:
    """Runs staged rollouts of one registry policy (see the module doc)."""

    def __init__(
        self,
        registry: Registry,
        timeline_uri: str,
        rollout_log_uri: str,
        settings: RolloutSettings | None = None,
        *,
        metrics_registry: CollectorRegistry | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.registry = registry
        self.timeline_uri = str(timeline_uri)
        self.rollout_log_uri = str(rollout_log_uri)
        self.settings = settings or RolloutSettings()
        self.metrics = rollout_metrics(metrics_registry)
        self._clock = clock
        self._holds_logged: set[tuple[str, int, str]] = set()

    @property
    def policy_name(self) -> str:
        return self.registry.policy_name

    # -- commands --------------------------------------------------------------------------
    def start(
        self,
        version: str,
        steps: str | Sequence[float] | None = None,
        min_episodes: int | None = None,
    ) -> TickResult:
        """Begin routing the first step's share of episodes to ``version``.

        ``steps`` are percentages (default from the settings). Refused when a rollout is
        running, when ``version`` is CURRENT, or when it fails verification (sha256).
        """
        fractions = parse_steps(self.settings.steps if steps is None else steps)
        min_episodes = self.settings.min_episodes if min_episodes is None else int(min_episodes)
        if min_episodes < 1:
            raise ValueError(f"min_episodes={min_episodes}: must be at least 1")
        running = self.registry.rollout()
        if running is not None:
            raise RolloutError(
                f"a rollout of {running['version']} is already running "
                f"({running.get('fraction', 0):.0%}); abort it first"
            )
        current = self.registry.current()
        if version == current:
            raise RolloutError(f"{version} is already CURRENT; there is nothing to roll out")
        self.registry.verify(version)  # a tampered candidate never gets traffic
        now = self._clock()
        plan = RolloutPlan(
            candidate=version,
            incumbent=current or UNIFORM_INCUMBENT,
            steps=fractions,
            step_index=0,
            min_episodes=min_episodes,
            started_at=now.isoformat(),
            step_started_at=now.isoformat(),
        )
        self.registry.set_rollout(version, plan.fraction, plan=plan.to_json())
        reason = (
            f"started: {plan.fraction:.0%} of episodes to {version}, "
            f"{min_episodes} complete episodes per side before each step"
        )
        return self._record("start", plan, 0.0, plan.fraction, None, reason, now)

    def abort(self, reason: str = "aborted by hand") -> TickResult:
        """Stop the running rollout: all traffic back to the incumbent."""
        running = self.registry.rollout()
        if running is None:
            raise RolloutError("no staged rollout is running")
        plan = self._plan_of(running)
        self.registry.clear_rollout()
        fraction = float(running.get("fraction", 0.0))
        if plan is None:
            return TickResult("abort", reason, running["version"], None, None, fraction, 0.0)
        return self._record("abort", plan, fraction, 0.0, None, reason, self._clock())

    def status(self, *, with_evidence: bool = True) -> RolloutStatus:
        current = self.registry.current()
        running = self.registry.rollout()
        if running is None:
            return RolloutStatus(False, current, None, 0.0, None)
        plan = self._plan_of(running)
        comparison = self._evidence(plan) if plan is not None and with_evidence else None
        return RolloutStatus(True, current, plan, float(running.get("fraction", 0.0)), comparison)

    def evaluate(self) -> TickResult:
        """One tick: decide rollback / advance / promote / hold on the step's evidence."""
        running = self.registry.rollout()
        if running is None:
            return TickResult("idle", "no staged rollout is running", None, None, None, 0.0, 0.0)
        plan = self._plan_of(running)
        if plan is None:
            return TickResult(
                "idle",
                f"ROLLOUT of {running['version']} was set by hand (no plan); not managed",
                None,
                None,
                None,
                float(running.get("fraction", 0.0)),
                float(running.get("fraction", 0.0)),
            )
        now = self._clock()
        fraction = plan.fraction
        current = self.registry.current() or UNIFORM_INCUMBENT
        if current != plan.incumbent:
            self.registry.clear_rollout()
            reason = f"CURRENT changed from {plan.incumbent} to {current} during the rollout"
            return self._record("abort", plan, fraction, 0.0, None, reason, now)
        comparison = self._evidence(plan)
        self._set_gauges(plan, comparison)
        s = self.settings
        n_c, n_i = comparison.candidate.episodes, comparison.incumbent.episodes
        test_floor = min(s.min_test_episodes, plan.min_episodes)
        if comparison.worse and min(n_c, n_i) >= max(test_floor, 2):
            self.registry.clear_rollout()
            reason = (
                f"candidate significantly worse (one-sided Welch, normal approximation, "
                f"p={comparison.p_value:.3g} < alpha={s.alpha:g}, tolerance {s.tolerance:g}): "
                f"all traffic back to {plan.incumbent}"
            )
            return self._record("rollback", plan, fraction, 0.0, comparison, reason, now)
        if n_c >= plan.min_episodes and n_i >= plan.min_episodes:
            p = comparison.p_value
            evidence = "no test possible" if p is None else f"p={p:.3g} >= alpha={s.alpha:g}"
            if plan.next_fraction >= 1.0:
                self.registry.promote(plan.candidate)  # also ends the rollout
                reason = f"not worse ({evidence}) at the last step: {plan.candidate} is CURRENT"
                return self._record("promote", plan, fraction, 1.0, comparison, reason, now)
            nxt = plan.advanced(now)
            self.registry.set_rollout(plan.candidate, nxt.fraction, plan=nxt.to_json())
            reason = f"not worse ({evidence}) with {n_c}/{n_i} episodes: next step"
            return self._record("advance", plan, fraction, nxt.fraction, comparison, reason, now)
        waiting = []
        if n_c < plan.min_episodes:
            waiting.append(f"{plan.min_episodes - n_c} more candidate")
        if n_i < plan.min_episodes:
            waiting.append(f"{plan.min_episodes - n_i} more incumbent")
        reason = (
            f"waiting for {' and '.join(waiting)} complete episodes "
            f"(have {n_c}/{n_i}, need {plan.min_episodes} each since {plan.step_started_at})"
        )
        key = (plan.candidate, plan.step_index, plan.step_started_at)
        if key in self._holds_logged:
            self.metrics.decisions.labels(self.policy_name, "hold").inc()
            return TickResult(
                "hold", reason, plan.candidate, plan.incumbent, plan.step_index, fraction,
                fraction, comparison,
            )  # fmt: skip
        self._holds_logged.add(key)
        return self._record("hold", plan, fraction, fraction, comparison, reason, now)

    # -- internals -------------------------------------------------------------------------
    def _plan_of(self, running: dict[str, Any]) -> RolloutPlan | None:
        raw = running.get("plan")
        if raw is None:
            return None
        plan = RolloutPlan.from_json(raw)
        if plan.candidate != running.get("version"):
            raise RolloutError(
                f"ROLLOUT names {running.get('version')} but its plan is for {plan.candidate}"
            )
        return plan

    def _evidence(self, plan: RolloutPlan) -> Comparison:
        returns = episode_returns(
            self.timeline_uri, plan.step_started, [plan.candidate, plan.incumbent]
        )
        return compare_returns(
            plan.candidate,
            returns[plan.candidate],
            plan.incumbent,
            returns[plan.incumbent],
            alpha=self.settings.alpha,
            tolerance=self.settings.tolerance,
        )

    def _set_gauges(self, plan: RolloutPlan, comparison: Comparison) -> None:
        m, policy = self.metrics, self.policy_name
        for role, side in (
            ("candidate", comparison.candidate),
            ("incumbent", comparison.incumbent),
        ):
            m.episodes.labels(policy, side.version, role).set(side.episodes)
            if side.mean is not None:
                m.mean_reward.labels(policy, side.version, role).set(side.mean)

    def _record(
        self,
        decision: str,
        plan: RolloutPlan,
        before: float,
        after: float,
        comparison: Comparison | None,
        reason: str,
        now: dt.datetime,
    ) -> TickResult:
        """Log the decision to the rollout_log table, the metrics and the log; return it."""
        c = comparison
        row = {
            "ts": now,
            "policy_name": self.policy_name,
            "candidate_version": plan.candidate,
            "incumbent_version": plan.incumbent,
            "step_index": plan.step_index,
            "steps": list(plan.steps),
            "step_started_at": plan.step_started,
            "fraction_before": before,
            "fraction_after": after,
            "decision": decision,
            "candidate_episodes": c.candidate.episodes if c else 0,
            "candidate_mean_return": c.candidate.mean if c else None,
            "candidate_std_return": c.candidate.std if c else None,
            "incumbent_episodes": c.incumbent.episodes if c else 0,
            "incumbent_mean_return": c.incumbent.mean if c else None,
            "incumbent_std_return": c.incumbent.std if c else None,
            "statistic": _finite_or_none(c.statistic) if c else None,
            "p_value": c.p_value if c else None,
            "alpha": self.settings.alpha,
            "tolerance": self.settings.tolerance,
            "min_episodes": plan.min_episodes,
            "reason": reason,
        }
        append_rollout_log(self.rollout_log_uri, row)
        self.metrics.decisions.labels(self.policy_name, decision).inc()
        self.metrics.step_fraction.labels(self.policy_name, plan.candidate).set(after)
        result = TickResult(
            decision, reason, plan.candidate, plan.incumbent, plan.step_index, before, after, c
        )
        log.info("rollout %s: %s", self.policy_name, result.line())
        return result


def _finite_or_none(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return value
