"""Per-run HTML report: verdict, estimates with intervals, weights, training curves, provenance."""

from learner.report.html import render_report, write_report
from learner.report.model import EstimateLike, ReportData

__all__ = ["EstimateLike", "ReportData", "render_report", "write_report"]
