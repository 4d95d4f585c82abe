"""Trainers: one-step reward model and offline Double DQN (CQL / BCQ), and the served policy."""

from learner.trainers.config import ALGORITHMS, ExplorationSettings, TrainerSettings
from learner.trainers.policy import PolicyModule, StochasticPolicy
from learner.trainers.result import TrainResult
from learner.trainers.train import choose_algorithm, train

__all__ = [
    "ALGORITHMS",
    "ExplorationSettings",
    "PolicyModule",
    "StochasticPolicy",
    "TrainResult",
    "TrainerSettings",
    "choose_algorithm",
    "train",
]
