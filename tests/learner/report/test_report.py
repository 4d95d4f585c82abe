"""The run report: one self-contained HTML file led by the gate's verdict."""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import numpy as np

from learner.report import ReportData, render_report, write_report

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class _Est:
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    normalized: float = 1.0
    warnings: list[str] = field(default_factory=list)


def _data(**overrides) -> ReportData:
    values = dict(
        run_id="run-42",
        policy_name="ranker",
        started_at=T0,
        finished_at=T0 + dt.timedelta(minutes=3),
        decision="publish",
        sentence="Published v3: its WDR lower bound 1.21 beats the logged policy's 1.00.",
        reasons=["WDR lower bound 1.21 > logged value 1.00 + margin 0.05"],
        algorithm="dqn_cql",
        provenance={"table_uri": "/tables/timeline", "table_version": 17, "rows": 900},
        gate_estimator="wdr",
        candidate_version="v3",
        incumbent_version="v2",
        history=[{"step": i, "loss": 1.0 / (i + 1), "q_mean": 0.1 * i} for i in range(50)],
        candidate_estimates=[
            _Est("wdr", 1.4, 1.21, 1.6),
            _Est("pdis", 1.5, 0.8, 2.2, 1.5, ["few"]),
        ],
        incumbent_estimates=[_Est("wdr", 1.1, 0.9, 1.3)],
        logged_value=_Est("logged", 1.0, 0.95, 1.05),
        importance_weights=np.random.default_rng(0).lognormal(size=500),
        diagnostics={"effective_sample_size": 321.5, "max_importance_weight": 9.1},
    )
    values.update(overrides)
    return ReportData(**values)


class _TableReader(HTMLParser):
    """The cells of every ``<table>``, row by row, under the ``<h2>`` heading before it."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._heading: str | None = None
        self._in_heading = False
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self._in_heading, self._heading = True, ""
        elif tag == "table":
            self._rows = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_heading = False
        elif tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table" and self._rows is not None:
            assert self._heading not in self.tables, f"two tables under {self._heading!r}"
            self.tables[self._heading] = self._rows
            self._rows = None

    def handle_data(self, data):
        if self._in_heading:
            self._heading += data
        elif self._cell is not None:
            self._cell.append(data)


def _tables(text: str) -> dict[str, list[list[str]]]:
    reader = _TableReader()
    reader.feed(text)
    reader.close()
    return reader.tables


def _images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def test_verdict_sentence_is_the_first_heading():
    text = render_report(_data())
    first_heading = re.search(r"<h1[^>]*>(.*?)</h1>", text).group(1)
    assert (
        first_heading
        == "Published v3: its WDR lower bound 1.21 beats the logged policy&#x27;s 1.00."
    )
    assert text.index("<h1") < text.index("<h2")


def test_report_embeds_its_three_figures_as_png():
    images = _images(render_report(_data()))
    assert len(images) == 3
    assert all(img.startswith(PNG_SIGNATURE) for img in images)


def test_report_is_self_contained():
    text = render_report(_data())
    assert not re.search(r'(src|href)="(?!data:)', text)


def test_data_section_is_the_provenance_table_key_by_key():
    data = _tables(render_report(_data()))["Data"]
    assert data == [["table_uri", "/tables/timeline"], ["table_version", "17"], ["rows", "900"]]


def test_diagnostics_section_lists_each_diagnostic_with_its_value():
    diagnostics = _tables(render_report(_data()))["Diagnostics"]
    assert diagnostics == [["effective_sample_size", "321.5"], ["max_importance_weight", "9.1"]]


def test_estimates_table_has_a_row_per_estimate_with_its_warnings_and_the_gate_marked():
    estimates = _tables(render_report(_data()))["Policy value estimates"]
    assert estimates == [
        ["policy", "estimator", "value", "interval", "÷ logged", "warnings"],
        ["candidate", "wdr ◀ gate", "1.4", "[1.21, 1.6]", "1", ""],
        ["candidate", "pdis", "1.5", "[0.8, 2.2]", "1.5", "few"],
        ["incumbent", "wdr", "1.1", "[0.9, 1.3]", "1", ""],
        ["logged policy", "on-policy average", "1", "[0.95, 1.05]", "1", ""],
    ]


def test_text_from_data_is_escaped():
    text = render_report(_data(reasons=["<script>alert(1)</script>"]))
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_run_that_stopped_before_cpe_still_renders():
    data = _data(
        decision="failed",
        sentence="Nothing was published: training diverged (loss became NaN at step 12).",
        history=[{"step": 0, "loss": float("nan")}],
        candidate_estimates=[],
        incumbent_estimates=[],
        logged_value=None,
        importance_weights=None,
        diagnostics={},
    )
    text = render_report(data)
    assert "training diverged" in text
    assert len(_images(text)) == 3


def test_write_report_creates_the_file(tmp_path):
    path = write_report(_data(), tmp_path / "reports" / "run-42.html")
    assert path.exists() and path.read_text().startswith("<!DOCTYPE html>")
    assert not list(path.parent.glob(".*tmp"))
