"""The run report: one self-contained HTML file (figures embedded as base64 PNG).

Self-contained because reports are mailed, attached to tickets and opened from object storage
long after the run; nothing may point at a file that is not there any more. The gate's verdict is
the first thing on the page: most readers need only that sentence.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from learner.report.model import EstimateLike, ReportData
from learner.report.plots import estimates_png, training_png, weights_png

__all__ = ["render_report", "write_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.35em; padding: .6em .8em; border-radius: 6px; }
h1.publish { background: #e3f6e5; } h1.reject { background: #fdeaea; }
h1.failed { background: #fff3d6; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left; font-size: .92em; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #a15c00; } img { max-width: 100%; } .muted { color: #777; font-size: .9em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:,.4g}"
    return _e(value)


def _img(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _kv_table(rows: dict[str, Any]) -> str:
    body = "".join(
        f"<tr><th>{_e(k)}</th><td class='num'>{_num(v)}</td></tr>" for k, v in rows.items()
    )
    return f"<table>{body}</table>"


def _selection_table(rows: Sequence[dict[str, Any]]) -> str:
    """The variants a run chose among: the estimate each one's gate decision rests on, at the
    selection's joint confidence level, and which one was chosen."""
    head = (
        "<tr><th>variant</th><th>rests on</th><th>value</th><th>interval</th>"
        "<th>gate</th><th></th></tr>"
    )
    body = []
    for row in rows:
        gate = row["problem"] or ("publish" if row["publish"] else "reject")
        body.append(
            f"<tr><td>{_e(row['variant'])}</td><td>{_e(row['estimator'])}</td>"
            f"<td class='num'>{_num(row['value'])}</td>"
            f"<td class='num'>[{_num(row['ci_low'])}, {_num(row['ci_high'])}]</td>"
            f"<td>{_e(gate)}</td><td>{'◀ chosen' if row['chosen'] else ''}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _estimates_table(
    candidate: Sequence[EstimateLike],
    incumbent: Sequence[EstimateLike],
    logged: EstimateLike | None,
    gate_estimator: str | None,
) -> str:
    head = (
        "<tr><th>policy</th><th>estimator</th><th>value</th><th>interval</th>"
        "<th>÷ logged</th><th>warnings</th></tr>"
    )
    rows = []
    for target, series in (("candidate", candidate), ("incumbent", incumbent)):
        for est in series:
            mark = " ◀ gate" if est.estimator == gate_estimator and target == "candidate" else ""
            warnings = "<br>".join(_e(w) for w in est.warnings)
            rows.append(
                f"<tr><td>{target}</td><td>{_e(est.estimator)}{mark}</td>"
                f"<td class='num'>{_num(est.value)}</td>"
                f"<td class='num'>[{_num(est.ci_low)}, {_num(est.ci_high)}]</td>"
                f"<td class='num'>{_num(getattr(est, 'normalized', None))}</td>"
                f"<td class='warn'>{warnings}</td></tr>"
            )
    if logged is not None:
        rows.append(
            f"<tr><td>logged policy</td><td>on-policy average</td>"
            f"<td class='num'>{_num(logged.value)}</td>"
            f"<td class='num'>[{_num(logged.ci_low)}, {_num(logged.ci_high)}]</td>"
            "<td class='num'>1</td><td></td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def render_report(data: ReportData) -> str:
    """The report's HTML text."""
    decision_class = data.decision if data.decision in ("publish", "reject") else "failed"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(data.policy_name)} learner run {_e(data.run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1 class='{decision_class}'>{_e(data.sentence)}</h1>",
        f"<p class='muted'>policy <b>{_e(data.policy_name)}</b> · run {_e(data.run_id)} · "
        f"{_e(data.started_at.isoformat(timespec='seconds'))} → "
        f"{_e(data.finished_at.isoformat(timespec='seconds'))} · algorithm "
        f"{_e(data.algorithm)} · candidate {_e(data.candidate_version or '—')} · incumbent "
        f"{_e(data.incumbent_version or '—')}</p>",
        "<h2>Why</h2><ul>",
        *(f"<li>{_e(reason)}</li>" for reason in data.reasons),
        "</ul>",
    ]
    if data.warnings:
        parts += [
            "<h2>Warnings</h2><ul>",
            *(f"<li class='warn'>{_e(w)}</li>" for w in data.warnings),
            "</ul>",
        ]
    parts += [
        "<h2>Policy value estimates</h2>",
        _img(
            estimates_png(
                data.candidate_estimates,
                data.incumbent_estimates,
                data.logged_value,
                data.gate_estimator,
            ),
            "estimates",
        ),
        _estimates_table(
            data.candidate_estimates,
            data.incumbent_estimates,
            data.logged_value,
            data.gate_estimator,
        ),
        *(
            [
                "<h2>Selection</h2><p>Each of the K variants was evaluated as served with "
                "intervals at 1 - alpha / K, so that the chosen one's holds whichever is "
                "chosen; the gate judged the variant its rule ranks first (one it would "
                "publish, then the highest lower bound).</p>",
                _selection_table(data.selection),
            ]
            if len(data.selection) > 1
            else []
        ),
        "<h2>Diagnostics</h2>",
        _kv_table(data.diagnostics) if data.diagnostics else "<p>none computed</p>",
        "<h2>Importance weights</h2>",
        _img(weights_png(data.importance_weights), "importance weights"),
        "<h2>Training</h2>",
        _img(training_png(data.history), "training loss and Q-values"),
        "<h2>Data</h2>",
        _kv_table(data.provenance),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(data: ReportData, path: str | os.PathLike[str]) -> Path:
    """Render ``data`` to ``path`` (written to a temp file, then renamed); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(render_report(data), encoding="utf-8")
    os.replace(tmp, target)
    return target
