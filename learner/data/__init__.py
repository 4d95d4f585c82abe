"""Data for the learner: the pinned timeline snapshot, dense arrays, train/eval split."""

from learner.data.logged import LoggedData, action_space, densify_states
from learner.data.split import eval_share_of, split_by_episode
from learner.data.timeline import TimelineSnapshot, load_timeline

__all__ = [
    "LoggedData",
    "TimelineSnapshot",
    "action_space",
    "densify_states",
    "eval_share_of",
    "load_timeline",
    "split_by_episode",
]
