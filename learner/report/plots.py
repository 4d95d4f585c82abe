"""The report's figures as PNG bytes (matplotlib, Agg backend: no display is ever needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # before pyplot: reports are rendered on headless schedulers

import matplotlib.pyplot as plt
import numpy as np

from learner.report.model import EstimateLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["estimates_png", "training_png", "weights_png"]

_DPI = 90


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _series(history: Sequence[dict[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    steps, values = [], []
    for i, row in enumerate(history):
        value = row.get(key)
        if value is None:
            continue
        steps.append(row.get("step", row.get("epoch", i)))
        values.append(float(value))
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def training_png(history: Sequence[dict[str, float]]) -> bytes:
    """Training loss (left) and Q-values (right) over training steps."""
    fig, (ax_loss, ax_q) = plt.subplots(1, 2, figsize=(10, 3.4))
    steps, loss = _series(history, "loss")
    if len(loss):
        ax_loss.plot(steps, loss, color="tab:blue", lw=1.2)
        finite = loss[np.isfinite(loss)]
        if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax_loss.set_yscale("log")
        ax_loss.set_xlabel("step")
        ax_loss.set_title("training loss")
    else:
        _empty(ax_loss, "no training history")
    plotted = False
    for key, style in (("q_mean", "-"), ("q_max", "--"), ("q_min", ":")):
        q_steps, q = _series(history, key)
        if len(q):
            ax_q.plot(q_steps, q, style, lw=1.2, label=key)
            plotted = True
    if plotted:
        ax_q.set_xlabel("step")
        ax_q.set_title("Q-values")
        ax_q.legend(loc="best", fontsize=8)
    else:
        _empty(ax_q, "no Q-value history")
    return _png(fig)


def estimates_png(
    candidate: Sequence[EstimateLike],
    incumbent: Sequence[EstimateLike],
    logged: EstimateLike | None,
    gate_estimator: str | None,
) -> bytes:
    """Every estimator's value with its interval, beside the logged policy's (and incumbent)."""
    names = list(dict.fromkeys([e.estimator for e in candidate] + [e.estimator for e in incumbent]))
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(len(names), 2) + 1.4))
    if not names:
        _empty(ax, "no estimates (the run stopped before CPE)")
        return _png(fig)
    y = np.arange(len(names))
    for offset, series, color, label in (
        (-0.15, candidate, "tab:green", "candidate"),
        (0.15, incumbent, "tab:orange", "incumbent"),
    ):
        by_name = {e.estimator: e for e in series}
        xs, ys, lo, hi = [], [], [], []
        for i, name in enumerate(names):
            est = by_name.get(name)
            if est is None or not math.isfinite(est.value):
                continue
            low = est.ci_low if math.isfinite(est.ci_low) else est.value
            high = est.ci_high if math.isfinite(est.ci_high) else est.value
            xs.append(est.value)
            ys.append(y[i] + offset)
            lo.append(max(est.value - low, 0.0))
            hi.append(max(high - est.value, 0.0))
        if xs:
            ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", color=color, capsize=3, label=label)
    if logged is not None and math.isfinite(logged.value):
        ax.axvline(logged.value, color="black", lw=1.2, label="logged policy")
        if math.isfinite(logged.ci_low) and math.isfinite(logged.ci_high):
            ax.axvspan(logged.ci_low, logged.ci_high, color="gray", alpha=0.2)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{n} (gate)" if n == gate_estimator else n for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("estimated value (95% bootstrap interval)")
    ax.set_title("policy value estimates on the eval split")
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def weights_png(weights: np.ndarray | None) -> bytes:
    """Histogram of the candidate's importance weights (log scale when they spread widely)."""
    fig, ax = plt.subplots(figsize=(8, 3))
    w = np.asarray(weights if weights is not None else [], dtype=float).ravel()
    w = w[np.isfinite(w)]
    if not len(w):
        _empty(ax, "no importance weights")
        return _png(fig)
    positive = w[w > 0]
    if len(positive) and positive.max() / max(positive.min(), 1e-12) > 1e3:
        bins = np.logspace(np.log10(positive.min()), np.log10(positive.max()), 40)
        ax.hist(positive, bins=bins.tolist(), color="tab:purple")
        ax.set_xscale("log")
        zeros = int((w <= 0).sum())
        if zeros:
            ax.set_title(f"importance weights ({zeros} zero weights not shown)")
    else:
        ax.hist(w, bins=40, color="tab:purple")
    ax.axvline(1.0, color="black", lw=1, ls="--")
    ax.set_xlabel("importance weight π_candidate / π_logged")
    ax.set_ylabel("decisions")
    if not ax.get_title():
        ax.set_title("importance weights")
    return _png(fig)
