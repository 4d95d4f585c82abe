"""Candidates of varied quality for the coverage benchmark, trained as ``learn`` trains them.

An interval that covers only good policies proves little: the gate must also see candidates
that are barely better than the logger, or worse. From one train split:

* ``early``: the trainer stopped after a few hundred gradient steps (often poor);
* ``late``: the trainer after many steps (what a run would publish);
* ``mixed``: ``late`` with half of its mass moved to uniform (in between);
* ``swapped``: ``late`` doing another action than the one it chose 70% of the time
  (usually truly worse than the logger: the gate must reject it);
* ``uniform``: the logger itself (never truly better; not run by default).

Training is the learner's own: the normalizer fitted on the train split with the run's
preprocessing settings (``learner.run.training``), :func:`learner.trainers.training.train`
with the run's trainer settings except ``steps``, then :func:`learner.serving.export_policy`
and the registry's :func:`~services.registry.load_policy`, so what is judged is the served
module. A trainer that diverged yields no candidate (a run rejects it before CPE): it is
reported, not evaluated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from learner.data import LoggedData
from learner.preprocessing.normalizer import fit_normalizer
from learner.serving import export_policy
from learner.settings import LearnerSettings
from learner.trainers.training import train
from services.registry import load_policy
from tests.benchmarks.cpe_coverage_policies import Mixed, PolicyProbs, Served, Swapped, Uniform

__all__ = ["CANDIDATES", "Candidate", "Snapshots", "Trained", "make_candidates", "train_served"]

#: Every candidate kind, in the order they are evaluated and printed.
CANDIDATES = ("early", "late", "mixed", "swapped", "uniform")
MIX_SHARE = 0.5
SWAP_P = 0.7


@dataclass(frozen=True)
class Snapshots:
    """Gradient steps of the ``early`` and ``late`` trainer runs."""

    early: int
    late: int


@dataclass(frozen=True)
class Candidate:
    """One candidate: its kind, what it is in words, its probabilities (None when its trainer
    diverged, then ``problem`` says why), and the seconds its training took."""

    name: str
    description: str
    probs: PolicyProbs | None
    train_seconds: float = 0.0
    problem: str | None = None


@dataclass(frozen=True)
class Trained:
    """A trained policy as served (None when the trainer diverged: ``problem`` says why)."""

    probs: PolicyProbs | None
    seconds: float
    problem: str | None


def train_served(
    train_data: LoggedData, settings: LearnerSettings, steps: int, actions: list[str]
) -> Trained:
    """Train ``steps`` steps as a run does and load the exported module back."""
    started = time.perf_counter()
    normalizer = fit_normalizer(train_data.states, train_data.feature_names, settings.preprocessing)
    trainer = settings.trainer.model_copy(update={"steps": steps})
    result = train(train_data, trainer, normalizer, progress=False)
    seconds = time.perf_counter() - started
    if result.diverged:
        return Trained(None, seconds, f"the trainer diverged: {result.divergence_reason}")
    blob = export_policy(result.policy, normalizer, train_data.feature_names, actions)
    return Trained(Served(load_policy(blob)), seconds, None)


def make_candidates(
    train_data: LoggedData,
    settings: LearnerSettings,
    names: tuple[str, ...],
    snapshots: Snapshots,
) -> list[Candidate]:
    """The candidates ``names`` (kinds of :data:`CANDIDATES`), training only what they need."""
    actions = list(train_data.actions_space)
    early = (
        train_served(train_data, settings, snapshots.early, actions) if "early" in names else None
    )
    needs_late = {"late", "mixed", "swapped"} & set(names)
    late = train_served(train_data, settings, snapshots.late, actions) if needs_late else None
    out = []
    for name in CANDIDATES:
        if name not in names:
            continue
        if name == "uniform":
            out.append(Candidate(name, "the uniform logger itself", Uniform()))
            continue
        trained = early if name == "early" else late
        assert trained is not None
        steps = snapshots.early if name == "early" else snapshots.late
        base = trained.probs
        if base is None or name in ("early", "late"):
            probs = base
            words = f"trainer after {steps:,} steps"
        elif name == "mixed":
            probs = Mixed(base, MIX_SHARE)
            words = f"late mixed {MIX_SHARE:.0%} with uniform"
        else:
            probs = Swapped(base, SWAP_P)
            words = f"late, another action {SWAP_P:.0%} of the time"
        seconds = trained.seconds if name in ("early", "late") else 0.0
        out.append(Candidate(name, words, probs, seconds, trained.problem))
    return out
