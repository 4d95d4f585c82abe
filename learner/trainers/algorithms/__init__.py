"""The trainer's algorithms, one class each behind :class:`Algorithm`, found by name.

``TrainerSettings.algorithm`` names one of :data:`ALGORITHMS` (or ``auto``: ``bandit`` for
one-step data, else ``cql``). A new algorithm is a module here with an :class:`Algorithm`
subclass, an entry in :data:`ALGORITHMS`, and its name in ``TrainerSettings.algorithm``.
"""

from __future__ import annotations

from learner.trainers.algorithms.bandit import Bandit
from learner.trainers.algorithms.base import Algorithm
from learner.trainers.algorithms.bcq import BCQ
from learner.trainers.algorithms.cql import CQL
from learner.trainers.algorithms.dqn import DoubleDQN

__all__ = ["ALGORITHMS", "BCQ", "CQL", "Algorithm", "Bandit", "DoubleDQN", "algorithm_by_name"]

ALGORITHMS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (Bandit, DoubleDQN, CQL, BCQ)}


def algorithm_by_name(name: str) -> type[Algorithm]:
    """The class of the algorithm called ``name``; ValueError naming the known ones."""
    cls = ALGORITHMS.get(name)
    if cls is None:
        raise ValueError(f"algorithm: unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}")
    return cls
