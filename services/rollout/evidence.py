"""The rollout's evidence: per-episode returns from the timeline, and the "worse" test.

Which episodes count: **complete** ones (a row with ``terminal`` or ``truncated`` exists) whose
**first decision** (``step_ordinal`` 0) happened at or after the current step's start, so both
sides are observed over the same period and under the same traffic split. An episode's return
is the sum of its rows' ``reward``; its side is its ``policy_version`` (the client keeps one
version for a whole episode; an episode with several versions is ignored).

The test: one-sided Welch comparison of mean returns,
``z = (mean_c - mean_i + margin) / sqrt(var_c / n_c + var_i / n_i)`` with
``margin = tolerance * |mean_i|``, and ``p = Phi(z)``; the candidate is *significantly worse*
when ``p < alpha``. ``Phi`` is the standard normal CDF — the normal approximation of Welch's t,
sound with about 30 or more episodes per side, which is why the controller does not decide a
rollback on fewer (``min_test_episodes``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from schemas.tables import TIMELINE_SCHEMA, ds_of
from services.delta_tables import open_table, read_table

__all__ = ["Comparison", "SideEvidence", "compare_returns", "episode_returns", "normal_cdf"]

_COLUMNS = ["episode_id", "step_ordinal", "ts", "reward", "terminal", "truncated",
            "policy_version"]  # fmt: skip


@dataclass(frozen=True)
class SideEvidence:
    """Complete episodes of one version within the step."""

    version: str
    episodes: int
    mean: float | None
    std: float | None  # sample standard deviation (ddof 1); None below 2 episodes


@dataclass(frozen=True)
class Comparison:
    """Candidate vs incumbent, and the test's outcome."""

    candidate: SideEvidence
    incumbent: SideEvidence
    statistic: float | None  # z; None when not computable (too few episodes)
    p_value: float | None  # P(as bad as observed | candidate not worse)
    worse: bool  # p_value < alpha


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _side(version: str, returns: Sequence[float]) -> SideEvidence:
    n = len(returns)
    if n == 0:
        return SideEvidence(version, 0, None, None)
    mean = math.fsum(returns) / n
    std = None
    if n >= 2:
        std = math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / (n - 1))
    return SideEvidence(version, n, mean, std)


def compare_returns(
    candidate: str,
    candidate_returns: Sequence[float],
    incumbent: str,
    incumbent_returns: Sequence[float],
    *,
    alpha: float,
    tolerance: float = 0.0,
) -> Comparison:
    """The one-sided test of the module doc on two samples of episode returns."""
    c, i = _side(candidate, candidate_returns), _side(incumbent, incumbent_returns)
    if c.std is None or i.std is None:
        return Comparison(c, i, None, None, False)
    assert c.mean is not None and i.mean is not None  # a side with a std has a mean
    margin = tolerance * abs(i.mean)
    diff = c.mean - i.mean + margin
    se = math.sqrt(c.std**2 / c.episodes + i.std**2 / i.episodes)
    if se == 0.0:
        statistic = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        p_value = 0.5 if diff == 0 else (0.0 if diff < 0 else 1.0)
    else:
        statistic = diff / se
        p_value = normal_cdf(statistic)
    return Comparison(c, i, statistic, p_value, p_value < alpha)


def episode_returns(
    timeline_uri: str, since: dt.datetime, versions: Sequence[str]
) -> dict[str, list[float]]:
    """Returns of complete episodes of ``versions`` that started at or after ``since``."""
    out: dict[str, list[float]] = {v: [] for v in versions}
    table = open_table(timeline_uri)
    if table is None:
        return out
    since = since.astimezone(dt.UTC)
    ds_since = ds_of(int(since.timestamp() * 1000))
    filter_ = (pc.field("ds") >= ds_since) & pc.field("policy_version").isin(list(versions))
    rows = read_table(table, TIMELINE_SCHEMA, columns=_COLUMNS, filter=filter_)
    if rows.num_rows == 0:
        return out
    grouped = rows.group_by("episode_id").aggregate(
        [
            ("reward", "sum"),
            ("terminal", "any"),
            ("truncated", "any"),
            ("step_ordinal", "min"),
            ("ts", "min"),
            ("policy_version", "min"),
            ("policy_version", "max"),
        ]
    )
    since_scalar = pa.scalar(since, type=TIMELINE_SCHEMA.field("ts").type)
    keep = pc.and_(
        pc.and_(
            pc.equal(grouped["step_ordinal_min"], 0),
            pc.greater_equal(grouped["ts_min"], since_scalar),
        ),
        pc.and_(
            pc.or_(grouped["terminal_any"], grouped["truncated_any"]),
            pc.equal(grouped["policy_version_min"], grouped["policy_version_max"]),
        ),
    )
    kept = grouped.filter(keep)
    for version, total in zip(
        kept["policy_version_min"].to_pylist(), kept["reward_sum"].to_pylist(), strict=True
    ):
        out[version].append(float(total))
    return out
