"""Feature standardization for the models CPE fits itself (reward model, FQE).

CPE's models must not depend on the trainer's normalizer: they judge the trainer's output. A
plain z-score with missing values (NaN: feature absent from the state map) imputed by the
feature's mean is enough for a ridge regression or a small MLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import numpy as np

__all__ = ["Standardizer"]


@dataclass(frozen=True)
class Standardizer:
    """z = (x - mean) / std, NaN -> 0 (the mean); constant features get std 1."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, states: np.ndarray) -> Standardizer:
        x = np.asarray(states, np.float64)
        if x.ndim != 2:
            raise ValueError(f"states: expected (n, F), got shape {x.shape}")
        with np.errstate(invalid="ignore"), _quiet_nan_warnings():
            mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
            std = np.nanstd(x, axis=0) if len(x) else np.ones(x.shape[1])
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        return cls(mean, std)

    def transform(self, states: np.ndarray) -> np.ndarray:
        z = (np.asarray(states, np.float64) - self.mean) / self.std
        return np.where(np.isnan(z), 0.0, z)


class _quiet_nan_warnings:
    """Silence numpy's "mean of empty slice" for all-NaN features (they get mean 0)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._ctx.__exit__(exc_type, exc, tb)
