"""Training speed of the sequential trainer vs d3rlpy 2.8.1 DiscreteCQL, in the same run.

Same data (the quality benchmark's 2,000 uniform-random CartPole-v1 episodes), same algorithm
and hyper-parameters (discrete CQL, alpha 1.0, constant learning rate 1e-3, gamma 0.99, hard
target update every 50 steps: d3rlpy's DiscreteCQL defaults but the update period), same batch
size, same network (one MLP 256-256: ``ensemble_size=1``), same number of gradient steps, same
torch thread count; samples/s = steps x batch / fit time. Each side trains on ``SEEDS`` seeds and
every trained policy is played greedily in CartPole, so that the speed is compared at a known
return (one seed's return can vary by a factor of two, hence the mean over seeds).
Target (issue 4): >= 3x d3rlpy's samples/s at equal or better return. Needs the ``bench``
extra (``d3rlpy==2.8.1``).

Run: ``.venv/bin/python -m tests.benchmarks trainer_speed``.
"""

from __future__ import annotations

import sys
import time

import gymnasium as gym
import numpy as np
import torch

from learner.trainers.config import TrainerSettings
from learner.trainers.training import train
from tests.benchmarks.bench_learner_quality import collect_random_cartpole
from tests.benchmarks.learner_suite_d3rlpy import d3rlpy_dataset, fit_quietly
from tests.benchmarks.smoke import exit_code, sized

HIDDEN = [256, 256]
THREADS = 2
EPISODES = sized(2000, 30)
SEEDS = sized((0, 1, 2), (0,))
#: (batch size, gradient steps): policyloop's default batch, and d3rlpy's
RUNS = sized(((256, 6000), (32, 6000)), ((32, 50),))
EVAL_EPISODES = sized(20, 2)
TARGET_RATIO = 3.0
TARGET_UPDATE = 50  # hard target update period, the same for both (policyloop's default)
CQL_ALPHA = 1.0  # d3rlpy's default, for both
LEARNING_RATE = 1e-3  # constant, for both


def _play(act, episodes: int = EVAL_EPISODES) -> float:
    env = gym.make("CartPole-v1")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=5_000_000 + episode)
        total = 0.0
        while True:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += reward
            if terminated or truncated:
                break
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def _d3rlpy(data, steps: int, batch: int, seed: int) -> tuple[float, float, float]:
    import d3rlpy
    from d3rlpy.algos import DiscreteCQLConfig
    from d3rlpy.models.encoders import VectorEncoderFactory

    d3rlpy.seed(seed)
    dataset = d3rlpy_dataset(data)
    cql = DiscreteCQLConfig(
        batch_size=batch,
        learning_rate=LEARNING_RATE,
        gamma=0.99,
        alpha=CQL_ALPHA,
        target_update_interval=TARGET_UPDATE,
        encoder_factory=VectorEncoderFactory(hidden_units=HIDDEN),
    ).create(device="cpu:0")
    cql.build_with_dataset(dataset)
    start = time.perf_counter()
    cpu = time.process_time()
    fit_quietly(cql, dataset, steps)
    seconds = time.perf_counter() - start
    cpu_ms = 1000 * (time.process_time() - cpu) / steps
    ret = _play(lambda obs: int(cql.predict(obs[None].astype(np.float32))[0]))
    return steps * batch / seconds, ret, cpu_ms


def _ours(data, steps: int, batch: int, seed: int) -> tuple[float, float, float]:
    settings = TrainerSettings(algorithm="cql", batch_size=batch, hidden_sizes=HIDDEN,
                               steps=steps, num_threads=THREADS, seed=seed, ensemble_size=1,
                               cql_alpha=CQL_ALPHA, learning_rate=LEARNING_RATE,
                               final_lr_fraction=1.0,
                               target_update_interval=TARGET_UPDATE)  # fmt: skip
    cpu = time.process_time()
    result = train(data, settings, progress=False)
    cpu_ms = 1000 * (time.process_time() - cpu) / steps
    ret = _play(lambda obs: int(result.policy.greedy_actions(obs[None])[0]))
    return result.samples_per_s, ret, cpu_ms


def _side(fit, data, steps: int, batch: int) -> tuple[float, float, float, list[float]]:
    """Samples/s over all seeds (total samples / total fit time), mean return, mean CPU
    ms/step, and each seed's return."""
    runs = [fit(data, steps, batch, seed) for seed in SEEDS]
    seconds = sum(steps * batch / sps for sps, _, _ in runs)
    returns = [ret for _, ret, _ in runs]
    cpu_ms = float(np.mean([cpu for _, _, cpu in runs]))
    return len(runs) * steps * batch / seconds, float(np.mean(returns)), cpu_ms, returns


def _compare(data, batch: int, steps: int) -> bool:
    ours_sps, ours_ret, ours_cpu, ours_all = _side(_ours, data, steps, batch)
    theirs_sps, theirs_ret, theirs_cpu, theirs_all = _side(_d3rlpy, data, steps, batch)
    ratio = ours_sps / theirs_sps
    met = ratio >= TARGET_RATIO and ours_ret >= theirs_ret
    # CPU time per step (all threads) is printed too: on a shared machine it is less noisy
    # than wall time, which the target is measured on.
    print(f"batch {batch:4d}, {steps} steps, seeds {list(SEEDS)}:\n"
          f"  policyloop cql       {ours_sps:9.0f} samples/s ({ours_cpu:.2f} CPU ms/step), "
          f"greedy return {ours_ret:.1f} (per seed {_fmt(ours_all)})\n"
          f"  d3rlpy 2.8.1 DiscreteCQL {theirs_sps:9.0f} samples/s ({theirs_cpu:.2f} CPU "
          f"ms/step), greedy return {theirs_ret:.1f} (per seed {_fmt(theirs_all)})\n"
          f"  ratio {ratio:.2f}x (CPU time {theirs_cpu / ours_cpu:.2f}x), return "
          f"{'equal or better' if ours_ret >= theirs_ret else 'WORSE'} -> "
          f"{'met' if met else 'missed'}", flush=True)  # fmt: skip
    return met


def _fmt(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def main() -> int:
    torch.set_num_threads(THREADS)
    try:
        import d3rlpy  # noqa: F401
    except ImportError:
        print("d3rlpy is not installed: `make bench` installs it (pip install -e '.[bench]' and "
              "pip install --no-deps d3rlpy==2.8.1)")  # fmt: skip
        return 1
    data = collect_random_cartpole(EPISODES, seed=0)
    print(f"data: {len(data)} transitions from {EPISODES} uniform-random CartPole-v1 episodes; "
          f"MLP {HIDDEN}, {THREADS} torch threads; target >= {TARGET_RATIO}x d3rlpy's samples/s "
          "at equal or better greedy return")  # fmt: skip
    met = [_compare(data, batch, steps) for batch, steps in RUNS]
    print(f"{'TARGET MET' if all(met) else 'TARGET MISSED'} "
          f"(at {sum(met)} of {len(met)} batch sizes)")  # fmt: skip
    print("command: .venv/bin/python -m tests.benchmarks trainer_speed")
    return exit_code(all(met))


if __name__ == "__main__":
    sys.exit(main())
