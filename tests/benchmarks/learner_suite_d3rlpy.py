"""d3rlpy's offline DQN family on the learner suite's data: the baseline each member is held to.

The issue's bar is d3rlpy 2.8.1's ``DiscreteCQL`` on the same data and budget (gradient steps
and batch size of the product's trainer defaults, one torch thread each). d3rlpy serves
greedily and knows nothing of a decision's possible actions, so its policy here is the argmax
of its Q-values over the *possible* actions (generous to it: it never picks an action the
environment masks out).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from learner.data import LoggedData
from tests.benchmarks.cpe_coverage_policies import PolicyProbs

__all__ = ["D3rlpyGreedy", "D3rlpyRun", "d3rlpy_dataset", "fit_d3rlpy", "fit_quietly"]

HIDDEN = [256, 256]


@dataclass(frozen=True)
class D3rlpyGreedy:
    """A fitted d3rlpy Q-learner as a :class:`PolicyProbs`: one-hot on the best possible
    action."""

    algo: object
    n_actions: int

    def __call__(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = np.nan_to_num(np.ascontiguousarray(states, dtype=np.float32))
        q = np.stack(
            [
                self.algo.predict_value(x, np.full(len(x), a, dtype=np.int64))  # type: ignore[attr-defined]
                for a in range(self.n_actions)
            ],
            axis=1,
        )
        best = np.where(mask, q, -np.inf).argmax(axis=1)
        out = np.zeros(mask.shape, np.float64)
        out[np.arange(len(best)), best] = 1.0
        return out


@dataclass(frozen=True)
class D3rlpyRun:
    """A fitted baseline: its greedy policy and the seconds the fit took."""

    name: str
    policy: PolicyProbs
    seconds: float


def d3rlpy_dataset(data: LoggedData) -> object:
    """``data`` as d3rlpy's ``MDPDataset``: a truncated episode's last row is a timeout (no
    bootstrap target), an ended one's a terminal; a missing feature (NaN) is 0."""
    import d3rlpy

    return d3rlpy.dataset.MDPDataset(
        observations=np.nan_to_num(data.states.astype(np.float32)),
        actions=data.actions.reshape(-1, 1),
        rewards=data.rewards.astype(np.float32),
        terminals=data.terminals.astype(np.float32),
        timeouts=(~data.terminals & ~data.has_next).astype(np.float32),
        action_space=d3rlpy.ActionSpace.DISCRETE,
        action_size=data.n_actions,
    )


def fit_quietly(algo: Any, dataset: object, steps: int) -> None:
    """``steps`` gradient steps of a built d3rlpy algorithm, one epoch, no progress bar, no
    log files or saved models, and d3rlpy's structlog output (per-run info and warnings on
    stdout) kept out of the benchmark's figures."""
    import structlog
    from d3rlpy.logging import NoopAdapterFactory

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    algo.fit(
        dataset,
        n_steps=steps,
        n_steps_per_epoch=steps,
        show_progress=False,
        logger_adapter=NoopAdapterFactory(),
        save_interval=10**9,
    )


def fit_d3rlpy(
    name: str, data: LoggedData, *, steps: int, batch: int, gamma: float, seed: int
) -> D3rlpyRun:
    """Fit d3rlpy's ``DiscreteCQL`` (``name="cql"``, its default alpha 1.0) or ``DiscreteBCQ``
    (``"bcq"``) with its defaults, an MLP 256-256, ``steps`` steps of ``batch`` rows. d3rlpy's
    defaults (learning rate 6.25e-5, a target update every 8,000 steps) are tuned for long Atari
    runs; ``"cql-matched"`` / ``"bcq-matched"`` use the product trainer's learning rate (1e-3)
    and target update period (50) instead, the stronger baseline for a short budget."""
    import d3rlpy
    from d3rlpy.algos import DiscreteBCQConfig, DiscreteCQLConfig
    from d3rlpy.models.encoders import VectorEncoderFactory

    # one torch thread, as the product's trainer uses by default: on a shared machine a second
    # spinning OpenMP thread slowed training by an order of magnitude (TrainerSettings.num_threads)
    torch.set_num_threads(1)
    d3rlpy.seed(seed)
    dataset = d3rlpy_dataset(data)
    encoder = VectorEncoderFactory(hidden_units=HIDDEN)
    kind, _, variant = name.partition("-")
    config = DiscreteCQLConfig if kind == "cql" else DiscreteBCQConfig
    matched = {"learning_rate": 1e-3, "target_update_interval": 50} if variant else {}
    algo = config(batch_size=batch, gamma=gamma, encoder_factory=encoder, **matched).create(
        device="cpu:0"
    )
    algo.build_with_dataset(dataset)
    started = time.perf_counter()
    fit_quietly(algo, dataset, steps)
    return D3rlpyRun(
        f"d3rlpy Discrete{kind.upper()}" + (f" ({variant})" if variant else ""),
        D3rlpyGreedy(algo, data.n_actions),
        time.perf_counter() - started,
    )
