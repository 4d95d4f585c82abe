"""Can the estimates be trusted? Effective sample size, weight concentration, support, NaN.

Importance sampling sees the candidate only through the logged actions. Three things break it,
and each is measured here and put into plain words:

* **few effective samples** -- Kish's effective sample size ``(sum w)^2 / sum w^2`` of the
  importance weights (per decision for one-step data, whole-episode weights for sequential
  data): when the candidate differs a lot from the logger a handful of units carry the estimate;
* **one dominant weight** -- the largest weight and its share of the total;
* **no support** -- the share of evaluated decisions where the candidate puts probability
  (more than ``support_tolerance``) on actions the logger never takes there. No amount of data
  reveals the outcome of those actions to an importance-sampling estimator.

"Never takes" is defined per decision, most precise first:

1. an action that is not in the decision's ``possible_actions`` is never taken;
2. where the logger's full distribution was logged (``action_probs``), an action whose logged
   probability is at most ``support_tolerance`` is never taken;
3. where it was not logged, only the taken action's propensity is known. If that propensity is
   1 the logger was deterministic there and every other action is never taken. Otherwise some
   other action had positive probability but the data cannot say which, so an action counts as
   never taken only if the logger took it in *no* evaluated decision where it was possible.

Rule 3 can miss a context-specific gap in support (it cannot see one); it never flags an action
that the logger is known to take. Non-finite or invalid candidate probabilities and non-finite
model predictions are reported as a broken model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

import numpy as np

from learner.cpe.config import CpeSettings
from learner.cpe.inputs import BanditInput, SequentialInput

__all__ = ["Diagnostics", "diagnose", "effective_sample_size", "fmt_count"]


def fmt_count(x: float) -> str:
    """A count for people: ``5,000``; effective sizes below 10 keep one decimal."""
    if not np.isfinite(x):
        return "no"
    return f"{x:,.1f}" if x < 10 and x != int(x) else f"{round(x):,}"


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size of importance weights (NaN if any weight is not finite)."""
    w = np.asarray(weights, np.float64)
    if not np.all(np.isfinite(w)):
        return float("nan")
    denom = float(np.sum(w * w))
    return 0.0 if denom == 0.0 else float(np.sum(w)) ** 2 / denom


@dataclass(frozen=True)
class Diagnostics:
    """Health of the importance weights and of the candidate's inputs (see module doc)."""

    effective_sample_size: float
    max_importance_weight: float
    unsupported_share: float
    warnings: list[str] = field(default_factory=list)
    n_units: int = 0
    n_decisions: int = 0
    max_weight_share: float = float("nan")
    unsupported_mass: float = float("nan")
    broken_share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Rows(TypedDict):
    """Per-decision arrays; ``logged`` and ``model`` are None where the input has none."""

    target: np.ndarray
    possible: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    logged: np.ndarray | None
    model: np.ndarray | None


def _rows(data: BanditInput | SequentialInput) -> _Rows:
    """Per-decision arrays (sequential data flattened over its valid steps)."""
    if isinstance(data, BanditInput):
        return {
            "target": data.target_probs,
            "possible": data.possible_mask,
            "actions": data.actions,
            "propensities": data.propensities,
            "logged": data.logged_probs,
            "model": data.reward_hat,
        }
    v = data.valid
    return {
        "target": data.target_probs[v],
        "possible": data.possible_mask[v],
        "actions": data.actions[v],
        "propensities": data.propensities[v],
        "logged": None if data.logged_probs is None else data.logged_probs[v],
        "model": None if data.q_hat is None else data.q_hat[v],
    }


def unsupported_actions(
    possible: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
    logged_probs: np.ndarray | None,
    tolerance: float,
) -> np.ndarray:
    """``(n, A)`` true where the logger never takes the action in that decision (module doc)."""
    n, a = possible.shape
    unsupported = ~possible
    known = np.zeros(n, bool)
    if logged_probs is not None:
        known = ~np.isnan(logged_probs).any(axis=1)
        unsupported = unsupported | (known[:, None] & (np.nan_to_num(logged_probs) <= tolerance))
    unknown = ~known
    deterministic = unknown & (propensities >= 1.0 - tolerance)
    others = np.ones((n, a), bool)
    others[np.arange(n), actions] = False
    unsupported = unsupported | (deterministic[:, None] & others)
    taken_somewhere = np.zeros(a, bool)
    taken_somewhere[np.unique(actions)] = True
    never = unknown[:, None] & ~taken_somewhere[None, :]
    return unsupported | never


