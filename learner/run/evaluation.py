"""Stage 5 of a run: export the candidate, then evaluate what would be served.

The candidate is exported to TorchScript *first* and CPE runs on the exported module, so what
the gate judges is byte for byte what would be served. The incumbent is evaluated through its
own stored module on the same eval split, with the same estimators (one-step runs share the
candidate's cross-fitted reward model, so the two are compared on equal terms).
"""

from __future__ import annotations

from learner.cpe.evaluate import evaluate_policy
from learner.run.context import RunContext
from learner.run.records import Candidate, Evaluation, Incumbent, RunData
from learner.run.served import policy_probs_on, served_probs
from learner.serving import export_policy
from services.registry import load_policy

__all__ = ["evaluate_candidate"]


def evaluate_candidate(
    ctx: RunContext, data: RunData, candidate: Candidate, incumbent: Incumbent, *, progress: bool
) -> Evaluation:
    """CPE of the exported candidate and of the incumbent (when loaded) on the eval split. An
    incumbent that could not be loaded or evaluated on this data (its actions are not offered)
    is a warning and the ``incumbent_problem`` the gate rejects on (see :class:`Evaluation`)."""
    s, eval_data = ctx.settings, data.eval_data
    policy_bytes = export_policy(
        candidate.trained.policy,
        candidate.normalizer,
        data.data.feature_names,
        data.data.actions_space,
    )
    served = load_policy(policy_bytes)
    ctx.say(f"evaluating the candidate on {len(eval_data)} eval decisions")
    candidate_probs = served_probs(served, eval_data.states, eval_data.possible_mask)
    candidate_cpe = evaluate_policy(eval_data, candidate_probs, s.cpe, progress=progress)
    incumbent_cpe = None
    warnings: list[str] = []
    problem = incumbent.problem
    if incumbent.module is not None and incumbent.manifest is not None:
        ctx.say(f"evaluating the incumbent {incumbent.version}")
        try:
            incumbent_probs = policy_probs_on(eval_data, incumbent.module, incumbent.manifest)
            reward_hat = getattr(candidate_cpe.input, "reward_hat", None)
            incumbent_cpe = evaluate_policy(
                eval_data,
                incumbent_probs,
                s.cpe,
                reward_hat=reward_hat if candidate_cpe.kind == "one_step" else None,
                progress=progress,
            )
        except ValueError as exc:
            warnings.append(f"The incumbent {incumbent.version} could not be evaluated: {exc}")
            problem = f"evaluating it failed: {exc}"
    return Evaluation(
        policy_bytes,
        candidate_cpe,
        incumbent_cpe,
        warnings,
        incumbent_version=incumbent.version,
        incumbent_problem=problem,
    )
