"""The manifest a published candidate is stored with (its rules: :mod:`schemas.manifest`).

Everything a reader needs to trust and use ``policy.pt`` without the training code: features and
normalization, actions, exploration, the training and its settings, the exact data it was
trained on, the CPE evidence (how it was computed and judged) and the gate's decision.
"""

from __future__ import annotations

from typing import Any

from learner.gate_verdict import GateDecision
from learner.run.records import Candidate, Evaluation, GateResult, Incumbent, RunData
from learner.selection import SelectionRow
from learner.settings import LearnerSettings

__all__ = ["candidate_manifest"]


def candidate_manifest(
    settings: LearnerSettings,
    run_id: str,
    data: RunData,
    candidate: Candidate,
    incumbent: Incumbent,
    evaluation: Evaluation,
    gate_result: GateResult,
    selection: list[SelectionRow],
) -> dict[str, Any]:
    """The caller's part of the manifest (the registry stamps name, version, time, sha256);
    ``selection``: every variant the run chose among (one when it had no choice)."""
    s, result = settings, candidate.trained
    return {
        "feature_names": list(data.data.feature_names),
        "normalization": candidate.normalizer.to_manifest(),
        "actions": list(data.data.actions_space),
        "exploration": dict(result.policy.exploration),
        "algorithm": result.algorithm,
        "training": result.summary(),
        "trainer_settings": candidate.settings.model_dump(mode="json"),
        "selection": [row.to_dict() for row in selection],
        "trained_on": {
            "table_uri": data.timeline.uri,
            "table_version": data.timeline.version,
            "rows": len(data.train_data),
            "episodes": data.train_episodes,
            "window_rows": data.rows,
            "window_episodes": data.episodes,
            "window_days": s.window_days,
            "eval_fraction": s.eval_fraction,
            "split_seed": s.seed,
        },
        "cpe": _cpe_facts(settings, data, incumbent, evaluation, gate_result),
        "gate": _gate_facts(gate_result.decision),
        "run_id": run_id,
        "warm_started_from": incumbent.version if result.warm_started else None,
    }


def _cpe_facts(
    settings: LearnerSettings,
    data: RunData,
    incumbent: Incumbent,
    evaluation: Evaluation,
    gate_result: GateResult,
) -> dict[str, Any]:
    candidate, incumbent_cpe = evaluation.candidate, evaluation.incumbent
    return {
        "kind": candidate.kind,
        "eval_rows": len(data.eval_data),
        "eval_episodes": data.eval_episodes,
        "gate_estimator": gate_result.gate_estimator,
        # how the numbers were made (FQE backups, per-decision weight clipping) and judged
        "settings": settings.cpe.model_dump(mode="json"),
        "gate_settings": settings.gate.model_dump(mode="json"),
        "estimates": {k: e.to_dict() for k, e in candidate.estimates.items()},
        "logged_value": candidate.logged_value.to_dict(),
        "diagnostics": candidate.diagnostics.to_dict(),
        "incumbent": None
        if incumbent_cpe is None
        else {
            "version": incumbent.version,
            "estimates": {k: e.to_dict() for k, e in incumbent_cpe.estimates.items()},
        },
    }


def _gate_facts(decision: GateDecision) -> dict[str, Any]:
    return {
        "decision": decision.decision,
        "reasons": list(decision.reasons),
        "sentence": decision.sentence,
    }
