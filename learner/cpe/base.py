"""The one interface of every estimator: ``estimate(data) -> Estimate``.

Following Open Bandit Pipeline, each estimator is one class; unlike OBP the bootstrap is not
re-run estimator by estimator in a Python loop. A subclass says two things:

* ``columns(data)`` -- per independent unit (decision or episode), the few numbers whose
  totals determine the estimate, shape ``(n_units, K)``;
* ``combine(totals, data)`` -- the estimate as a function of column totals, vectorized over
  rows of ``totals`` ``(B, K)``.

The point estimate is ``combine`` of the full totals, the interval the percentiles of
``combine`` over multinomial resamples of the units (:mod:`learner.cpe.bootstrap`).

That bootstrap holds any fitted model fixed. Estimators built on a Q-model (``uses_q_model``:
FQE, sequential and weighted DR, MAGIC) also take the model's own uncertainty when the input
carries a bagged model's members: replicate ``b`` is the estimator on member ``b``'s episode
resample with member ``b``'s Q (an honest bootstrap replicate of fit and estimate), and the
interval becomes the hull of the percentile interval and the t interval over those replicates
(:mod:`learner.cpe.model_replicates` says why). ``combine`` must read the data only through
its shape and discount (never its Q), so that one ``combine`` serves every member.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Generic, Literal, TypeVar

import numpy as np

from learner.cpe.bootstrap import percentile_interval
from learner.cpe.diagnostics import effective_sample_size, fmt_count
from learner.cpe.estimate import IMPRECISE, Estimate, normalize
from learner.cpe.inputs import BanditInput, SequentialInput
from learner.cpe.logged_value import logged_returns
from learner.cpe.model_replicates import Interval, hull, replicate_interval

__all__ = ["Estimator", "EstimatorKind"]

EstimatorKind = Literal["one_step", "sequential"]

#: The input an estimator reads: :class:`BanditInput` (one-step) or :class:`SequentialInput`.
InputT = TypeVar("InputT", BanditInput, SequentialInput)


class Estimator(ABC, Generic[InputT]):
    """Base of all estimators (see module doc). Subclasses set ``name``, ``label``, ``kind``,
    and the input they read as the type parameter (``Estimator[BanditInput]``)."""

    name: ClassVar[str]
    label: ClassVar[str]
    kind: ClassVar[EstimatorKind]
    uses_weights: ClassVar[bool] = True
    #: Built on a Q-model: its interval takes a bagged model's uncertainty (module doc).
    uses_q_model: ClassVar[bool] = False

    def __init__(self, *, warn_min_ess: float = 100.0) -> None:
        self.warn_min_ess = warn_min_ess

    @abstractmethod
    def columns(self, data: InputT) -> np.ndarray:
        """Per-unit quantities ``(n_units, K)`` whose totals determine the estimate."""

    @abstractmethod
    def combine(self, totals: np.ndarray, data: InputT) -> np.ndarray:
        """The estimate for each row of ``totals`` ``(B, K)``; returns ``(B,)``."""

    def prepare(self, data: InputT) -> InputT:
        """Hook to complete the input before estimating (FQE fits its Q-model here)."""
        return data

    def check_input(self, data: BanditInput | SequentialInput) -> None:
        expected = BanditInput if self.kind == "one_step" else SequentialInput
        if not isinstance(data, expected):
            raise TypeError(
                f"data: {self.label} is a {self.kind} estimator and needs a "
                f"{expected.__name__}, got {type(data).__name__}"
            )

    def estimate(
        self,
        data: InputT,
        *,
        n_bootstrap: int = 300,
        alpha: float = 0.05,
        seed: int = 0,
    ) -> Estimate:
        """Value, bootstrap interval (with the model's uncertainty, see the module doc), value /
        logged value, warnings."""
        self.check_input(data)
        data = self.prepare(data)
        columns = np.asarray(self.columns(data), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            value = float(self.combine(columns.sum(axis=0)[None, :], data)[0])
        low, high, n_bad = percentile_interval(
            lambda totals: self.combine(totals, data), columns, n_bootstrap, alpha, seed
        )
        replicates = self.model_replicates(data)
        if replicates is not None and n_bootstrap > 0:
            bagged = replicate_interval(value, replicates, alpha)
            low, high = hull(Interval(low, high), bagged)
        logged = float(np.mean(logged_returns(data)))
        warnings = self._warnings(data, value, low, high, n_bad, n_bootstrap, logged)
        return Estimate(self.name, value, low, high, normalize(value, logged), warnings)

    def model_replicates(self, data: InputT) -> np.ndarray | None:
        """The estimate on each bagged member's own episode resample with that member's Q
        ``(members,)``; None when the estimator uses no Q-model or the model is not bagged."""
        if not self.uses_q_model or not isinstance(data, SequentialInput):
            return None
        bag = data.q_replicates
        if bag is None or bag.members < 2:
            return None
        out = np.empty(bag.members)
        for b in range(bag.members):
            member = data.with_q_hat(bag.q_hat[b])
            columns = np.asarray(self.columns(member), dtype=np.float64)
            totals = bag.counts[b].astype(np.float64) @ columns
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                out[b] = self.combine(totals[None, :], member)[0]
        return out

    def _warnings(
        self,
        data: InputT,
        value: float,
        low: float,
        high: float,
        n_bad: int,
        n_bootstrap: int,
        logged: float,
    ) -> list[str]:
        warnings: list[str] = []
        if not np.isfinite(value):
            warnings.append(
                f"{self.label} is not a number: an input it uses (the candidate's probabilities "
                "or a model's predictions) is NaN or infinite, so it cannot be used."
            )
            return warnings
        if n_bad:
            warnings.append(
                f"{fmt_count(n_bad)} of {fmt_count(n_bootstrap)} bootstrap resamples gave no "
                "finite value; the interval comes from the rest."
            )
        if self.uses_weights:
            weights = data.weights if isinstance(data, BanditInput) else data.final_weights
            ess = effective_sample_size(weights)
            if np.isfinite(ess) and ess < self.warn_min_ess:
                unit = "decisions" if isinstance(data, BanditInput) else "episodes"
                warnings.append(
                    f"Only {fmt_count(ess)} effective samples of {fmt_count(len(weights))} "
                    f"{unit}: {self.label} rests on a few {unit} and should not be trusted."
                )
        # Only sequential inputs clip their weights (``weight_clip``).
        if self.uses_weights and isinstance(data, SequentialInput) and data.clipped_share > 0:
            clipped = data.clipped_share
            warnings.append(
                f"Per-decision weights were clipped at {data.weight_clip:,.4g} in {clipped:.1%} "
                f"of decisions: {self.label} trades variance for a bias toward the logged "
                "policy's behaviour."
            )
        wide = np.isfinite(low) and np.isfinite(high) and high - low > abs(logged) > 0
        if wide:
            warnings.append(
                f"The interval [{low:,.4g}, {high:,.4g}] is wider than the logged policy's "
                f"value {logged:,.4g}: {IMPRECISE}."
            )
        return warnings
