"""The coverage benchmark's units of work: one (environment, data seed), run here or in workers.

A unit logs its uniform episodes, splits them, trains the candidates and judges each pair
(:func:`run_unit`). Units share nothing, so :func:`run_units` can hand them to ``jobs`` worker
processes: the judged size (48 pairs) is about an hour in one process on the 2-core dev machine
and about half that in three, because much of a unit's time is spent in single-threaded Python
(the fleet, the sessionizer's row builder, the simulated truths). Units start longest first
(``BenchEnvironment.relative_cost``) so that the longest one does not start last. Workers are
spawned (not forked: torch's threads do not survive a fork) and send back plain records; the
parent prints each unit's lines as it finishes, so the output of two units never interleaves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import numpy as np

from learner.cpe.config import CpeSettings
from learner.data import split_by_episode
from learner.settings import LearnerSettings
from learner.trainers.config import TrainerSettings
from tests.benchmarks.cpe_coverage_candidates import Snapshots, make_candidates
from tests.benchmarks.cpe_coverage_envs import ENVIRONMENTS
from tests.benchmarks.cpe_coverage_pairs import PairResult, judge_pair
from tests.benchmarks.cpe_coverage_truth import TrueValue
from tests.benchmarks.smoke import sized

__all__ = [
    "Plan",
    "Reporter",
    "Unit",
    "UnitResult",
    "pair_line",
    "run_settings",
    "run_unit",
    "run_units",
]

# Smoke mode proves the path at tiny sizes: few trainer steps, a tiny FQE, few resamples.
SMOKE_TRAINER: dict[str, Any] = sized({}, {"ensemble_size": 1})
SMOKE_CPE: dict[str, Any] = sized(
    {}, {"n_bootstrap": 20, "fqe": {"n_steps": 40, "members": 2, "target_update_every": 10}}
)


@dataclass(frozen=True)
class Plan:
    """What one benchmark run measures."""

    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    episodes: dict[str, int]
    candidates: tuple[str, ...]
    snapshots: Snapshots
    truth_episodes: int
    show_pairs: bool
    jobs: int = 1


@dataclass(frozen=True)
class Unit:
    """One environment and data seed: its candidates' pairs are judged together."""

    env: str
    seed: int


@dataclass
class UnitResult:
    """A unit's pairs, the lines it printed (or would have), and its own wall time."""

    unit: Unit
    results: list[PairResult]
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_settings(seed: int) -> LearnerSettings:
    """A run's settings (the product's defaults) for data seed ``seed``: the split, the
    trainer and CPE's bootstrap are seeded with it so that pairs are independent draws."""
    return LearnerSettings(
        seed=seed,
        progress=False,
        trainer=TrainerSettings(seed=seed, **SMOKE_TRAINER),
        cpe=CpeSettings(seed=seed, **SMOKE_CPE),
    )


def _ignore(*_: object) -> None:
    """What a unit run in a worker does with its progress: the parent prints its lines."""


@dataclass(frozen=True)
class Reporter:
    """Where a unit's progress goes: ``status`` what it is doing now, ``printed`` each line
    to print (its header, then one per pair), ``pair_done`` once per judged pair."""

    status: Callable[[str], None] = _ignore
    printed: Callable[[str], None] = _ignore
    pair_done: Callable[[], None] = _ignore


def run_unit(unit: Unit, plan: Plan, report: Reporter | None = None) -> UnitResult:
    """Log, split, train the candidates, then judge each against its truth."""
    report = report or Reporter()
    status = report.status
    started = time.perf_counter()
    env = ENVIRONMENTS[unit.env]
    seed = unit.seed
    settings = run_settings(seed)
    gamma = settings.cpe.gamma
    status(f"{env.name} seed {seed}: logging")
    data = env.logs(plan.episodes[env.name], seed)
    train_data, eval_data = split_by_episode(data, settings.eval_fraction, settings.seed)
    status(f"{env.name} seed {seed}: the logger's true value")
    logged_truth = env.logged_value(data, gamma=gamma, episodes=plan.truth_episodes)
    status(f"{env.name} seed {seed}: training")
    candidates = make_candidates(train_data, settings, plan.candidates, plan.snapshots)
    lengths = np.array([stop - start for start, stop in data.episode_slices()])
    out = UnitResult(unit, [])
    out.lines.append(
        f"{env.name} seed {seed}: {data.n_episodes} episodes (mean length {lengths.mean():.1f}), "
        f"{eval_data.n_episodes} eval; logger's true value {logged_truth.value:.4g}; trained in "
        + ", ".join(f"{c.name} {c.train_seconds:.0f}s" for c in candidates if c.train_seconds)
    )
    report.printed(out.lines[-1])
    for candidate in candidates:
        status(f"{env.name} seed {seed}: {candidate.name}")
        truth = (
            env.true_value(
                candidate.probs, data, gamma=gamma, episodes=plan.truth_episodes, seed=seed
            )
            if candidate.probs is not None
            else TrueValue(float("nan"), float("nan"), 0, False)
        )
        untruncated = (
            env.untruncated_value(
                candidate.probs, data, gamma=gamma, episodes=plan.truth_episodes, seed=seed
            )
            if candidate.probs is not None
            else None
        )
        result = judge_pair(
            env.name, seed, candidate, eval_data, settings, truth, logged_truth, untruncated
        )
        out.results.append(result)
        out.lines.append(f"  {pair_line(result)}")
        report.printed(out.lines[-1])
        report.pair_done()
    out.seconds = time.perf_counter() - started
    return out


def run_units(plan: Plan, report: Reporter) -> list[UnitResult]:
    """Every unit of ``plan``, in the plan's order: run here when ``plan.jobs`` is 1 (live
    progress), else in ``plan.jobs`` spawned workers (each unit reported as it finishes)."""
    units = [Unit(env, seed) for env in plan.envs for seed in plan.seeds]
    if plan.jobs <= 1:
        return [run_unit(u, plan, report) for u in units]
    by_unit: dict[Unit, UnitResult] = {}
    longest_first = sorted(units, key=lambda u: -ENVIRONMENTS[u.env].relative_cost)
    report.status(f"{len(units)} units in {plan.jobs} worker processes")
    with ProcessPoolExecutor(max_workers=plan.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_unit, u, plan) for u in longest_first]
        try:
            for future in as_completed(futures):
                result = future.result()
                by_unit[result.unit] = result
                for line in result.lines:
                    report.printed(line)
                for _ in result.results:
                    report.pair_done()
        except BaseException:  # a failed unit (or Ctrl-C): start no further unit
            for future in futures:
                future.cancel()
            raise
    return [by_unit[u] for u in units]


def pair_line(r: PairResult) -> str:
    """One pair in a line: the truth, the interval the decision rests on, the verdict."""
    if r.gate_interval is None:
        return f"{r.candidate}: not evaluated ({r.problem})"
    g = r.gate_interval
    return (
        f"{r.candidate} ({r.description}): truth {r.truth.value:.4g}, {r.rests_on} "
        f"[{g.low:.4g}, {g.high:.4g}] {'covers' if r.covered else 'MISSES'}; "
        f"{'publish' if r.published else 'reject'}; CPE {r.cpe_seconds:.0f}s"
        + (
            f"; without the time limit {r.untruncated.value:.4g}"
            f" {'covered' if r.covers_untruncated else 'MISSED'}"
            if r.untruncated is not None
            else ""
        )
    )
