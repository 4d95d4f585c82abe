"""The coverage benchmark's tables: per environment and overall, per estimator, per pair.

Kept apart from the loop so that what is counted (and how a miss within the truth's Monte Carlo
error is told apart) is in one place, next to the words that print it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learner.gate import GateSettings
from tests.benchmarks.cpe_coverage_pairs import MC_Z, PairResult

__all__ = ["Summary", "print_tables", "summarize"]


@dataclass(frozen=True)
class Summary:
    """The figures of one group of pairs (an environment, or all of them)."""

    label: str
    pairs: int
    evaluated: int
    covered: int
    misses_within_error: int
    misses_above: int
    mean_relative_width: float
    rests_on: dict[str, int]
    publishes: int
    false_publishes: int
    false_within_error: int
    missed_publishes: int
    missed_within_error: int
    seconds: float
    untruncated_measured: int = 0
    untruncated_covered: int = 0

    @property
    def coverage(self) -> float:
        return self.covered / self.evaluated if self.evaluated else math.nan


def summarize(
    label: str, pairs: Sequence[PairResult], gate: GateSettings, seconds: float
) -> Summary:
    done = [p for p in pairs if p.evaluated]
    widths = [
        p.gate_interval.relative_width(p.truth.value) for p in done if p.gate_interval is not None
    ]
    rests: dict[str, int] = {}
    for p in done:
        rests[p.rests_on] = rests.get(p.rests_on, 0) + 1
    false = [p for p in done if p.false_publish(gate)]
    missed = [p for p in done if p.missed_publish(gate)]
    return Summary(
        label=label,
        pairs=len(pairs),
        evaluated=len(done),
        covered=sum(p.covered for p in done),
        misses_within_error=sum(p.miss_within_error for p in done),
        misses_above=sum(p.overestimates for p in done),
        mean_relative_width=float(np.mean(widths)) if widths else math.nan,
        rests_on=rests,
        publishes=sum(p.published for p in done),
        false_publishes=len(false),
        false_within_error=sum(p.margin_call_within_error(gate) for p in false),
        missed_publishes=len(missed),
        missed_within_error=sum(p.margin_call_within_error(gate) for p in missed),
        seconds=seconds,
        untruncated_measured=sum(p.covers_untruncated is not None for p in done),
        untruncated_covered=sum(p.covers_untruncated is True for p in done),
    )


def _pct(x: float) -> str:
    return "  n/a" if not math.isfinite(x) else f"{x:5.0%}"


def _num(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def _summary_table(summaries: Sequence[Summary]) -> list[str]:
    head = (
        f"{'environment':<12} {'pairs':>5} {'cover':>11} {'miss<=2se':>9} {'above':>5} "
        f"{'rel.width':>9} "
        f"{'rests on':<16} {'publish':>7} {'false pub':>9} {'missed pub':>10} {'wall s':>7} "
        f"{'cover, no time limit':>20}"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        rests = " ".join(f"{k} {v}" for k, v in sorted(s.rests_on.items()))
        skipped = f" ({s.pairs - s.evaluated} not run)" if s.evaluated < s.pairs else ""
        m = s.untruncated_measured
        no_limit = f"{s.untruncated_covered}/{m} {_pct(s.untruncated_covered / m)}" if m else "-"
        lines.append(
            f"{s.label:<12} {s.pairs:>5} {s.covered:>3}/{s.evaluated:<3} {_pct(s.coverage)} "
            f"{s.misses_within_error:>9} {s.misses_above:>5} {_pct(s.mean_relative_width):>9} "
            f"{rests:<16} "
            f"{s.publishes:>7} {s.false_publishes:>5} ({s.false_within_error}) "
            f"{s.missed_publishes:>6} ({s.missed_within_error}) {s.seconds:>7.0f} "
            f"{no_limit:>20}{skipped}"
        )
    return lines


def _estimator_table(groups: dict[str, Sequence[PairResult]]) -> list[str]:
    names: list[str] = []
    for pairs in groups.values():
        for p in pairs:
            for name in p.intervals or {}:
                if name not in names:
                    names.append(name)
    names.append("logged")
    head = f"{'environment':<12} " + " ".join(f"{n:>14}" for n in names)
    lines = [head, "-" * len(head)]
    for label, pairs in groups.items():
        cells = []
        for name in names:
            hits, widths = [], []
            for p in pairs:
                if name == "logged":
                    interval, truth = p.logged_estimate, p.logged_truth.value
                else:
                    interval, truth = (p.intervals or {}).get(name), p.truth.value
                if interval is not None:
                    hits.append(interval.covers(truth))
                    widths.append(interval.relative_width(truth))
            cells.append(
                f"{sum(hits):>3}/{len(hits):<3} w{np.mean(widths):>5.0%}" if hits else "n/a"
            )
        lines.append(f"{label:<12} " + " ".join(f"{c:>14}" for c in cells))
    return lines


def _no_limit(p: PairResult) -> str:
    """The truth without the time limit and whether the interval holds it ("-": not measured)."""
    if p.untruncated is None or p.covers_untruncated is None:
        return "-"
    return f"{_num(p.untruncated.value)} {'yes' if p.covers_untruncated else 'NO'}"


def _pair_table(pairs: Sequence[PairResult], gate: GateSettings) -> list[str]:
    head = (
        f"{'environment':<12} {'seed':>4} {'candidate':<9} {'truth':>8} {'+-se':>6} "
        f"{'logged':>8} {'rests on':<8} {'estimate':>8} {'interval':>20} {'ok':<4} "
        f"{'ESS':>7} {'gate':<7} {'better':<6} {'no time limit':>13}"
    )
    lines = [head, "-" * len(head)]
    for p in pairs:
        t = p.truth
        se = "exact" if t.exact else f"{t.se:.2g}"
        better = "yes" if p.truly_better(gate) else "no"
        if p.margin_call_within_error(gate):
            better += "~"
        if p.gate_interval is None:
            lines.append(
                f"{p.env:<12} {p.seed:>4} {p.candidate:<9} {_num(t.value):>8} {se:>6} "
                f"{_num(p.logged_truth.value):>8}  not evaluated: {p.problem or 'no estimate'}"
            )
            continue
        g = p.gate_interval
        ok = "yes" if p.covered else ("~no" if p.miss_within_error else "NO")
        gate_word = "PUBLISH" if p.published else "reject"
        if p.false_publish(gate):
            gate_word = "FALSE"
        lines.append(
            f"{p.env:<12} {p.seed:>4} {p.candidate:<9} {_num(t.value):>8} {se:>6} "
            f"{_num(p.logged_truth.value):>8} {p.rests_on:<8} {_num(g.value):>8} "
            f"{'[' + _num(g.low) + ', ' + _num(g.high) + ']':>20} {ok:<4} "
            f"{_num(p.effective_sample_size):>7} {gate_word:<7} {better:<6} {_no_limit(p):>13}"
        )
    return lines


def print_tables(
    results: Sequence[PairResult],
    seconds_by_env: dict[str, float],
    gate: GateSettings,
    *,
    show_pairs: bool = True,
) -> Summary:
    """Print the three tables; return the overall summary (the one the targets read)."""
    envs = list(dict.fromkeys(p.env for p in results))
    groups = {env: [p for p in results if p.env == env] for env in envs}
    summaries = [summarize(env, groups[env], gate, seconds_by_env.get(env, 0.0)) for env in envs]
    overall = summarize("overall", results, gate, sum(seconds_by_env.values()))
    if show_pairs:
        print("\nper pair (truth: true discounted value as served; logged: the uniform logger's;")
        print(f"ok ~no: missed by <= {MC_Z:g} MC standard errors of the truth; better: truly")
        print(f"better than logged by the gate's margin, ~ = within {MC_Z:g} MC errors; no time")
        print("limit: the value without the environment's time limit, and whether it is covered)")
        print("\n".join(_pair_table(results, gate)))
    print("\ngate estimator's interval (the estimate the decision rests on) against the truth")
    print("(miss<=2se: misses by at most 2 MC errors of the truth; above: misses with the whole")
    print("interval above the truth, the side that can publish what is not better; false pub /")
    print("missed pub: in parentheses those whose 'truly better' is within MC error)")
    print("\n".join(_summary_table([*summaries, overall])))
    print("\nevery estimator's interval: covered/pairs and mean relative width (logged: the")
    print("logged policy's value interval against the logger's true value)")
    print("\n".join(_estimator_table({**groups, "overall": results})))
    return overall
