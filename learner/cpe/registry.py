"""Estimators by name, and the set a run uses built from the settings."""

from __future__ import annotations

from learner.cpe.base import Estimator
from learner.cpe.fqe import FittedQEvaluation
from learner.cpe.one_step import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityScoring,
    SelfNormalizedDoublyRobust,
    SelfNormalizedIPS,
    SwitchDoublyRobust,
)
from learner.cpe.sequential import (
    MAGIC,
    PerDecisionIS,
    SequentialDoublyRobust,
    WeightedDoublyRobust,
    WeightedPerDecisionIS,
)

__all__ = ["ESTIMATORS", "estimator_label"]

ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls
    for cls in (
        InverseProbabilityScoring,
        SelfNormalizedIPS,
        DirectMethod,
        DoublyRobust,
        SelfNormalizedDoublyRobust,
        SwitchDoublyRobust,
        PerDecisionIS,
        WeightedPerDecisionIS,
        SequentialDoublyRobust,
        WeightedDoublyRobust,
        MAGIC,
        FittedQEvaluation,
    )
}


def estimator_label(name: str) -> str:
    """How people call an estimator ("weighted DR"); the name itself if unknown."""
    cls = ESTIMATORS.get(name)
    return cls.label if cls is not None else name
