"""What the stages of a learner run hand to each other, and what the run returns.

Each stage takes the records of the stages before it and returns its own (``once.py`` reads
top to bottom as the run): the pinned timeline, the data read and split, the incumbent, the
trained candidate, its evaluation and the gate's decision. A stage that ends the run (no data,
nothing new, a rejection, a publication) returns the :class:`RunResult` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from learner.cpe.estimate import Estimate
from learner.cpe.evaluate import CpeResult
from learner.data.logged import LoggedData
from learner.gate_verdict import GateDecision
from learner.preprocessing.normalizer import Normalizer
from learner.trainers.config import TrainerSettings
from learner.trainers.result import TrainResult

__all__ = [
    "Candidate",
    "Evaluation",
    "GateResult",
    "Incumbent",
    "PinnedTimeline",
    "RunData",
    "RunResult",
    "Window",
    "finite_or_none",
]


@dataclass
class RunResult:
    """What one run did. ``status``: published | rejected | skipped | failed."""

    run_id: str
    status: str
    sentence: str
    reasons: list[str] = field(default_factory=list)
    table_uri: str = ""
    table_version: int | None = None
    rows: int = 0
    episodes: int = 0
    algorithm: str | None = None
    published_version: str | None = None
    promoted: bool = False  # True when this run also swapped CURRENT to published_version
    incumbent_version: str | None = None
    report_path: str | None = None
    metrics_target: str | None = None
    error: str | None = None
    candidate_cpe: Any = None
    incumbent_cpe: Any = None
    train_result: Any = None
    gate_decision: Any = None
    eval_data: Any = None  # the LoggedData CPE ran on (benchmarks compare it with the truth)
    selection: list[dict[str, Any]] = field(default_factory=list)  # one row per variant

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class PinnedTimeline:
    """The timeline table and the Delta version this run reads (stage 1)."""

    uri: str
    version: int


@dataclass(frozen=True)
class Window:
    """The pinned version's rows in the configured window, densified (stage 2)."""

    timeline: PinnedTimeline
    data: LoggedData
    rows: int
    episodes: int


@dataclass(frozen=True)
class RunData:
    """The window split by a stable hash of ``episode_id`` into the rows the candidate is
    trained on and the rows CPE judges it by (stage 3)."""

    timeline: PinnedTimeline
    data: LoggedData
    rows: int
    episodes: int
    train_data: LoggedData
    eval_data: LoggedData
    train_episodes: int
    eval_episodes: int

    @property
    def kind(self) -> Literal["one_step", "sequential"]:
        return "one_step" if self.data.is_one_step else "sequential"

    def result_fields(self) -> dict[str, Any]:
        """The data facts every :class:`RunResult` past this stage carries."""
        return {
            "table_uri": self.timeline.uri,
            "table_version": self.timeline.version,
            "rows": self.rows,
            "episodes": self.episodes,
        }


@dataclass(frozen=True)
class Incumbent:
    """``CURRENT`` when the run started, loaded sha256-verified (``module`` and ``manifest``
    are None when nothing is deployed or it could not be loaded: ``warnings`` say why, and
    ``problem`` says it in the words the gate's rejection uses)."""

    version: str | None
    module: Any | None
    manifest: dict[str, Any] | None
    warnings: list[str]
    problem: str | None = None

    @property
    def loaded(self) -> bool:
        return self.module is not None and self.manifest is not None

    def fits(self, data: LoggedData) -> bool:
        """Same features and actions as ``data``: its weights can warm-start the candidate."""
        return (
            self.loaded
            and self.manifest is not None
            and self.manifest["feature_names"] == data.feature_names
            and self.manifest["actions"] == data.actions_space
        )


@dataclass(frozen=True)
class Candidate:
    """The normalizer fitted on the train split and the policy trained with it (stage 4):
    ``settings`` the trainer settings it was trained and is served with, ``variant`` its name
    among the run's selection variants (:mod:`learner.selection`)."""

    normalizer: Normalizer
    trained: TrainResult
    settings: TrainerSettings
    variant: str = "defaults"


@dataclass(frozen=True)
class Evaluation:
    """CPE of the exported candidate (``policy_bytes``, what would be served) and of the
    incumbent on the same eval split (stage 5). ``warnings``: why the incumbent was not.

    ``incumbent_version`` is ``CURRENT`` (None on a cold start); ``incumbent_problem`` why a
    deployed incumbent could not be loaded or evaluated -- the gate then rejects while it must
    beat the incumbent (a candidate cannot be shown to beat what was not evaluated)."""

    policy_bytes: bytes
    candidate: CpeResult
    incumbent: CpeResult | None
    warnings: list[str]
    incumbent_version: str | None = None
    incumbent_problem: str | None = None


@dataclass(frozen=True)
class GateResult:
    """The gate's decision and the numbers it read, as ``gate_log`` records them (stage 6).

    Numbers are None where not finite ("not computed" reads better as null in SQL engines).
    """

    decision: GateDecision
    gate_estimator: str
    incumbent_estimate: Estimate | None
    estimates: list[Estimate]
    logged_value: float | None
    incumbent_value: float | None
    effective_sample_size: float | None
    max_importance_weight: float | None
    unsupported_share: float | None

    def gate_log_fields(self) -> dict[str, Any]:
        """The ``GateLogEntry`` fields this result fills."""
        return {
            "gate_estimator": self.gate_estimator,
            "estimates": list(self.estimates),
            "logged_value": self.logged_value,
            "incumbent_value": self.incumbent_value,
            "effective_sample_size": self.effective_sample_size,
            "max_importance_weight": self.max_importance_weight,
            "unsupported_share": self.unsupported_share,
        }


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float, None when missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
