"""Stage 4 of a run: the incumbent, the normalizer, and the trained candidate.

The incumbent (``CURRENT``, loaded sha256-verified) is read before training for two reasons:
its weights warm-start the candidate when features and actions match, and it is the baseline
the candidate must beat. One that cannot be loaded is a warning, not a failed run; while the
gate must beat the incumbent (``gate.beat_incumbent``) it then rejects, naming the version.
"""

from __future__ import annotations

from dataclasses import replace

from learner.preprocessing.normalizer import Normalizer, fit_normalizer
from learner.run.context import RunContext
from learner.run.records import Candidate, Incumbent, RunData
from learner.selection import variants
from learner.trainers.training import train
from services.registry import RegistryError

__all__ = ["fit_train_normalizer", "load_incumbent", "train_candidates"]


def load_incumbent(ctx: RunContext) -> Incumbent:
    """``CURRENT`` now, loaded; a version that fails verification or loading is a warning
    (and a ``problem`` the gate rejects on)."""
    version = ctx.registry.current()
    if version is None:
        return Incumbent(None, None, None, [])
    try:
        module, manifest = ctx.registry.load(version)
    except RegistryError as exc:
        warning = f"The incumbent {version} could not be loaded: {exc}"
        return Incumbent(version, None, None, [warning], problem=f"loading it failed: {exc}")
    return Incumbent(version, module, manifest, [])


def fit_train_normalizer(ctx: RunContext, data: RunData) -> Normalizer:
    """The normalizer of the train split: the served policy carries it, CPE and serving
    apply the same one."""
    train_data = data.train_data
    ctx.say(f"fitting the normalizer on {len(train_data)} train rows")
    return fit_normalizer(train_data.states, train_data.feature_names, ctx.settings.preprocessing)


def train_candidates(
    ctx: RunContext, data: RunData, normalizer: Normalizer, incumbent: Incumbent, *, progress: bool
) -> list[Candidate]:
    """One candidate per selection variant (:mod:`learner.selection`; one by default), each
    trainer configuration trained once on the train split, warm-started from the incumbent
    when it fits the data; variants that differ only in exploration share its networks."""
    warm = incumbent.module if incumbent.fits(data.data) else None
    planned = variants(ctx.settings.trainer, ctx.settings.selection)
    trained = {}
    out = []
    for variant in planned:
        if variant.trainer_index not in trained:
            which = f" {variant.name}" if len(planned) > 1 else ""
            ctx.say(f"training{which}")
            trained[variant.trainer_index] = train(
                data.train_data, variant.settings, normalizer, warm, progress=progress
            )
        result = trained[variant.trainer_index]
        served = result.policy.with_exploration(variant.settings.exploration)
        out.append(
            Candidate(normalizer, replace(result, policy=served), variant.settings, variant.name)
        )
    return out
