"""``policyloop demo``: the closed loop on embedded defaults, from a random policy to a good one.

What runs, all on this machine and all stopped on return:

1. the embedded broker, and a ``policyloop sessionize`` worker process writing the timeline;
2. a fleet of gymnasium episodes served by one long-lived ``PolicyClient`` (it serves the
   built-in uniform policy until the registry has a CURRENT) that logs every decision it
   samples through a ``DecisionLogger`` — the cold start;
3. rounds of: the learner (train → CPE → gate; a passing candidate is stored, not promoted) →
   a staged rollout of the candidate (5 → 25 → 50 → 100 % of episodes by default), where after
   each batch of traffic the rollout controller compares the candidate's reward per episode with
   the incumbent's in the timeline and advances, promotes or rolls back.

Each round prints one line — the version, the true mean return measured in the environment,
the gate's estimate with its interval, the gate's decision and how far the rollout got — and
the run ends with an HTML report (true return and CPE estimates per round, traffic by version).
"""

from __future__ import annotations

import math
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from learner.settings import LearnerSettings
from schemas.names import UNIFORM_VERSION
from services.broker.embedded import start_broker, stop_broker
from services.cli.settings import Settings, deep_merge
from services.demo.processes import SessionizerProcess
from services.demo.settings import DemoSettings
from services.kafka_topics import ensure_topics
from services.simulator.fleet import EpisodeStats, play_episodes

if TYPE_CHECKING:
    from learner.run import RunResult
    from services.kafka_settings import KafkaSettings
    from services.rollout.controller import RolloutController
    from services.sdk.logger import DecisionLogger
    from services.sdk.policy_client import PolicyClient

__all__ = ["DemoResult", "RoundResult", "TrafficBatch", "run_demo"]

UNIFORM = UNIFORM_VERSION


@dataclass
class RoundResult:
    """One line of the demo: what the learner proposed and what the rollout made of it."""

    round: int
    version: str
    decision: str
    true_return: float | None = None
    true_discounted: float | None = None
    episodes: int = 0
    estimator: str | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    logged_value: float | None = None
    rollout: str = "—"
    learn_seconds: float = 0.0
    sentence: str = ""
    report_path: str | None = None


@dataclass
class TrafficBatch:
    """Episodes of one batch of traffic by the version that served them."""

    round: int
    episodes_by_version: dict[str, int]
    candidate_fraction: float
    mean_return_by_version: dict[str, float]


@dataclass
class DemoResult:
    """Everything the demo did, for the console summary, the report and the tests."""

    settings: DemoSettings
    rounds: list[RoundResult] = field(default_factory=list)
    traffic: list[TrafficBatch] = field(default_factory=list)
    serving_version: str = UNIFORM
    serving_return: float | None = None
    report_path: str | None = None
    seconds: float = 0.0
    sessionizer_exit_code: int | None = None

    @property
    def published_versions(self) -> list[str]:
        return [r.version for r in self.rounds if r.decision == "publish"]

    @property
    def reached_target(self) -> bool:
        """The served policy's true mean return reached the target (always, without one)."""
        target = self.settings.target_return
        if target is None:
            return True
        return self.serving_return is not None and self.serving_return >= target


def _with_overrides(learner: LearnerSettings, overrides: dict[str, Any]) -> LearnerSettings:
    """``learner`` with ``overrides`` merged in, validated like any learner settings."""
    return LearnerSettings.model_validate(deep_merge(learner.model_dump(), overrides))


def _workspace(settings: Settings, demo: DemoSettings) -> tuple[Path, Settings]:
    """A fresh ``<home>/demo`` and the settings that point every part at it."""
    root = Path(settings.home) / "demo"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    tables = root / "tables"
    learner = _with_overrides(settings.learner, demo.learner).model_copy(
        update={
            "gate_log_uri": str(tables / "gate_log"),
            "registry_uri": str(root / "registry"),
            "reports_dir": str(root / "reports"),
            "policy_name": demo.policy_name,
            "promote": False,
            "progress": False,
            "seed": demo.seed,
        }
    )
    sessionizer = settings.sessionizer.model_copy(
        update={
            # The fleet logs each reward right after its decision: take the first and move on.
            "reward_aggregation": "first",
            "reward_window_s": 5.0,
            "batch_max_seconds": 1.0,
            "rebalance_timeout_s": 3.0,
            "session_timeout_s": 6.0,
        }
    )
    rollout = settings.rollout.model_copy(update={"rollout_log_uri": str(tables / "rollout_log")})
    demo_settings = settings.model_copy(
        update={
            "home": str(root),
            "kafka": settings.kafka.model_copy(update={"topic_prefix": "demo"}),
            "sdk": settings.sdk.model_copy(update={"spool_dir": str(root / "spool")}),
            "sessionizer": sessionizer,
            "learner": learner,
            "rollout": rollout,
            "tables": settings.tables.model_copy(update={"timeline_uri": str(tables / "timeline")}),
        }
    )
    return root, demo_settings


