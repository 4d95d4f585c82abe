"""Training speed of the sequential trainer vs d3rlpy 2.8.1 DiscreteCQL, in the same run.

Same data (uniform-random CartPole-v1 transitions), same batch size, same network (MLP 256-256),
same number of gradient steps, same torch thread count; samples/s = steps x batch / fit time.
Both policies are then played greedily in CartPole so the speed is compared at a known return.
Target (issue 4): >= 3x d3rlpy's samples/s at equal or better return. Needs the ``bench``
extra (``d3rlpy==2.8.1``).

Run: ``.venv/bin/python -m tests.benchmarks trainer_speed``.
"""

from __future__ import annotations

import logging
import sys
import time

import gymnasium as gym
import numpy as np
import torch

from learner.trainers import TrainerSettings, train
from tests.benchmarks.bench_learner_quality import collect_random_cartpole

BATCH = 256
STEPS = 3000
HIDDEN = [256, 256]
THREADS = 2
EPISODES = 1000
EVAL_EPISODES = 20
TARGET_RATIO = 3.0
TARGET_UPDATE = 50  # hard target update period, the same for both (policyloop's default)


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


def _d3rlpy(data, steps: int, batch: int) -> tuple[float, float]:
    import d3rlpy
    from d3rlpy.algos import DiscreteCQLConfig
    from d3rlpy.logging import NoopAdapterFactory
    from d3rlpy.models.encoders import VectorEncoderFactory

    logging.getLogger("d3rlpy").setLevel(logging.WARNING)
    d3rlpy.seed(0)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data.states,
        actions=data.actions.reshape(-1, 1),
        rewards=data.rewards.astype(np.float32),
        terminals=data.terminals.astype(np.float32),
        timeouts=(~data.terminals & ~data.has_next).astype(np.float32),
        action_space=d3rlpy.ActionSpace.DISCRETE,
        action_size=2,
    )
    cql = DiscreteCQLConfig(
        batch_size=batch,
        learning_rate=1e-3,
        gamma=0.99,
        alpha=1.0,
        target_update_interval=TARGET_UPDATE,
        encoder_factory=VectorEncoderFactory(hidden_units=HIDDEN),
    ).create(device="cpu:0")
    cql.build_with_dataset(dataset)
    start = time.perf_counter()
    cpu = time.process_time()
    cql.fit(
        dataset,
        n_steps=steps,
        n_steps_per_epoch=steps,
        show_progress=False,
        logger_adapter=NoopAdapterFactory(),
        save_interval=10**9,
    )
    seconds = time.perf_counter() - start
    cpu_ms = 1000 * (time.process_time() - cpu) / steps
    ret = _play(lambda obs: int(cql.predict(obs[None].astype(np.float32))[0]))
    return steps * batch / seconds, ret, cpu_ms


def _compare(data, batch: int, steps: int) -> bool:
    settings = TrainerSettings(algorithm="cql", batch_size=batch, hidden_sizes=HIDDEN,
                               steps=steps, num_threads=THREADS, seed=0,
                               target_update_interval=TARGET_UPDATE)  # fmt: skip
    cpu = time.process_time()
    result = train(data, settings, progress=False)
    ours_cpu_ms = 1000 * (time.process_time() - cpu) / steps
    ours_ret = _play(lambda obs: int(result.policy.greedy_actions(obs[None])[0]))
    theirs_sps, theirs_ret, theirs_cpu_ms = _d3rlpy(data, steps, batch)
    ratio = result.samples_per_s / theirs_sps
    met = ratio >= TARGET_RATIO and ours_ret >= theirs_ret
    # CPU time per step (all threads) is printed too: on a shared machine it is less noisy
    # than wall time, which the target is measured on.
    print(f"batch {batch:4d}, {steps} steps: policyloop cql {result.samples_per_s:9.0f} samples/s "
          f"({ours_cpu_ms:.2f} CPU ms/step, greedy return {ours_ret:.1f}); d3rlpy 2.8.1 "
          f"DiscreteCQL {theirs_sps:9.0f} samples/s ({theirs_cpu_ms:.2f} CPU ms/step, greedy "
          f"return {theirs_ret:.1f}); ratio {ratio:.2f}x (CPU time "
          f"{theirs_cpu_ms / ours_cpu_ms:.2f}x) -> {'met' if met else 'missed'}",
          flush=True)  # fmt: skip
    return met


def main() -> int:
    torch.set_num_threads(THREADS)
    try:
        import d3rlpy  # noqa: F401
    except ImportError:
        print("d3rlpy is not installed: pip install -e '.[bench]' (d3rlpy==2.8.1)")
        return 1
    data = collect_random_cartpole(EPISODES, seed=0)
    print(f"data: {len(data)} transitions from {EPISODES} uniform-random CartPole-v1 episodes; "
          f"MLP {HIDDEN}, {THREADS} torch threads; target >= {TARGET_RATIO}x d3rlpy's samples/s "
          "at equal or better greedy return")  # fmt: skip
    # d3rlpy's default batch (32) and policyloop's default batch (256), same steps for both
    met = [_compare(data, batch, steps) for batch, steps in ((32, 6000), (BATCH, STEPS))]
    print(f"{'TARGET MET' if all(met) else 'TARGET MISSED'} "
          f"(at {sum(met)} of {len(met)} batch sizes)")  # fmt: skip
    print("command: .venv/bin/python -m tests.benchmarks trainer_speed")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
