"""The demo's HTML report: did the loop improve the policy, and how did traffic move?

Self-contained (figures embedded as base64 PNG) like the learner's run reports, which it links.
Two figures: per round, the true return measured in the environment beside the gate's estimate
with its interval (both discounted, the quantity CPE estimates); and per batch of traffic, the
episodes each policy version served — the staged rollout as it happened.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from services.demo.loop import DemoResult

__all__ = ["render_demo_report", "write_demo_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: .25em .6em; font-size: .92em; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } .muted { color: #777; font-size: .9em; }
"""


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{encoded}">'


def _rounds_figure(result: DemoResult) -> str:
    rounds = result.rounds
    fig, (ax_ret, ax_cpe) = plt.subplots(1, 2, figsize=(11, 3.8))
    xs = [r.round for r in rounds]
    ax_ret.plot(
        xs, [r.true_return if r.true_return is not None else float("nan") for r in rounds], "o-"
    )
    if result.settings.target_return is not None:
        ax_ret.axhline(result.settings.target_return, color="tab:green", ls="--", label="target")
        ax_ret.legend()
    ax_ret.set_xlabel("round (0 = uniform cold start)")
    ax_ret.set_title("true mean return in the environment")
    ax_ret.set_xticks(xs)
    truth = [r.true_discounted if r.true_discounted is not None else float("nan") for r in rounds]
    ax_cpe.plot(xs, truth, "o-", label="true discounted return (env)")
    est = [(r, r.estimate) for r in rounds if r.estimate is not None]
    if est:
        ax_cpe.errorbar(
            [r.round + 0.05 for r, _ in est],
            [v for _, v in est],
            yerr=[
                [max(v - (r.ci_low or v), 0) for r, v in est],
                [max((r.ci_high or v) - v, 0) for r, v in est],
            ],
            fmt="s",
            capsize=4,
            label="gate's estimate of the candidate (CI)",
        )
        logged = [r.logged_value for r, _ in est]
        ax_cpe.plot(
            [r.round for r, _ in est], logged, "x", color="gray", label="logged policy (CPE)"
        )
    ax_cpe.set_xticks(xs)
    ax_cpe.set_xlabel("round")
    ax_cpe.set_title("discounted value: truth vs the gate's estimate")
    ax_cpe.legend(fontsize=8)
    return _png(fig)


def _traffic_figure(result: DemoResult) -> str:
    batches = result.traffic
    versions = sorted({v for b in batches for v in b.episodes_by_version})
    fig, ax = plt.subplots(figsize=(11, 3.6))
    totals = [max(sum(b.episodes_by_version.values()), 1) for b in batches]
    bottom = [0.0] * len(batches)
    for version in versions:
        shares = [
            b.episodes_by_version.get(version, 0) / total
            for b, total in zip(batches, totals, strict=True)
        ]
        ax.bar(range(len(batches)), shares, bottom=bottom, label=version)
        bottom = [a + b for a, b in zip(bottom, shares, strict=True)]
    ax.set_xticks(range(len(batches)), [f"r{b.round}" for b in batches])
    ax.set_xlabel("batch of traffic (by round; r0 = cold start)")
    ax.set_ylabel("share of episodes")
    ax.set_title("rollout traffic by policy version")
    ax.legend(fontsize=8)
    return _png(fig)


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def render_demo_report(result: DemoResult) -> str:
    """The report's HTML text."""
    e = html.escape
    rows = []
    for r in result.rounds:
        link = ""
        if r.report_path and result.report_path:
            href = os.path.relpath(r.report_path, Path(result.report_path).parent)
            link = f"<a href='{e(href)}'>run report</a>"
        rows.append(
            "<tr>"
            f"<td>{r.round}</td><td>{e(r.version)}</td>"
            f"<td class='num'>{_num(r.true_return, 1)}</td>"
            f"<td class='num'>{_num(r.true_discounted)}</td><td>{e(r.estimator or '—')}</td>"
            f"<td class='num'>{_num(r.estimate)}</td>"
            f"<td class='num'>[{_num(r.ci_low)}, {_num(r.ci_high)}]</td>"
            f"<td class='num'>{_num(r.logged_value)}</td><td>{e(r.decision)}</td>"
            f"<td>{e(r.rollout)}</td><td title='{e(r.sentence)}'>{link}</td></tr>"
        )
    target = result.settings.target_return
    verdict = (
        f"Serving {e(result.serving_version)} with a true mean return of "
        f"{_num(result.serving_return, 1)}"
        + (
            ""
            if target is None
            else f" (target {target:g}: {'reached' if result.reached_target else 'not reached'})"
        )
    )
    return "\n".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>policyloop demo on {e(result.settings.env_id)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{verdict}</h1>",
            f"<p class='muted'>{e(result.settings.env_id)} · {len(result.rounds) - 1} round(s) · "
            f"{result.seconds:.0f} s</p>",
            "<h2>Rounds</h2>",
            _rounds_figure(result),
            "<table><tr><th>round</th><th>version</th><th>true mean return</th>"
            "<th>true discounted</th><th>gate estimator</th><th>estimate</th><th>interval</th>"
            "<th>logged (CPE)</th><th>gate</th><th>rollout</th><th></th></tr>",
            *rows,
            "</table>",
            "<h2>Rollout traffic</h2>",
            _traffic_figure(result),
            "</body></html>",
        ]
    )


def write_demo_report(result: DemoResult, path: str | os.PathLike[str]) -> Path:
    """Render the report to ``path`` (temp file, then rename); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    result.report_path = str(target)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(render_demo_report(result), encoding="utf-8")
    os.replace(tmp, target)
    return target
