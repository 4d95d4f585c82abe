"""Stages 1-3 of a run: pin the timeline's version, read its window, split train/eval.

Pinning first is what makes a run reproducible and skippable: everything after reads that one
Delta version, and a scheduled run whose policy already judged that version has nothing new to
learn from. The split is by a stable hash of ``episode_id``, so an episode is always on the same
side and CPE never judges a candidate on episodes it was trained on.

The window is read batch by batch into its dense arrays (:func:`learner.data.read_logged`), with
the eval episodes placed last, so that the split is two views of those arrays: a run holds its
data once, not three times (window, train, eval).
"""

from __future__ import annotations

from learner.data import LoggedData, ReadLimits, SplitRule, read_logged, split_by_episode
from learner.gate_log import last_logged_table_version
from learner.run.context import RunContext
from learner.run.records import PinnedTimeline, RunData, RunResult, Window
from learner.settings import LearnerSettings
from services.delta_tables import open_table

__all__ = [
    "NO_DATA_HINT",
    "episodes_in",
    "load_window",
    "pin_timeline",
    "read_limits",
    "read_window",
    "shortage",
    "split",
]

NO_DATA_HINT = (
    "Run `policyloop sessionize` first (`--until-idle S` for a batch run); rows of ended "
    "episodes are written once their reward window closes."
)


def episodes_in(data: LoggedData) -> int:
    """Episodes in ``data`` (its rows of an episode are contiguous: one run per episode)."""
    return data.n_episodes


def pin_timeline(ctx: RunContext, *, force: bool) -> PinnedTimeline | RunResult:
    """The timeline's current version, or the run's end: no table yet (rejected, with what to
    run first), or nothing new since this policy's last logged run (skipped, unless ``force``)."""
    uri = ctx.timeline_uri
    delta = open_table(uri)
    if delta is None:
        sentence = f"Nothing was published: no timeline table at {uri} (0 rows). {NO_DATA_HINT}"
        return RunResult(ctx.run_id, "rejected", sentence, [sentence], uri)
    version = delta.version()
    s = ctx.settings
    last = last_logged_table_version(s.gate_log_uri, s.policy_name, uri)
    if last is not None and not force and not _data_changed(uri, last, version):
        since = "" if last == version else f"; versions {last + 1}-{version} added no rows"
        sentence = f"Skipped: no new data since the last run (timeline version {last}{since})."
        return RunResult(ctx.run_id, "skipped", sentence, [sentence], uri, version)
    return PinnedTimeline(uri, version)


def _data_changed(uri: str, last: int, version: int) -> bool:
    """Whether the table's data files differ between ``last`` and ``version``.

    A version number alone is not enough: each sessionizer start or rebalance claims its
    partitions with a commit that holds no rows (the zombie fence), and a retrain on identical
    data would be wasted. A version that can no longer be read (vacuumed log, a table replaced
    under the same URI) counts as changed.
    """
    if last == version:
        return False
    if last > version:
        return True
    try:
        before = open_table(uri, version=last)
        now = open_table(uri, version=version)
    except Exception:  # unreadable history (vacuumed log): judge it changed and train
        return True
    if before is None or now is None:
        return True
    return set(before.file_uris()) != set(now.file_uris())


def read_window(ctx: RunContext, timeline: PinnedTimeline) -> Window:
    """The pinned version's rows within ``window_days`` / ``window_rows``, densified."""
    ctx.say(f"reading {timeline.uri} at version {timeline.version}")
    return load_window(ctx.settings, timeline)


def load_window(settings: LearnerSettings, timeline: PinnedTimeline) -> Window:
    """:func:`read_window` without the stage line (what the memory benchmark measures).

    Raises :class:`learner.data.TimelineTooWide` when the state keys or the actions exceed
    ``max_state_features`` / ``max_actions``.
    """
    s = settings
    window = read_logged(
        timeline.uri,
        version=timeline.version,
        window_days=s.window_days,
        window_rows=s.window_rows,
        limits=read_limits(s),
        eval_last=SplitRule(s.eval_fraction, s.seed),
    )
    data = window.data
    return Window(timeline, data, len(data), episodes_in(data))


def read_limits(settings: LearnerSettings) -> ReadLimits:
    """The caps and batch size of every timeline read (a run's, ``policyloop cpe``'s)."""
    return ReadLimits(
        max_state_features=settings.max_state_features,
        max_actions=settings.max_actions,
        batch_rows=settings.read_batch_rows,
    )


def split(settings: LearnerSettings, window: Window) -> RunData:
    """Train/eval by a stable hash of (``seed``, ``episode_id``), ``eval_fraction`` to eval."""
    train_data, eval_data = split_by_episode(window.data, settings.eval_fraction, settings.seed)
    return RunData(
        timeline=window.timeline,
        data=window.data,
        rows=window.rows,
        episodes=window.episodes,
        train_data=train_data,
        eval_data=eval_data,
        train_episodes=episodes_in(train_data),
        eval_episodes=episodes_in(eval_data),
    )


def shortage(settings: LearnerSettings, data: RunData) -> list[str]:
    """Why there is too little data to train and judge a candidate (empty: enough)."""
    too_little = []
    if len(data.train_data) == 0:
        too_little.append("the train split is empty")
    if data.eval_episodes < settings.min_eval_episodes:
        too_little.append(
            f"the eval split has {data.eval_episodes} episodes, fewer than "
            f"min_eval_episodes={settings.min_eval_episodes}"
        )
    return too_little
