"""``policyloop cpe``: CPE of a policy that is not being published.

Either a registry version (through its stored, verified module) or per-decision probabilities
from a table (a policy that lives elsewhere), on the eval split of the newest timeline window
(the episodes a learner run never trains on) or on every decision. Nothing is published or
logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from learner.cpe.evaluate import CpeResult, evaluate_policy
from learner.data import SplitRule, read_logged, split_by_episode
from learner.run.data import read_limits
from learner.run.served import policy_probs_on
from learner.settings import LearnerSettings
from services.delta_tables import open_table
from services.registry import Registry

__all__ = ["ExternalEvaluation", "evaluate_external", "read_target_probs"]


@dataclass
class ExternalEvaluation:
    """CPE of one policy that is not being published (``policyloop cpe``)."""

    target: str
    scope: str
    table_uri: str
    table_version: int
    rows: int
    result: CpeResult

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "target": self.target,
            "scope": self.scope,
            "table_uri": self.table_uri,
            "table_version": self.table_version,
            "rows": self.rows,
            "kind": r.kind,
            "estimates": {k: e.to_dict() for k, e in r.estimates.items()},
            "logged_value": r.logged_value.to_dict(),
            "diagnostics": r.diagnostics.to_dict(),
        }


def read_target_probs(uri: str, decision_ids: np.ndarray, n_actions: int) -> np.ndarray:
    """``(n, A)`` probabilities for ``decision_ids`` from a Delta table or a parquet file with
    columns ``decision_id`` (text) and ``action_probs`` (list of float over the action space).

    Raises ValueError naming the column and the rule for missing decisions, wrong lengths,
    negative or non-finite probabilities, and rows that do not sum to 1.
    """
    columns = ["decision_id", "action_probs"]
    delta = None if Path(uri).is_file() else open_table(uri)
    try:
        if delta is not None:
            table = pads.dataset(delta.file_uris(), format="parquet").to_table(columns=columns)
        else:
            if not Path(uri).exists():
                raise FileNotFoundError(f"target-probs {uri!r}: no Delta table or parquet file")
            table = pq.read_table(uri, columns=columns)
    except (KeyError, ValueError) as exc:
        if "decision_id" in str(exc) or "action_probs" in str(exc) or "No match" in str(exc):
            raise ValueError(
                f"target-probs {uri!r}: needs columns decision_id and action_probs ({exc})"
            ) from None
        raise
    index = {d: i for i, d in enumerate(table.column("decision_id").to_pylist())}
    lists = table.column("action_probs").to_pylist()
    wanted = [str(d) for d in decision_ids]
    missing = [d for d in wanted if d not in index]
    if missing:
        raise ValueError(
            f"target-probs decision_id: {len(missing)} of {len(wanted)} evaluated decisions have "
            f"no row (e.g. {missing[0]!r})"
        )
    out = np.empty((len(wanted), n_actions), dtype=np.float64)
    for row, decision in enumerate(wanted):
        probs = lists[index[decision]]
        if probs is None or len(probs) != n_actions:
            raise ValueError(
                f"target-probs action_probs of {decision!r}: must list {n_actions} "
                "probabilities, one per action of the action space"
            )
        out[row] = probs
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError("target-probs action_probs: every probability must be finite and ≥ 0")
    sums = out.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if len(bad):
        raise ValueError(
            f"target-probs action_probs of {wanted[bad[0]]!r}: must sum to 1, sums to "
            f"{sums[bad[0]]:.6g}"
        )
    return out


def evaluate_external(
    settings: LearnerSettings,
    timeline_uri: str,
    *,
    version: str | None = None,
    target_probs_uri: str | None = None,
    all_data: bool = False,
) -> ExternalEvaluation:
    """CPE of a registry ``version`` or of per-decision ``target_probs_uri`` probabilities, on
    the timeline table at ``timeline_uri``.

    Evaluated on the eval split of the newest timeline window (the episodes a learner run
    never trains on), or on every decision with ``all_data``. Nothing is published or logged.
    """
    if (version is None) == (target_probs_uri is None):
        raise ValueError("give exactly one of version or target_probs_uri")
    rule = SplitRule(settings.eval_fraction, settings.seed)
    window = read_logged(  # batch by batch, with the run's caps (learner/data/reader.py)
        timeline_uri,
        window_days=settings.window_days,
        window_rows=settings.window_rows,
        limits=read_limits(settings),
        eval_last=None if all_data else rule,
    )
    data = window.data
    scope = "all decisions"
    if not all_data:
        data = split_by_episode(data, rule.eval_fraction, rule.seed)[1]
        scope = "the eval split"
    if len(data) == 0:
        raise ValueError(f"timeline {timeline_uri!r}: no decisions to evaluate on")
    if version is not None:
        registry = Registry(settings.registry_uri, settings.policy_name)
        module, manifest = registry.load(version)
        probs = policy_probs_on(data, module, manifest)
        target = f"{settings.policy_name} {version}"
    else:
        assert target_probs_uri is not None
        probs = read_target_probs(target_probs_uri, data.decision_ids, data.n_actions)
        if np.any((probs > 0) & ~data.possible_mask):
            raise ValueError(
                "target-probs action_probs: probability on an action that is not possible in "
                "that decision"
            )
        target = target_probs_uri
    result = evaluate_policy(data, probs, settings.cpe)
    return ExternalEvaluation(
        target,
        f"{scope} ({len(data)} decisions)",
        timeline_uri,
        window.version,
        len(data),
        result,
    )
