"""The estimator catalog: every CPE estimator class by its name.

Settings name estimators (``CpeSettings.one_step_estimators``, ``GateSettings``); this is where
a name becomes a class. It imports every estimator (FQE imports torch), so settings validators
import it only when they run.
"""

from __future__ import annotations

from typing import Any

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

__all__ = ["ESTIMATORS", "estimator_by_name", "estimator_label"]

ESTIMATORS: dict[str, type[Estimator[Any]]] = {
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


def estimator_by_name(
    name: str, kind: str | None = None, *, field: str = "estimator"
) -> type[Estimator[Any]]:
    """The class of the estimator called ``name``; ValueError (naming ``field``) when no
    estimator has that name, or when it is not of ``kind`` (``one_step`` or ``sequential``)."""
    cls = ESTIMATORS.get(name)
    if cls is None:
        raise ValueError(f"{field}: unknown estimator {name!r}; known: {sorted(ESTIMATORS)}")
    if kind is not None and cls.kind != kind:
        raise ValueError(f"{field}: {name!r} is a {cls.kind} estimator, not {kind}")
    return cls
