"""Coverage of the gate's interval on sequential data, against true values as served (issue 14).

The gate publishes when the lower bound of its estimate clears the logged policy's value; that
promise is only as good as the interval. For each environment (``chain``: the river chain of
``tests/learner/cpe/chain_mdp.py``, values solved exactly; ``CartPole-v1``; ``Taxi-v4`` --
gymnasium 1.4.0 registers Taxi-v4, not the issue's Taxi-v3), each data seed and each candidate
of varied quality (``early`` and ``late`` trainer snapshots, ``mixed`` with uniform,
``swapped``: mostly another action; see ``cpe_coverage_candidates``) it:

1. logs uniform-random episodes in-process through the fleet and the sessionizer's row builder
   (``cpe_coverage_logs``), splits train/eval as a run does;
2. trains the candidate with the learner's trainer and exports it to ``policy.pt``;
3. evaluates the served module on the eval split with the run's CPE and asks the gate
   (``cpe_coverage_pairs``: cold start, no incumbent);
4. measures the candidate's true discounted value (``cpe.gamma``) as served: sampling from its
   probabilities over ``--truth-episodes`` (2,000; the issue asks >= 500) episodes
   (``cpe_coverage_truth``), or exactly where the values can be solved: the chain, and Taxi
   from the model gymnasium publishes (``cpe_coverage_exact``); the logger's likewise.

It prints, per environment and overall: coverage of the interval of the estimate the decision
rests on (``GateDecision.estimator``), its mean width relative to the truth, publishes, false
publishes (published though not truly better than the logger by the gate's margin) and missed
publishes (truly better but rejected), wall time; every sequential estimator's coverage; and
one line per pair. Targets (issue 14; reported against, not tuned to): coverage >= 90% over
>= 40 pairs, 0 false publishes. The exit code is 0 only when both hold at >= 40 pairs.

Run: ``make bench BENCH=cpe_coverage`` (the defaults: 3 environments x 2 seeds x 4 candidates =
24 pairs, ~27 min on the shared 2-core dev machine, too few to judge the coverage target), or
with flags, e.g. the judged size ``.venv/bin/python -m tests.benchmarks.bench_cpe_coverage
--seeds 0,1,2,3`` (48 pairs: about an hour in one process there, by its parts; the
README's figures ran as three processes, chain and CartPole in one, Taxi's seeds 0,1 and 2,3
in the others, ~31 min; Taxi's CPE is 140-220 s a pair: bagged FQE on 500 one-hot
features), or a quick look ``--envs chain,CartPole-v1 --seeds 0,1 --episodes
CartPole-v1=1000 --candidates early,late,swapped``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from learner.cpe.config import CpeSettings
from learner.data import split_by_episode
from learner.settings import LearnerSettings
from learner.trainers.config import TrainerSettings
from tests.benchmarks.cpe_coverage_candidates import CANDIDATES, Snapshots, make_candidates
from tests.benchmarks.cpe_coverage_envs import ENVIRONMENTS, BenchEnvironment
from tests.benchmarks.cpe_coverage_pairs import PairResult, judge_pair
from tests.benchmarks.cpe_coverage_report import print_tables
from tests.benchmarks.cpe_coverage_truth import TrueValue
from tests.benchmarks.smoke import SMOKE, exit_code, sized

__all__ = ["Plan", "main", "run_settings"]

COMMAND = "make bench BENCH=cpe_coverage  (.venv/bin/python -m tests.benchmarks cpe_coverage)"
# 2 seeds: the default run fits ~30 min here; --seeds 0,1,2,3 gives the 48 pairs the target needs
SEEDS = sized((0, 1), (0,))
DEFAULT_CANDIDATES = ("early", "late", "mixed", "swapped")
SNAPSHOTS = sized(Snapshots(early=300, late=3000), Snapshots(early=20, late=40))
TRUTH_EPISODES = sized(2000, 20)
SMOKE_EPISODES = {"chain": 40, "CartPole-v1": 30, "Taxi-v4": 6}
TARGET_COVERAGE = 0.9
TARGET_PAIRS = 40
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


def run_settings(seed: int) -> LearnerSettings:
    """A run's settings (the product's defaults) for data seed ``seed``: the split, the
    trainer and CPE's bootstrap are seeded with it so that pairs are independent draws."""
    return LearnerSettings(
        seed=seed,
        progress=False,
        trainer=TrainerSettings(seed=seed, **SMOKE_TRAINER),
        cpe=CpeSettings(seed=seed, **SMOKE_CPE),
    )