def diagnose(
    data: BanditInput | SequentialInput, settings: CpeSettings | None = None
) -> Diagnostics:
    """Measure the weights and the support of ``data``'s target policy and say what is wrong."""
    settings = settings or CpeSettings()
    tol = settings.support_tolerance
    rows = _rows(data)
    target = rows["target"]
    possible = rows["possible"]
    n_dec = len(target)
    weights = data.weights if isinstance(data, BanditInput) else data.final_weights
    unit = "decisions" if isinstance(data, BanditInput) else "episodes"
    n_units = len(weights)

    # Broken model: non-finite or invalid probabilities, non-finite predictions.
    finite_target = np.isfinite(target).all(axis=1)
    sums = np.where(possible, np.nan_to_num(target), 0.0).sum(axis=1)
    invalid = ~finite_target | (target < -tol).any(axis=1) | (np.abs(sums - 1.0) > 1e-3)
    model = rows["model"]
    bad_model = (
        np.zeros(n_dec, bool)
        if model is None
        else ~np.isfinite(np.where(possible, model, 0.0)).all(axis=1)
    )
    broken = invalid | bad_model

    ess = effective_sample_size(weights)
    finite_w = weights[np.isfinite(weights)]
    max_w = float(finite_w.max()) if finite_w.size == n_units and n_units else float("nan")
    total = float(finite_w.sum()) if finite_w.size == n_units else float("nan")
    max_share = max_w / total if total > 0 else float("nan")

    unsupported = unsupported_actions(
        possible, rows["actions"], rows["propensities"], rows["logged"], tol
    )
    mass = np.where(unsupported, np.nan_to_num(target, nan=0.0), 0.0).sum(axis=1)
    unsupported_share = float(np.mean(mass > tol)) if n_dec else float("nan")
    unsupported_mass = float(np.mean(mass)) if n_dec else float("nan")

    warnings: list[str] = []
    if broken.any():
        parts = []
        if (~finite_target).any():
            parts.append(
                f"its action probabilities are NaN or infinite in "
                f"{fmt_count((~finite_target).sum())}"
            )
        elif invalid.any():
            parts.append(
                f"its action probabilities are negative or do not sum to 1 over the "
                f"possible actions in {fmt_count(invalid.sum())}"
            )
        if bad_model.any():
            parts.append(
                f"the value model's predictions are NaN or infinite in {fmt_count(bad_model.sum())}"
            )
        warnings.append(
            f"The candidate is broken: {' and '.join(parts)} of {fmt_count(n_dec)} decisions, "
            "so no estimate built on it can be trusted."
        )
    low_ess = ess < max(settings.warn_min_ess, settings.warn_min_ess_fraction * n_units)
    if np.isfinite(ess) and low_ess:
        warnings.append(
            f"Only {fmt_count(ess)} effective samples of {fmt_count(n_units)} {unit}: the "
            f"importance-weighted estimates rest on a few {unit} and should not be trusted."
        )
    if np.isfinite(max_share) and max_share > settings.warn_max_weight_share and n_units > 1:
        warnings.append(
            f"One of the {fmt_count(n_units)} {unit} carries {max_share:.0%} of the total "
            f"importance weight (largest weight {max_w:,.3g}): the importance-weighted "
            "estimates hinge on it."
        )
    if unsupported_share > settings.warn_unsupported_share:
        warnings.append(
            f"In {unsupported_share:.0%} of the {fmt_count(n_dec)} evaluated decisions the "
            "candidate puts probability on actions the logger never takes there (on average "
            f"{unsupported_mass:.1%} of its probability): the logs cannot show what those "
            "actions earn, so importance-weighted estimates are biased and model-based ones "
            "are guesses."
        )
    return Diagnostics(
        effective_sample_size=ess,
        max_importance_weight=max_w,
        unsupported_share=unsupported_share,
        warnings=warnings,
        n_units=n_units,
        n_decisions=n_dec,
        max_weight_share=max_share,
        unsupported_mass=unsupported_mass,
        broken_share=float(np.mean(broken)) if n_dec else 0.0,
    )
