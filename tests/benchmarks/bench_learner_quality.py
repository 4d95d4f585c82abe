"""Policy quality: offline CartPole-v1 from uniform-random logs, published policy in the env.

Target (issue 4): after training on logs of >= 1,000 uniform-random CartPole-v1 episodes, the
published policy's mean return over 100 episodes is >= 195 in at least 4 of 5 seeds, both
greedily and as served (stochastic); the gate's CPE estimate of the candidate's discounted
value is reported beside the true discounted value measured in the environment.

Two data paths:

* ``end_to_end`` (default): an embedded broker, episodes logged through the SDK's
  ``DecisionLogger``, sessionized into the Delta timeline by a ``SessionizerWorker``, then
  ``learner.run.run_once`` (train, CPE, gate, publish) and the *published* policy.pt;
* ``--in-memory``: the same episodes turned into ``LoggedData`` directly (tuning and fallback),
  then :func:`train_and_evaluate_from_logged`.

Run: ``.venv/bin/python -m tests.benchmarks bench_learner_quality`` (or
``.venv/bin/python -m tests.benchmarks.bench_learner_quality [--in-memory] [--seeds 0,1]``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from learner.data import LoggedData, split_by_episode
from learner.preprocessing.normalizer import fit_normalizer
from learner.serving import ServedPolicy, export_policy
from learner.trainers.config import TrainerSettings
from learner.trainers.training import train
from services.registry import load_policy
from tests.benchmarks.smoke import exit_code, sized

__all__ = [
    "FEATURES",
    "collect_random_cartpole",
    "main",
    "play_served",
    "train_and_evaluate_from_logged",
    "train_and_evaluate_from_timeline",
]

ENV_ID = "CartPole-v1"
FEATURES = ["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"]
GAMMA = 0.99
# 2,000 (the issue asks >= 1,000): in the in-memory sweep the worst of 5 data seeds rose
# from 138 to 187 greedy with the default trainer, and from 48 to 102 with cql_alpha 0.3 alone.
EPISODES = sized(2000, 40)
EVAL_EPISODES = sized(100, 2)
TARGET_RETURN = 195.0
SEEDS = sized((0, 1, 2, 3, 4), (0,))
# Smoke mode trains and evaluates for a few steps only: it proves the path, not the quality.
SMOKE_TRAINER: dict[str, Any] = sized({}, {"steps": 50, "ensemble_size": 1})
SMOKE_CPE: dict[str, Any] = sized({}, {"n_bootstrap": 20, "fqe": {"n_steps": 50}})


def collect_random_cartpole(episodes: int, seed: int) -> LoggedData:
    """Uniform-random CartPole episodes as LoggedData (terminal vs truncated kept apart)."""
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    cols: dict[str, list[Any]] = {k: [] for k in ("e", "t", "s", "s2", "a", "r", "term", "has")}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 1_000_003 + episode)
        step = 0
        while True:
            action = int(rng.integers(2))
            nxt, reward, terminated, truncated, _ = env.step(action)
            ended = terminated or truncated
            for key, value in zip(
                cols,
                (f"s{seed}-{episode}", step, obs, np.zeros(4) if ended else nxt, action, reward,
                 terminated, not ended),
                strict=True,
            ):  # fmt: skip
                cols[key].append(value)
            if ended:
                break
            obs, step = nxt, step + 1
    env.close()
    n = len(cols["a"])
    has = np.asarray(cols["has"], bool)
    possible = np.ones((n, 2), bool)
    return LoggedData(
        episode_ids=np.asarray(cols["e"], object),
        steps=np.asarray(cols["t"], np.int64),
        decision_ids=np.asarray([f"{e}/{t}" for e, t in zip(cols["e"], cols["t"], strict=True)]),
        states=np.asarray(cols["s"], np.float32),
        next_states=np.asarray(cols["s2"], np.float32),
        actions=np.asarray(cols["a"], np.int64),
        rewards=np.asarray(cols["r"], np.float64),
        terminals=np.asarray(cols["term"], bool),
        has_next=has,
        possible_mask=possible,
        next_possible_mask=possible & has[:, None],
        propensities=np.full(n, 0.5),
        logged_probs=np.full((n, 2), 0.5),
        feature_names=list(FEATURES),
        actions_space=["0", "1"],
        policy_versions=np.asarray(["uniform"] * n, object),
    )


@dataclass
class PlayResult:
    mean_return: float
    mean_discounted: float


def play_served(module: Any, episodes: int, seed: int, greedy: bool) -> PlayResult:
    """Play a served ``policy.pt`` module through its raw-state-map ``forward`` (as the SDK
    does); ``greedy`` takes the most probable action instead of sampling."""
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed + 17)
    actions = [int(a) for a in module.actions]
    returns, discounted = [], []
    with torch.no_grad():
        for episode in range(episodes):
            obs, _ = env.reset(seed=10_000_000 + seed * 1000 + episode)
            total, disc, g = 0.0, 0.0, 1.0
            while True:
                state = dict(zip(FEATURES, (float(v) for v in obs), strict=True))
                probs = np.asarray(module(state, [True, True]), dtype=np.float64)
                if greedy:
                    index = int(np.argmax(probs))
                else:
                    index = int(rng.choice(len(probs), p=probs / probs.sum()))
                obs, reward, terminated, truncated, _ = env.step(actions[index])
                total += reward
                disc += g * reward
                g *= GAMMA
                if terminated or truncated:
                    break
            returns.append(total)
            discounted.append(disc)
    env.close()
    return PlayResult(float(np.mean(returns)), float(np.mean(discounted)))


def train_and_evaluate_from_logged(
    data: LoggedData, seed: int, settings: TrainerSettings | None = None
) -> dict[str, Any]:
    """Split, normalize, train, export to policy.pt bytes, reload, play greedy and served."""
    train_data, _ = split_by_episode(data, 0.3, seed)
    normalizer = fit_normalizer(train_data.states, train_data.feature_names)
    settings = settings or TrainerSettings(seed=seed, **SMOKE_TRAINER)
    result = train(train_data, settings, normalizer, progress=False)
    blob = export_policy(result.policy, normalizer, data.feature_names, data.actions_space)
    module = load_policy(blob)
    greedy = play_served(module, EVAL_EPISODES, seed, greedy=True)
    served = play_served(module, EVAL_EPISODES, seed, greedy=False)
    return {
        "seed": seed,
        "rows": len(data),
        "samples_per_s": result.samples_per_s,
        "diverged": result.diverged,
        "greedy_return": greedy.mean_return,
        "served_return": served.mean_return,
        "true_discounted": served.mean_discounted,
        "cpe_estimate": None,
    }


def train_and_evaluate_from_timeline(timeline_uri: str, workdir: Path, seed: int) -> dict[str, Any]:
    """``learn --once`` on a timeline table (learner.run.run_once), then play the *published*
    policy from the registry; the gate's estimate is compared with the measured value."""
    from learner.run import run_once
    from learner.settings import LearnerSettings
    from services.registry import Registry

    settings = LearnerSettings(
        gate_log_uri=str(workdir / "gate_log"),
        registry_uri=str(workdir / "registry"),
        reports_dir=str(workdir / "reports"),
        seed=seed,
        trainer=TrainerSettings(seed=seed, **SMOKE_TRAINER),
        cpe=SMOKE_CPE,
    )
    started = time.perf_counter()
    run = run_once(settings, timeline_uri, force=True, progress=False)
    out: dict[str, Any] = {"seed": seed, "rows": run.rows, "status": run.status}
    out["run_once_s"] = time.perf_counter() - started
    out["sentence"] = run.sentence
    train_result = run.train_result
    out["samples_per_s"] = getattr(train_result, "samples_per_s", float("nan"))
    out["diverged"] = getattr(train_result, "diverged", None)
    out["cpe_estimate"] = _gate_value(run)
    version = run.published_version
    if version is not None:
        module, _manifest = Registry(settings.registry_uri, settings.policy_name).load(version)
    elif train_result is not None:
        # not published (the gate said no): measure the candidate anyway, and say so
        policy = train_result.policy
        module = ServedPolicy(policy.module, policy.feature_names, policy.actions).eval()
        out["note"] = "candidate measured although the gate did not publish it"
    else:
        out["greedy_return"] = out["served_return"] = out["true_discounted"] = float("nan")
        return out
    greedy = play_served(module, EVAL_EPISODES, seed, greedy=True)
    served = play_served(module, EVAL_EPISODES, seed, greedy=False)
    out.update(
        greedy_return=greedy.mean_return,
        served_return=served.mean_return,
        true_discounted=served.mean_discounted,
    )
    return out


