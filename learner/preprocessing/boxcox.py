"""Box-Cox without scipy: the maximum-likelihood lambda, found by a grid then golden section."""

from __future__ import annotations

import numpy as np

__all__ = ["boxcox", "boxcox_lambda", "skewness"]


def skewness(x: np.ndarray) -> float:
    """Sample skewness (0 for a constant sample)."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std()
    if x.size < 3 or std == 0:
        return 0.0
    return float(np.mean(((x - x.mean()) / std) ** 3))


def boxcox(x: np.ndarray, lam: float) -> np.ndarray:
    """The Box-Cox transform of positive ``x``."""
    x = np.asarray(x, dtype=np.float64)
    out: np.ndarray = np.log(x) if abs(lam) < 1e-8 else (np.power(x, lam) - 1.0) / lam
    return out


def _log_likelihood(x: np.ndarray, log_sum: float, lam: float) -> float:
    y = boxcox(x, lam)
    var = y.var()
    if not np.isfinite(var) or var <= 0:
        return -np.inf
    return float((lam - 1.0) * log_sum - 0.5 * x.size * np.log(var))


def boxcox_lambda(x: np.ndarray, low: float = -2.0, high: float = 2.0) -> float:
    """The lambda in ``[low, high]`` that maximizes the Box-Cox log-likelihood of positive ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2 or (x <= 0).any():
        raise ValueError("boxcox_lambda: needs at least two strictly positive values")
    log_sum = float(np.log(x).sum())
    grid = np.linspace(low, high, 41)
    values = [_log_likelihood(x, log_sum, lam) for lam in grid]
    best = int(np.argmax(values))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(40):
        if _log_likelihood(x, log_sum, c) > _log_likelihood(x, log_sum, d):
            b = d
        else:
            a = c
        c, d = b - ratio * (b - a), a + ratio * (b - a)
    return float((a + b) / 2.0)
