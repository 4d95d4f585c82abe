"""The result of one estimator on one policy: value, interval, normalized value, warnings."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["IMPRECISE", "Estimate", "normalize"]

#: How the warning that an interval is wider than the logged value ends. It says the estimate
#: is imprecise, not that it is wrong (see :attr:`Estimate.doubts`).
IMPRECISE = "too uncertain to tell the two apart"


def normalize(value: float, logged_value: float) -> float:
    """``value / logged_value``: 1.0 means "as good as what was deployed".

    NaN when the logged value is zero (or not finite): a ratio to nothing says nothing. Read it
    with the sign of the logged value in mind (for costs, i.e. negative values, a ratio below 1
    is better).
    """
    if not math.isfinite(logged_value) or abs(logged_value) < 1e-12:
        return float("nan")
    return value / logged_value


@dataclass(frozen=True)
class Estimate:
    """One estimator's verdict on a policy's value.

    ``ci_low``/``ci_high`` is a bootstrap percentile interval; ``normalized`` the value divided
    by the logged policy's value; ``warnings`` plain-words reasons not to trust it.
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    normalized: float
    warnings: list[str] = field(default_factory=list)

    @property
    def is_finite(self) -> bool:
        """Value and both bounds are numbers (a NaN anywhere disqualifies the estimate)."""
        return all(math.isfinite(x) for x in (self.value, self.ci_low, self.ci_high))

    @property
    def doubts(self) -> list[str]:
        """The warnings that question the estimate itself (a diverged or unfinished model, NaN
        resamples, few effective samples, clipped weights): all but the note that its interval
        is wide, which only limits what it can prove -- and its lower bound already says how
        much. The gate lets a model estimate decide only when it has no doubts."""
        return [w for w in self.warnings if not w.rstrip(".").endswith(IMPRECISE)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with the field names of the ``gate_log`` table's ``estimates`` struct."""
        return asdict(self)