def _gate_value(run: Any) -> float | None:
    cpe = run.candidate_cpe
    gate = run.gate_decision
    name = getattr(gate, "estimator", None) or "wdr"
    estimates = getattr(cpe, "estimates", None) or {}
    est = estimates.get(name) if isinstance(estimates, dict) else None
    if est is None and isinstance(estimates, dict) and estimates:
        est = next(iter(estimates.values()))
    return None if est is None else float(est.value)


def collect_through_sdk_and_sessionizer(
    episodes: int, seed: int, workdir: Path
) -> tuple[str, float]:
    """Uniform-random episodes logged through broker + SDK and sessionized into Delta.

    Returns the timeline URI and the seconds it took.
    """
    import asyncio

    from services.broker.embedded import start_broker, stop_broker
    from services.kafka_settings import KafkaSettings
    from services.kafka_topics import ensure_topics
    from services.sdk import DecisionLogger
    from services.sessionizer.settings import SessionizerSettings
    from services.sessionizer.worker import SessionizerWorker
    from services.simulator.fleet import UniformPolicy, play_episodes

    start = time.perf_counter()
    home = workdir / "broker"
    handle = start_broker(home, port=0)
    try:
        kafka = KafkaSettings(
            bootstrap_servers=handle.bootstrap_servers, topic_prefix=f"bench{seed}", partitions=4
        )
        ensure_topics(kafka)
        with DecisionLogger(kafka=kafka) as logger:
            play_episodes(ENV_ID, episodes, UniformPolicy(seed), logger, seed=seed * 1_000_003,
                          episode_prefix=f"s{seed}", gamma=GAMMA)  # fmt: skip
            logger.flush()
        uri = str(workdir / "timeline")
        sessionizer = SessionizerSettings(
            reward_window_s=5.0,
            rebalance_timeout_s=3.0,
            session_timeout_s=6.0,
        )
        worker = SessionizerWorker(kafka, sessionizer, table_uri=uri, until_idle_s=5.0)
        asyncio.run(worker.run())
    finally:
        stop_broker(home)
    return uri, time.perf_counter() - start


