"""What a run report shows, as plain data: the renderer needs no trainer, CPE or registry."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["EstimateLike", "ReportData"]


class EstimateLike(Protocol):
    """Anything with an estimator name, value, interval and warnings (e.g. ``cpe.Estimate``).

    Read-only members, so that frozen records (``cpe.Estimate``) qualify."""

    @property
    def estimator(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def ci_low(self) -> float: ...
    @property
    def ci_high(self) -> float: ...
    @property
    def warnings(self) -> list[str]: ...


@dataclass
class ReportData:
    """Everything a person needs to judge one learner run, in the order the report shows it."""

    run_id: str
    policy_name: str
    started_at: dt.datetime
    finished_at: dt.datetime
    decision: str  # publish | reject | failed
    sentence: str  # the gate's verdict in one sentence: the report's first line
    reasons: list[str]
    algorithm: str
    provenance: dict[str, Any]  # table_uri, table_version, rows, episodes, train/eval sizes
    gate_estimator: str | None = None
    candidate_version: str | None = None
    incumbent_version: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    candidate_estimates: list[EstimateLike] = field(default_factory=list)
    incumbent_estimates: list[EstimateLike] = field(default_factory=list)
    logged_value: EstimateLike | None = None
    importance_weights: np.ndarray | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the variants the run chose among (``SelectionRow.to_dict()``); shown when more than one
    selection: list[dict[str, Any]] = field(default_factory=list)
