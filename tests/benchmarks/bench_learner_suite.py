"""The learner's defaults on a suite, not one environment (issue 14, item 3).

For each member of the suite, each data seed: uniform-random logs (the fleet's uniform policy,
rows built by the sessionizer's row builder: ``cpe_coverage_logs``), split as a run splits
them; the product's default trainer trains on the train split and its exported module is
played *as served* (sampling its probabilities) for the true return; the default gate judges it
on the eval split (cold start: against the logger); d3rlpy 2.8.1's ``DiscreteCQL`` trains on
the same train split with the same gradient steps and batch size, once with its own defaults
and once with the product trainer's learning rate and target period (``matched``), and is
played greedily over the possible actions (``learner_suite_d3rlpy``). The suite:

* ``chain``: the river chain of ``tests/learner/cpe/chain_mdp.py`` (values solved exactly);
* ``CartPole-v1`` (2,000 episodes), ``Taxi-v4`` (500; gymnasium 1.4.0's name for Taxi-v3:
  discrete observations one-hot, 6 actions, 200-step episodes), ``MountainCar-v0`` (300: no
  uniform episode reaches the goal, so nothing is provably better and the gate must reject);
* ``bandit``: the recommendation bandit (``policyloop/Recommendation-v0``, one step).

It prints one line per (member, seed): the logger's and the default's mean return as served,
the default's true discounted value, the gate's verdict and whether its interval held the
truth, d3rlpy's return, and the targets of issue 14 that the suite judges: Taxi as served >=
d3rlpy DiscreteCQL; MountainCar rejected; CartPole >= 195 as served; no false publish.

Run: ``make bench BENCH=learner_suite`` (every member, seed 0: ~30 min on the shared 2-core dev
machine), or e.g. ``.venv/bin/python -m tests.benchmarks.bench_learner_suite --envs Taxi-v4
--seeds 0,1 --baselines cql,bcq``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from rich.console import Console

from learner.data import split_by_episode
from learner.settings import LearnerSettings
from services.simulator.recommendation_env import ENV_ID as BANDIT_ENV_ID
from tests.benchmarks.bench_cpe_coverage import run_settings
from tests.benchmarks.cpe_coverage_candidates import Candidate, train_served
from tests.benchmarks.cpe_coverage_envs import BenchEnvironment, ChainEnvironment, GymEnvironment
from tests.benchmarks.cpe_coverage_pairs import PairResult, judge_pair
from tests.benchmarks.learner_suite_d3rlpy import fit_d3rlpy
from tests.benchmarks.smoke import SMOKE, exit_code, sized

__all__ = ["SUITE", "main"]

COMMAND = "make bench BENCH=learner_suite  (.venv/bin/python -m tests.benchmarks learner_suite)"
TRUTH_EPISODES = sized(500, 10)
CARTPOLE_TARGET = 195.0


def _suite() -> dict[str, tuple[str, BenchEnvironment, int]]:
    """Display name -> (environment, uniform episodes logged)."""
    return {
        "chain": ("chain", ChainEnvironment(), sized(1000, 40)),
        "CartPole-v1": ("CartPole-v1", GymEnvironment("CartPole-v1", 2000), sized(2000, 30)),
        "Taxi-v4": ("Taxi-v4", GymEnvironment("Taxi-v4", 500), sized(500, 6)),
        "MountainCar-v0": (
            "MountainCar-v0",
            GymEnvironment("MountainCar-v0", 300),
            sized(300, 4),
        ),
        "bandit": ("bandit", GymEnvironment(BANDIT_ENV_ID, 5000), sized(5000, 200)),
    }


SUITE = _suite()


@dataclass(frozen=True)
class SuiteRow:
    """One (member, seed): the default's pair (gate, truths) and the baselines' returns."""

    env: str
    seed: int
    pair: PairResult
    train_seconds: float
    baselines: dict[str, float]
    baseline_seconds: dict[str, float]


def _settings(seed: int) -> LearnerSettings:
    settings = run_settings(seed)
    if SMOKE:
        trainer = settings.trainer.model_copy(update={"steps": 30})
        settings = settings.model_copy(update={"trainer": trainer})
    return settings


def _one(name: str, seed: int, baselines: list[str], console: Console) -> SuiteRow:
    label, env, episodes = SUITE[name]
    settings = _settings(seed)
    gamma = settings.cpe.gamma
    data = env.logs(episodes, seed)
    train_data, eval_data = split_by_episode(data, settings.eval_fraction, settings.seed)
    logged = env.logged_value(data, gamma=gamma, episodes=TRUTH_EPISODES)
    trained = train_served(
        train_data, settings, settings.trainer.steps, list(train_data.actions_space)
    )
    candidate = Candidate("default", "the default trainer", trained.probs, trained.seconds,
                          trained.problem)  # fmt: skip
    truth = (
        env.true_value(trained.probs, data, gamma=gamma, episodes=TRUTH_EPISODES, seed=seed)
        if trained.probs is not None
        else logged
    )
    pair = judge_pair(label, seed, candidate, eval_data, settings, truth, logged)
    returns: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for kind in baselines:
        run = fit_d3rlpy(kind, train_data, steps=settings.trainer.steps,
                         batch=settings.trainer.batch_size, gamma=gamma, seed=seed)  # fmt: skip
        value = env.true_value(run.policy, data, gamma=gamma, episodes=TRUTH_EPISODES, seed=seed)
        returns[run.name] = _shown_return(value.mean_return, value.value)
        seconds[run.name] = run.seconds
    row = SuiteRow(label, seed, pair, trained.seconds, returns, seconds)
    console.print(_line(row))
    return row


def _shown_return(mean_return: float, value: float) -> float:
    """The undiscounted mean return, or the discounted value where only that is known (the
    chain is solved exactly, not played)."""
    return value if mean_return != mean_return else mean_return


def _line(row: SuiteRow) -> str:
    p = row.pair
    logger = _shown_return(p.logged_truth.mean_return, p.logged_truth.value)
    ours = _shown_return(p.truth.mean_return, p.truth.value)
    gate = "not evaluated" if p.gate_interval is None else (
        f"{'PUBLISH' if p.published else 'reject'} on {p.rests_on} "
        f"[{p.gate_interval.low:.4g}, {p.gate_interval.high:.4g}] "
        f"{'covers' if p.covered else 'MISSES'} the true value {p.truth.value:.4g}"
    )  # fmt: skip
    theirs = ", ".join(
        f"{name} {value:.4g} ({row.baseline_seconds[name]:.0f}s)"
        for name, value in row.baselines.items()
    )
    return (f"{row.env:15s} seed {row.seed}: logger {logger:.4g}, default as served {ours:.4g} "
            f"(trained {row.train_seconds:.0f}s); gate {gate}; {theirs}")  # fmt: skip


def _targets(rows: list[SuiteRow]) -> list[tuple[str, bool]]:
    """Issue 14's targets that the suite judges, each with whether it held."""
    gate = run_settings(0).gate
    out = [("no false publish", not any(r.pair.false_publish(gate) for r in rows))]
    for r in rows:
        p = r.pair
        ours = _shown_return(p.truth.mean_return, p.truth.value)
        for name, cql in r.baselines.items():
            if r.env == "Taxi-v4" and name.startswith("d3rlpy DiscreteCQL"):
                words = f"Taxi seed {r.seed}: as served {ours:.4g} >= {name} {cql:.4g}"
                out.append((words, ours >= cql))
        if r.env == "MountainCar-v0":
            out.append((f"MountainCar seed {r.seed}: rejected", not p.published))
        if r.env == "CartPole-v1":
            out.append((f"CartPole seed {r.seed}: {ours:.4g} >= {CARTPOLE_TARGET:g} as served",
                        ours >= CARTPOLE_TARGET))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_learner_suite", description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default=",".join(SUITE), help="comma-separated")
    parser.add_argument("--seeds", default="0", help="data seeds, e.g. 0,1")
    parser.add_argument("--baselines", default="cql,cql-matched",
                        help="d3rlpy algorithms: cql, bcq, cql-matched, bcq-matched")  # fmt: skip
    args = parser.parse_args(argv if argv is not None else [])
    names = [e for e in args.envs.split(",") if e]
    unknown = sorted(set(names) - set(SUITE))
    if unknown:
        raise SystemExit(f"unknown suite members {unknown}; known: {list(SUITE)}")
    baselines = [b for b in args.baselines.split(",") if b]
    t = _settings(0).trainer
    console = Console(soft_wrap=True)
    console.print(f"learner suite: {names}, seeds {args.seeds}; default trainer {t.algorithm} "
                  f"x{t.ensemble_size}, {t.steps:,} steps x {t.batch_size}; baselines "
                  f"{baselines} with the same steps and batch; truths over {TRUTH_EPISODES} "
                  "episodes as served (exact on the chain and Taxi)")  # fmt: skip
    started = time.perf_counter()
    rows = [
        _one(name, int(seed), baselines, console)
        for name in names
        for seed in args.seeds.split(",")
        if seed
    ]
    targets = _targets(rows)
    for words, held in targets:
        console.print(f"  {'met   ' if held else 'MISSED'} {words}")
    met = all(held for _, held in targets)
    console.print(f"{'TARGETS MET' if met else 'TARGETS MISSED'}; wall time "
                  f"{time.perf_counter() - started:.0f}s")  # fmt: skip
    shown = ".venv/bin/python -m tests.benchmarks.bench_learner_suite"
    console.print("command: " + (" ".join([shown, *argv]) if argv else COMMAND))
    return exit_code(met)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