def _row(r: dict[str, Any]) -> str:
    est = r.get("cpe_estimate")
    true = r.get("true_discounted")
    rel = (
        f"{abs(est - true) / abs(true):6.1%}"
        if est is not None and true and np.isfinite(true)
        else "   n/a"
    )
    est_s = f"{est:8.2f}" if est is not None else "     n/a"
    return (
        f"seed {r['seed']}: rows {r['rows']:6d}  greedy {r['greedy_return']:6.1f}  served "
        f"{r['served_return']:6.1f}  true disc. value {true:6.2f}  gate estimate {est_s}  "
        f"rel. error {rel}  train {r['samples_per_s']:8.0f} samples/s"
        + (f"  run_once {r['run_once_s']:.0f}s" if "run_once_s" in r else "")
        + (f"  [{r.get('status')}: {r.get('sentence')}]" if "status" in r else "")
        + (f"  ({r['note']})" if "note" in r else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_learner_quality")
    parser.add_argument("--in-memory", action="store_true", help="skip broker/SDK/sessionizer")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--episodes", type=int, default=EPISODES)
    args = parser.parse_args(argv if argv is not None else [])
    seeds = [int(s) for s in args.seeds.split(",")]
    path = "in-memory LoggedData" if args.in_memory else "broker → SDK → sessionizer → Delta"
    print(f"CartPole-v1 offline quality: {args.episodes} uniform-random episodes per seed, "
          f"data path: {path}; eval {EVAL_EPISODES} episodes greedy and served")  # fmt: skip
    results = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
            if args.in_memory:
                data = collect_random_cartpole(args.episodes, seed)
                r = train_and_evaluate_from_logged(data, seed)
            else:
                uri, secs = collect_through_sdk_and_sessionizer(args.episodes, seed, Path(tmp))
                print(f"seed {seed}: logged and sessionized in {secs:.1f}s", flush=True)
                r = train_and_evaluate_from_timeline(uri, Path(tmp), seed)
        results.append(r)
        print(_row(r), flush=True)
    # end to end, a seed counts only when its policy was actually published by the gate
    counted = [r for r in results if r.get("status", "published") == "published"]
    ok_greedy = sum(r["greedy_return"] >= TARGET_RETURN for r in counted)
    ok_served = sum(r["served_return"] >= TARGET_RETURN for r in counted)
    if not args.in_memory:
        print(f"published by the gate: {len(counted)}/{len(results)} seeds")
    need = 4 if len(results) == 5 else int(np.ceil(0.8 * len(results)))
    met = ok_greedy >= need and ok_served >= need
    print(f"seeds with mean return >= {TARGET_RETURN}: greedy {ok_greedy}/{len(results)}, "
          f"served {ok_served}/{len(results)} (target: >= {need}) -> "
          f"{'TARGET MET' if met else 'TARGET MISSED'}")  # fmt: skip
    print("command: .venv/bin/python -m tests.benchmarks.bench_learner_quality "
          + " ".join(argv or []))  # fmt: skip
    return exit_code(met)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
