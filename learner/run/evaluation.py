"""Stage 5 of a run: export each candidate, then evaluate what would be served.

A candidate is exported to TorchScript *first* and CPE runs on the exported module, so what
the gate judges is byte for byte what would be served. The incumbent is evaluated once, through
its own stored module on the same eval split, with the same estimators (one-step runs share the
candidates' cross-fitted reward model, so all are compared on equal terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from learner.cpe.config import CpeSettings
from learner.cpe.evaluate import CpeResult, evaluate_policy
from learner.run.context import RunContext
from learner.run.records import Candidate, Evaluation, Incumbent, RunData
from learner.run.served import policy_probs_on, served_probs
from learner.serving import export_policy
from services.registry import load_policy

__all__ = ["IncumbentEvaluation", "ServedEvaluation", "evaluate_incumbent", "evaluate_served"]


@dataclass(frozen=True)
class ServedEvaluation:
    """A candidate's exported module (what would be served) and its CPE."""

    policy_bytes: bytes
    cpe: CpeResult


@dataclass(frozen=True)
class IncumbentEvaluation:
    """The incumbent's CPE (None when it is not deployed, or could not be loaded or
    evaluated: ``problem`` then says why, in the words the gate's rejection uses, and
    ``warnings`` for the report)."""

    version: str | None
    cpe: CpeResult | None
    warnings: list[str]
    problem: str | None

    def with_candidate(self, served: ServedEvaluation) -> Evaluation:
        """The stage's record for the gate: this incumbent beside ``served``."""
        return Evaluation(
            served.policy_bytes,
            served.cpe,
            self.cpe,
            list(self.warnings),
            incumbent_version=self.version,
            incumbent_problem=self.problem,
        )


def evaluate_served(
    ctx: RunContext,
    data: RunData,
    candidate: Candidate,
    cpe: CpeSettings,
    *,
    progress: bool,
    reward_hat: Any = None,
) -> ServedEvaluation:
    """Export ``candidate`` and evaluate the exported module on the eval split with ``cpe``
    (``reward_hat``: a one-step reward model already cross-fitted on this split)."""
    eval_data = data.eval_data
    policy_bytes = export_policy(
        candidate.trained.policy,
        candidate.normalizer,
        data.data.feature_names,
        data.data.actions_space,
    )
    served = load_policy(policy_bytes)
    which = f" ({candidate.variant})" if ctx.settings.selection.count > 1 else ""
    ctx.say(f"evaluating the candidate{which} on {len(eval_data)} eval decisions")
    probs = served_probs(served, eval_data.states, eval_data.possible_mask)
    result = evaluate_policy(eval_data, probs, cpe, reward_hat=reward_hat, progress=progress)
    return ServedEvaluation(policy_bytes, result)


def evaluate_incumbent(
    ctx: RunContext, data: RunData, incumbent: Incumbent, reward_hat: Any, *, progress: bool
) -> IncumbentEvaluation:
    """CPE of the incumbent (when loaded) on the eval split. One that could not be loaded or
    evaluated on this data (its actions are not offered) is a warning and the problem the gate
    rejects on (see :class:`Evaluation`)."""
    warnings: list[str] = []
    problem = incumbent.problem
    result = None
    if incumbent.module is not None and incumbent.manifest is not None:
        ctx.say(f"evaluating the incumbent {incumbent.version}")
        try:
            probs = policy_probs_on(data.eval_data, incumbent.module, incumbent.manifest)
            result = evaluate_policy(
                data.eval_data,
                probs,
                ctx.settings.cpe,
                reward_hat=reward_hat,
                progress=progress,
            )
        except ValueError as exc:
            warnings.append(f"The incumbent {incumbent.version} could not be evaluated: {exc}")
            problem = f"evaluating it failed: {exc}"
    return IncumbentEvaluation(incumbent.version, result, warnings, problem)