class _Loop:
    """The state of one demo run between its steps."""

    def __init__(self, settings: Settings, demo: DemoSettings) -> None:
        self.logger: DecisionLogger | None = None  # what the client logs through, once started
        self.settings = settings
        self.demo = demo
        self.result = DemoResult(demo)
        self.rows = 0
        self.batches = 0

    # ------------------------------------------------------------------------------ traffic
    def play(
        self, client: PolicyClient, sessionizer: SessionizerProcess, episodes: int, round_: int
    ) -> EpisodeStats:
        """One batch of traffic through the client; returns once the timeline holds it."""
        client.refresh()
        serving = client.serving
        fraction = serving.fraction if serving.candidate_version else 0.0
        stats = play_episodes(
            self.demo.env_id,
            episodes,
            client,
            None,
            seed=self.demo.seed * 1_000_003 + self.batches * 10_007,
            episode_prefix=f"r{round_}b{self.batches}",
        )
        self.batches += 1
        assert self.logger is not None  # run_demo sets it before the first batch
        self.logger.flush(timeout=60)
        self.rows += sum(stats.lengths)
        sessionizer.wait_rows(self.settings.tables.timeline_uri, self.rows)
        by_version = Counter(stats.versions)
        self.result.traffic.append(
            TrafficBatch(
                round_,
                dict(by_version),
                fraction,
                {v: stats.mean_return(v) for v in by_version},
            )
        )
        return stats


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def round_line(r: RoundResult) -> str:
    """The one line a round prints."""
    if r.estimate is None:
        gate = f"gate: {r.decision}"
    else:
        gate = (
            f"gate {r.estimator} {_fmt(r.estimate, 2)} [{_fmt(r.ci_low, 2)}, {_fmt(r.ci_high, 2)}]"
            f" vs logged {_fmt(r.logged_value, 2)}: {r.decision}"
        )
    return (
        f"round {r.round}  {r.version:<9} true mean return {_fmt(r.true_return):>6} "
        f"(discounted {_fmt(r.true_discounted, 2)}, {r.episodes} episodes)  {gate}  "
        f"rollout: {r.rollout}"
    )


