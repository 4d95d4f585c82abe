"""Data for the learner: the pinned timeline snapshot, dense arrays, train/eval split.

A run reads with :func:`read_logged` (batch by batch, never the whole table);
:func:`load_timeline` gives the whole table in memory, for tools and tests.

The names are imported on first use (PEP 562): the learner's settings read the caps' defaults
from :mod:`learner.data.limits`, which runs this file, and every command loads the settings --
importing deltalake and pyarrow here would make even ``policyloop --help`` pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the type checker sees the names; the interpreter imports them on use
    from learner.data.limits import ReadLimits, TimelineTooWide
    from learner.data.logged import LoggedData, action_space, densify_states
    from learner.data.reader import LoggedWindow, ReadStats, read_logged
    from learner.data.split import SplitRule, eval_share_of, split_by_episode
    from learner.data.timeline import TimelineSnapshot, load_timeline

_WHERE = {
    "LoggedData": "learner.data.logged",
    "LoggedWindow": "learner.data.reader",
    "ReadLimits": "learner.data.limits",
    "ReadStats": "learner.data.reader",
    "SplitRule": "learner.data.split",
    "TimelineSnapshot": "learner.data.timeline",
    "TimelineTooWide": "learner.data.limits",
    "action_space": "learner.data.logged",
    "densify_states": "learner.data.logged",
    "eval_share_of": "learner.data.split",
    "load_timeline": "learner.data.timeline",
    "read_logged": "learner.data.reader",
    "split_by_episode": "learner.data.split",
}

__all__ = [
    "LoggedData",
    "LoggedWindow",
    "ReadLimits",
    "ReadStats",
    "SplitRule",
    "TimelineSnapshot",
    "TimelineTooWide",
    "action_space",
    "densify_states",
    "eval_share_of",
    "load_timeline",
    "read_logged",
    "split_by_episode",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(_WHERE)
