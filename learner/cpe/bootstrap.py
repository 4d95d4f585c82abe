"""Vectorized nonparametric bootstrap for estimators that are functions of column totals.

Every estimator here is a smooth function of a few sums over independent units (decisions for
one-step data, episodes for sequential data): IPS is a mean, SNIPS a ratio of two sums,
weighted DR a sum over steps of ratios of per-step sums. A bootstrap resample is then a vector
of counts ``c`` (how often each unit was drawn) and its totals are ``c @ columns``: one matrix
product for a block of resamples instead of a Python loop of re-estimations. Blocks bound the
memory to a few million counts at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["bootstrap_totals", "percentile_interval", "resample_counts"]

_MAX_BLOCK_CELLS = 4_000_000


def resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``(size, n)`` counts: how often each of ``n`` units is drawn in each of ``size``
    resamples of ``n`` draws with replacement (multinomial counts, drawn as indices and one
    bincount: much faster than numpy's sequential multinomial)."""
    picks = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    counts: np.ndarray = np.bincount(picks.ravel(), minlength=size * n).reshape(size, n)
    return counts


def bootstrap_totals(columns: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """Column totals of ``n_bootstrap`` resamples (with replacement) of the rows of ``columns``.

    ``columns`` is ``(n_units, K)``; returns ``(n_bootstrap, K)``. The same seed gives the same
    resamples for any two estimators of the same data, so their intervals are comparable.
    """
    n, k = columns.shape
    if n_bootstrap <= 0:
        return np.empty((0, k))
    rng = np.random.default_rng(seed)
    block = max(1, min(n_bootstrap, _MAX_BLOCK_CELLS // max(n, 1)))
    out = np.empty((n_bootstrap, k))
    # Non-finite cells would turn 0 * NaN into NaN for every resample: keep them, on purpose,
    # so a NaN model gives NaN intervals rather than silently finite ones.
    for start in range(0, n_bootstrap, block):
        size = min(block, n_bootstrap - start)
        counts = resample_counts(rng, n, size)
        out[start : start + size] = counts.astype(np.float64) @ columns
    return out


def percentile_interval(
    combine: Callable[[np.ndarray], np.ndarray],
    columns: np.ndarray,
    n_bootstrap: int,
    alpha: float,
    seed: int,
) -> tuple[float, float, int]:
    """Percentile interval of ``combine(totals)`` over bootstrap resamples.

    Returns ``(low, high, n_nonfinite)``: resamples whose statistic is not finite (e.g. a
    resample where every weight is zero) are left out of the percentiles and counted so the
    caller can warn. With no finite resample the interval is ``(nan, nan)``.
    """
    totals = bootstrap_totals(columns, n_bootstrap, seed)
    if len(totals) == 0:
        return float("nan"), float("nan"), 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        stats = np.asarray(combine(totals), dtype=np.float64)
    finite = np.isfinite(stats)
    if not finite.any():
        return float("nan"), float("nan"), len(stats)
    low, high = np.quantile(stats[finite], [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), int((~finite).sum())