def run_demo(settings: Settings, demo: DemoSettings, console: Console | None = None) -> DemoResult:
    """Run the closed loop; every process it starts is stopped before it returns."""
    from learner.run import run_once
    from services.demo.report import write_demo_report
    from services.registry import Registry
    from services.rollout.controller import RolloutController
    from services.sdk import DecisionLogger, PolicyClient

    console = console or Console()
    started = time.monotonic()
    root, settings = _workspace(settings, demo)
    loop = _Loop(settings, demo)
    result = loop.result
    console.print(f"[bold]policyloop demo[/] on {demo.env_id} in {root}")
    handle = start_broker(root / "broker", port=0, binary=settings.broker.binary)
    sessionizer: SessionizerProcess | None = None
    try:
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": handle.bootstrap_servers})
        settings = settings.model_copy(update={"kafka": kafka})
        loop.settings = settings
        ensure_topics(kafka)
        console.print(f"broker up at {handle.bootstrap_servers} (pid {handle.pid})")
        sessionizer = SessionizerProcess(settings, root / "sessionizer.log")
        sessionizer.wait_ready()
        console.print(f"sessionizer up (pid {sessionizer.process.pid}, {sessionizer.metrics_url})")
        learner = settings.learner
        registry = Registry(learner.registry_uri, learner.policy_name)
        controller = RolloutController(
            registry,
            settings.tables.timeline_uri,
            settings.rollout.rollout_log_uri,
            settings.rollout,
        )
        with (
            DecisionLogger(kafka=kafka, settings=settings.sdk) as logger,
            PolicyClient(
                learner.registry_uri,
                learner.policy_name,
                kafka=kafka,
                poll_interval_s=1.0,
                seed=demo.seed,
                logger=logger,
            ) as client,
        ):
            loop.logger = logger
            cold = loop.play(client, sessionizer, demo.cold_start_episodes, 0)
            mean, discounted, n = cold.summary(UNIFORM)
            first = RoundResult(0, UNIFORM, "cold start", mean, discounted, n)
            result.rounds.append(first)
            result.serving_return = mean
            console.print(round_line(first), soft_wrap=True)
            for round_ in range(1, demo.max_rounds + 1):
                if time.monotonic() - started > demo.time_budget_s:
                    console.print("time budget spent: no further round")
                    break
                line = _learn_and_roll_out(
                    loop, run_once, controller, client, sessionizer, kafka, round_
                )
                result.rounds.append(line)
                console.print(round_line(line), soft_wrap=True)
    finally:
        if sessionizer is not None:
            result.sessionizer_exit_code = sessionizer.stop()
        stop_broker(root / "broker")
        console.print("sessionizer and broker stopped")
    result.seconds = time.monotonic() - started
    result.report_path = str(write_demo_report(result, root / "reports" / "demo.html"))
    verdict = ""
    if demo.target_return is not None:
        reached = "reached" if result.reached_target else "NOT reached"
        verdict = f" (target {demo.target_return:g}: {reached})"
    console.print(
        f"serving {result.serving_version}: true mean return {_fmt(result.serving_return)}"
        f"{verdict}; {result.seconds:.0f} s; report {result.report_path}",
        soft_wrap=True,
    )
    return result


def _learn_and_roll_out(
    loop: _Loop,
    run_once: Callable[..., RunResult],
    controller: RolloutController,
    client: PolicyClient,
    sessionizer: SessionizerProcess,
    kafka: KafkaSettings,
    round_: int,
) -> RoundResult:
    """One round: learn → gate → (staged rollout with traffic) → the round's line."""
    demo, result = loop.demo, loop.result
    learned = time.monotonic()
    run = run_once(
        loop.settings.learner,
        loop.settings.tables.timeline_uri,
        kafka=kafka,
        progress=False,
        force=True,
    )
    line = RoundResult(round_, run.published_version or "—", run.status)
    line.learn_seconds = time.monotonic() - learned
    line.sentence = run.sentence
    line.report_path = run.report_path
    gate = run.gate_decision
    if gate is not None and run.candidate_cpe is not None:
        estimate = run.candidate_cpe.estimates.get(gate.estimator)
        if estimate is not None:
            line.estimator = gate.estimator
            line.estimate, line.ci_low, line.ci_high = (
                estimate.value,
                estimate.ci_low,
                estimate.ci_high,
            )
        line.logged_value = gate.logged_value
    if run.status == "published":
        line.decision = "publish"
    else:
        # Nothing to roll out: more traffic on what is served, for the next round's data.
        stats = loop.play(client, sessionizer, demo.batch_episodes, round_)
        line.version = result.serving_version
        line.rollout = f"none ({result.serving_version} keeps serving)"
        line.true_return, line.true_discounted, line.episodes = stats.summary(
            result.serving_version
        )
        result.serving_return = line.true_return
        return line
    candidate = run.published_version
    assert candidate is not None  # a published run names the version it stored
    controller.start(candidate, demo.rollout_steps, demo.min_episodes)
    played = EpisodeStats()
    outcome = None
    for _ in range(demo.max_batches_per_rollout):
        played.extend(loop.play(client, sessionizer, demo.batch_episodes, round_))
        tick = controller.evaluate()
        if tick.decision in ("promote", "rollback"):
            outcome = tick
            break
    if outcome is None:
        controller.abort("the demo's traffic budget for this rollout is spent")
        line.rollout = f"aborted after {demo.max_batches_per_rollout} batches"
    elif outcome.decision == "promote":
        line.rollout = "promoted at 100%"
        result.serving_version = candidate
    else:
        line.rollout = f"rolled back at {outcome.fraction_before:.0%}"
    client.refresh()
    line.true_return, line.true_discounted, line.episodes = played.summary(candidate)
    if result.serving_version == candidate:
        result.serving_return = line.true_return
    return line