def _episodes(text: str | None) -> dict[str, int]:
    """``--episodes``: one number for every environment, or ``name=N,...``."""
    out = {name: env.default_episodes for name, env in ENVIRONMENTS.items()}
    if SMOKE:
        out.update(SMOKE_EPISODES)
    if not text:
        return out
    if "=" not in text:
        return dict.fromkeys(out, int(text))
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name not in out:
            raise SystemExit(f"--episodes: unknown environment {name!r}; known: {list(out)}")
        out[name] = int(value)
    return out


def _plan(argv: list[str]) -> Plan:
    parser = argparse.ArgumentParser(prog="bench_cpe_coverage", description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default=",".join(ENVIRONMENTS), help="comma-separated")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="data seeds, e.g. 0,1")
    parser.add_argument("--episodes", help="uniform episodes logged: N for all, or name=N,...")
    parser.add_argument("--candidates", default=",".join(DEFAULT_CANDIDATES),
                        help=f"comma-separated, of {','.join(CANDIDATES)}")  # fmt: skip
    parser.add_argument("--early-steps", type=int, default=SNAPSHOTS.early)
    parser.add_argument("--late-steps", type=int, default=SNAPSHOTS.late)
    parser.add_argument("--truth-episodes", type=int, default=TRUTH_EPISODES,
                        help="episodes played per true value (the issue asks >= 500)")  # fmt: skip
    parser.add_argument("--no-pairs", action="store_true", help="omit the per-pair table")
    args = parser.parse_args(argv)
    envs = tuple(e for e in args.envs.split(",") if e)
    unknown = sorted(set(envs) - set(ENVIRONMENTS))
    candidates = tuple(c for c in args.candidates.split(",") if c)
    bad = sorted(set(candidates) - set(CANDIDATES))
    if unknown or bad:
        raise SystemExit(f"unknown environments {unknown} / candidates {bad}")
    return Plan(
        envs=envs,
        seeds=tuple(int(s) for s in args.seeds.split(",") if s),
        episodes=_episodes(args.episodes),
        candidates=candidates,
        snapshots=Snapshots(args.early_steps, args.late_steps),
        truth_episodes=args.truth_episodes,
        show_pairs=not args.no_pairs,
    )


