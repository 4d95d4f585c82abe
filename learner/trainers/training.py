"""``train``: pick the algorithm for the data, warm start, fit, and wrap the served policy."""

from __future__ import annotations

import torch
from torch import nn

from learner.data.logged import LoggedData
from learner.preprocessing.config import PreprocessingSettings
from learner.preprocessing.normalizer import Normalizer, fit_normalizer
from learner.trainers.algorithms import algorithm_by_name
from learner.trainers.config import TrainerSettings
from learner.trainers.loop import fit
from learner.trainers.networks import q_network_template
from learner.trainers.policy import PolicyModule, StochasticPolicy
from learner.trainers.result import TrainResult
from learner.trainers.runtime import torch_session

__all__ = ["choose_algorithm", "train"]


def choose_algorithm(data: LoggedData, settings: TrainerSettings) -> str:
    """``auto`` means ``bandit`` for one-step data (every episode one decision), else ``cql``."""
    if settings.algorithm != "auto":
        return settings.algorithm
    return "bandit" if data.is_one_step else "cql"


def _warm_state(
    warm_start: nn.Module, expected: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The incumbent's Q-network weights if they fit the new network exactly, else why not.

    Accepts a Q-network, a ``PolicyModule`` or a served policy (anything with ``q_network``,
    possibly under ``policy``), scripted or not.
    """
    module = warm_start
    for attr in ("policy", "q_network"):
        if hasattr(module, attr):
            module = getattr(module, attr)
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if set(state) != set(expected):
        return None, (
            "warm start skipped: the incumbent's network has different layers (or another "
            "ensemble size)"
        )
    for key, value in expected.items():
        if state[key].shape != value.shape:
            return None, (
                f"warm start skipped: {key} has shape {tuple(state[key].shape)} in the incumbent, "
                f"{tuple(value.shape)} now (features, actions or hidden sizes changed)"
            )
    return state, "warm started from the incumbent's Q-network"


def train(
    train_data: LoggedData,
    settings: TrainerSettings | None = None,
    normalizer: Normalizer | None = None,
    warm_start: nn.Module | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a policy on ``train_data`` (see :mod:`learner.trainers.algorithms` for the methods).

    ``normalizer`` defaults to one fitted on ``train_data`` with default settings. A run with
    the same data, settings and seed gives identical weights. Divergence (non-finite loss,
    exploding Q) stops training early and is reported in ``diverged``/``divergence_reason``;
    the returned policy must then not be published.
    """
    settings = settings or TrainerSettings()
    if len(train_data) == 0:
        raise ValueError("train_data: no rows to train on")
    if train_data.n_actions == 0:
        raise ValueError("train_data: the action space is empty")
    if normalizer is None:
        normalizer = fit_normalizer(
            train_data.states, train_data.feature_names, PreprocessingSettings()
        )
    if normalizer.feature_names != train_data.feature_names:
        raise ValueError("normalizer: its feature names differ from train_data.feature_names")
    algorithm = algorithm_by_name(choose_algorithm(train_data, settings))(settings)
    notes = algorithm.notes(train_data)
    with torch_session(settings.seed, settings.deterministic, settings.num_threads):
        q_init = None
        if warm_start is not None and settings.warm_start:
            probe = q_network_template(
                normalizer.out_features,
                train_data.n_actions,
                settings.hidden_sizes,
                settings.ensemble_size,
            )
            q_init, note = _warm_state(warm_start, probe.state_dict())
            notes.append(note)
        outcome = fit(train_data, normalizer, settings, algorithm, q_init, progress)
    module = PolicyModule(
        normalizer.as_module(),
        outcome.q_network,
        outcome.imitator,
        outcome.bcq_threshold,
        settings.exploration,
    )
    policy = StochasticPolicy(module, train_data.feature_names, train_data.actions_space)
    # every ensemble member draws its own mini-batch: samples count them all
    samples = outcome.steps * outcome.batch_size * settings.ensemble_size
    return TrainResult(
        q_network=outcome.q_network,
        policy=policy,
        history=outcome.history,
        diverged=outcome.diverged,
        divergence_reason=outcome.divergence_reason,
        algorithm=algorithm.name,
        samples_per_s=samples / outcome.seconds if outcome.seconds > 0 else 0.0,
        steps=outcome.steps,
        train_seconds=outcome.seconds,
        warm_started=q_init is not None,
        notes=notes,
    )
