"""Trainers: one-step reward model and offline Double DQN (CQL / BCQ), and the served policy.

Names are imported on first use (see ``services.lazy_exports``): the config sections are
imported by ``services.settings`` and must not pull torch into every CLI command.
"""

from services.lazy_exports import lazy_exports

_WHERE = {
    "ALGORITHMS": "learner.trainers.config",
    "ExplorationSettings": "learner.trainers.config",
    "PolicyModule": "learner.trainers.policy",
    "StochasticPolicy": "learner.trainers.policy",
    "TrainResult": "learner.trainers.result",
    "TrainerSettings": "learner.trainers.config",
    "choose_algorithm": "learner.trainers.training",
    "train": "learner.trainers.training",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
