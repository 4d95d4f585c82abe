"""One (data seed, candidate) pair: what the gate decided, and whether its interval held the truth.

The gate's evidence is judged here as a run produces it: the candidate's probabilities on the
eval split go through :func:`learner.cpe.evaluate.evaluate_policy` with the run's CPE settings,
then :func:`learner.gate.decide` with the run's gate settings, as a cold start (no incumbent:
the benchmark has no deployed policy, so "beats the incumbent" is not part of any decision).
The interval that counts is the one of the estimate the decision rests on
(``GateDecision.estimator``: weighted DR, or FQE when the weights carry too few effective
samples); every other estimator's interval is kept for the per-estimator table.

"Truly better" uses the gate's own margin on the true values: the candidate's true value must
exceed the logger's true value by the margin. With simulated truths that comparison, and a
coverage miss, can be within the Monte Carlo error: :class:`PairResult` says so, so that a
reader can tell a measurement's noise from an estimator's failure.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import NamedTuple

from learner.cpe.estimate import Estimate
from learner.cpe.evaluate import evaluate_policy
from learner.data import LoggedData
from learner.gate import GateSettings, decide
from learner.settings import LearnerSettings
from tests.benchmarks.cpe_coverage_candidates import Candidate
from tests.benchmarks.cpe_coverage_truth import TrueValue

__all__ = ["MC_Z", "Interval", "PairResult", "beats", "judge_pair", "threshold"]

#: A miss or a margin call closer than this many Monte Carlo standard errors is "within error".
MC_Z = 2.0


class Interval(NamedTuple):
    """An estimate with its confidence interval."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, estimate: Estimate) -> Interval:
        return cls(float(estimate.value), float(estimate.ci_low), float(estimate.ci_high))

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high

    def relative_width(self, truth: float) -> float:
        return (self.high - self.low) / abs(truth) if truth else math.inf

    def distance(self, truth: float) -> float:
        """How far ``truth`` lies outside the interval (0 inside)."""
        return max(self.low - truth, truth - self.high, 0.0)


def threshold(baseline: float, gate: GateSettings) -> float:
    """What a value must exceed to beat ``baseline`` by the gate's margin (relative or
    absolute), as :func:`learner.gate.decide` computes it for a lower bound."""
    if gate.margin_kind == "absolute":
        return baseline + gate.margin
    return baseline + gate.margin * abs(baseline)


def beats(value: float, baseline: float, gate: GateSettings) -> bool:
    """``value`` exceeds ``baseline`` by the gate's margin."""
    return value > threshold(baseline, gate)


@dataclass(frozen=True)
class PairResult:
    """Everything the tables print about one pair (``problem`` set: not evaluated, why)."""

    env: str
    seed: int
    candidate: str
    description: str
    truth: TrueValue
    logged_truth: TrueValue
    eval_episodes: int
    published: bool = False
    rests_on: str = "n/a"
    gate_interval: Interval | None = None
    intervals: dict[str, Interval] | None = None
    logged_estimate: Interval | None = None
    effective_sample_size: float = math.nan
    sentence: str = ""
    cpe_seconds: float = 0.0
    problem: str | None = None
    untruncated: TrueValue | None = None

    @property
    def evaluated(self) -> bool:
        return self.gate_interval is not None

    @property
    def covered(self) -> bool:
        return self.gate_interval is not None and self.gate_interval.covers(self.truth.value)

    @property
    def covers_untruncated(self) -> bool | None:
        """Whether the interval holds the value without the time limit (None: not measured)."""
        if self.gate_interval is None or self.untruncated is None:
            return None
        return self.gate_interval.covers(self.untruncated.value)

    @property
    def miss_within_error(self) -> bool:
        """A miss by less than MC_Z Monte Carlo standard errors of the truth."""
        if self.gate_interval is None or self.covered:
            return False
        return self.gate_interval.distance(self.truth.value) <= MC_Z * self.truth.se

    @property
    def overestimates(self) -> bool:
        """A miss with the whole interval above the truth: the dangerous side, the one that
        can publish what is not better (a miss below only costs a publish)."""
        return self.gate_interval is not None and self.gate_interval.low > self.truth.value

    def truly_better(self, gate: GateSettings) -> bool:
        return beats(self.truth.value, self.logged_truth.value, gate)

    def margin_call_within_error(self, gate: GateSettings) -> bool:
        """Whether "truly better" could flip within MC_Z joint Monte Carlo errors."""
        need = threshold(self.logged_truth.value, gate)
        se = math.hypot(self.truth.se, self.logged_truth.se * (1 + gate.margin))
        return abs(self.truth.value - need) <= MC_Z * se

    def false_publish(self, gate: GateSettings) -> bool:
        return self.published and not self.truly_better(gate)

    def missed_publish(self, gate: GateSettings) -> bool:
        return self.evaluated and not self.published and self.truly_better(gate)


def judge_pair(
    env: str,
    seed: int,
    candidate: Candidate,
    eval_data: LoggedData,
    settings: LearnerSettings,
    truth: TrueValue,
    logged_truth: TrueValue,
    untruncated: TrueValue | None = None,
) -> PairResult:
    """CPE of ``candidate`` on the eval split and the gate's decision, beside the truths
    (``untruncated``: the candidate's value without the time limit, where measured)."""
    base = PairResult(
        env,
        seed,
        candidate.name,
        candidate.description,
        truth,
        logged_truth,
        eval_data.n_episodes,
        problem=candidate.problem,
        untruncated=untruncated,
    )
    if candidate.probs is None:
        return base
    started = time.perf_counter()
    probs = candidate.probs(eval_data.states, eval_data.possible_mask)
    cpe = evaluate_policy(eval_data, probs, settings.cpe)
    decision = decide(
        cpe.estimates, cpe.diagnostics, cpe.logged_value, None, settings.gate, kind=cpe.kind
    )
    intervals = {name: Interval.of(e) for name, e in cpe.estimates.items()}
    return replace(
        base,
        published=decision.publish,
        rests_on=decision.estimator,
        gate_interval=intervals.get(decision.estimator),
        intervals=intervals,
        logged_estimate=Interval.of(cpe.logged_value),
        effective_sample_size=float(cpe.diagnostics.effective_sample_size),
        sentence=decision.sentence,
        cpe_seconds=time.perf_counter() - started,
    )