def _describe(plan: Plan) -> None:
    s = run_settings(0)
    fqe, gate = s.cpe.fqe, s.gate
    print(f"CPE coverage on sequential data: {len(plan.envs)} environments x {len(plan.seeds)} "
          f"data seeds x {len(plan.candidates)} candidates = "
          f"{len(plan.envs) * len(plan.seeds) * len(plan.candidates)} pairs")  # fmt: skip
    for env in plan.envs:
        print(f"  {env}: {plan.episodes[env]:,} uniform-logger episodes per seed "
              f"(eval split {s.eval_fraction:.0%})")  # fmt: skip
    print(f"  seeds {list(plan.seeds)}; candidates {list(plan.candidates)}; trainer snapshots "
          f"early {plan.snapshots.early:,} / late {plan.snapshots.late:,} steps (product default "
          f"{TrainerSettings().steps:,}), ensemble {s.trainer.ensemble_size}")  # fmt: skip
    print(
        f"  truth: {plan.truth_episodes} served episodes per candidate ("
        f"{4 * plan.truth_episodes} for the logger), exact on the chain and where gymnasium "
        f"publishes the model (Taxi); gamma {s.cpe.gamma}"
    )
    print(
        f"  CPE: {s.cpe.n_bootstrap} resamples, {1 - s.cpe.alpha:.0%} intervals, bagged FQE "
        f"{fqe.members} members x {fqe.n_steps:,} steps; gate: {gate.sequential_estimator}, "
        f"min ESS {gate.min_effective_sample_size:g}, margin {gate.margin:g} "
        f"({gate.margin_kind}), model fallback {gate.model_fallback}; cold start (no incumbent)"
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pairs"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def _one_seed(
    env: BenchEnvironment, seed: int, plan: Plan, bar: Progress, task: Any
) -> list[PairResult]:
    """Log, split, train the candidates, then judge each against its truth."""
    settings = run_settings(seed)
    gamma = settings.cpe.gamma
    bar.update(task, description=f"{env.name} seed {seed}: logging")
    data = env.logs(plan.episodes[env.name], seed)
    train_data, eval_data = split_by_episode(data, settings.eval_fraction, settings.seed)
    bar.update(task, description=f"{env.name} seed {seed}: the logger's true value")
    logged_truth = env.logged_value(data, gamma=gamma, episodes=plan.truth_episodes)
    bar.update(task, description=f"{env.name} seed {seed}: training")
    candidates = make_candidates(train_data, settings, plan.candidates, plan.snapshots)
    lengths = np.array([stop - start for start, stop in data.episode_slices()])
    bar.console.print(
        f"{env.name} seed {seed}: {data.n_episodes} episodes (mean length {lengths.mean():.1f}), "
        f"{eval_data.n_episodes} eval; logger's true value {logged_truth.value:.4g}; trained in "
        + ", ".join(f"{c.name} {c.train_seconds:.0f}s" for c in candidates if c.train_seconds)
    )
    results = []
    for candidate in candidates:
        bar.update(task, description=f"{env.name} seed {seed}: {candidate.name}")
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
        results.append(result)
        bar.console.print(f"  {_pair_line(result)}")
        bar.advance(task)
    return results


def _pair_line(r: PairResult) -> str:
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


def _verdict(met: bool, enough: bool) -> str:
    if met:
        return "TARGET MET"
    return "TARGET MISSED" if enough else f"TARGET NOT JUDGED (fewer than {TARGET_PAIRS} pairs)"


def main(argv: list[str] | None = None) -> int:
    plan = _plan(argv if argv is not None else [])
    _describe(plan)
    results: list[PairResult] = []
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    total = len(plan.envs) * len(plan.seeds) * len(plan.candidates)
    with _progress() as bar:
        task = bar.add_task("starting", total=total)
        for name in plan.envs:
            env_started = time.perf_counter()
            for seed in plan.seeds:
                results += _one_seed(ENVIRONMENTS[name], seed, plan, bar, task)
            seconds[name] = time.perf_counter() - env_started
    gate = run_settings(0).gate
    overall = print_tables(results, seconds, gate, show_pairs=plan.show_pairs)
    enough = overall.evaluated >= TARGET_PAIRS
    met = enough and overall.coverage >= TARGET_COVERAGE and overall.false_publishes == 0
    print(f"\ntargets (issue 14): coverage >= {TARGET_COVERAGE:.0%} over >= {TARGET_PAIRS} pairs: "
          f"{overall.coverage:.1%} over {overall.evaluated}"
          f"{'' if enough else ' (too few pairs to judge)'}; 0 false publishes: "
          f"{overall.false_publishes} -> {_verdict(met, enough)}")  # fmt: skip
    print(f"wall time {time.perf_counter() - started:.0f}s")
    shown = ".venv/bin/python -m tests.benchmarks.bench_cpe_coverage"
    print("command: " + (" ".join([shown, *argv]) if argv else COMMAND))
    return exit_code(met)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
