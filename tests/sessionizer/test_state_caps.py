"""Bounded state: what one partition may hold, what happens at each cap, and how it is counted.

Pure sessionizer (``services/sessionizer/state_limits.py`` defines the caps); the metric through
the worker's pending batch and its Prometheus registry; the settings through the worker's
``session_config``.
"""

from __future__ import annotations

from schemas.wire import encode_event
from services.sessionizer.batching import PartitionWork, PendingBatch
from services.sessionizer.metrics import SessionizerMetrics
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from services.sessionizer.settings import SessionizerSettings
from services.sessionizer.worker import session_config
from tests.sessionizer.factory import T0, decision, end, reward

WINDOW = 5_000
NOW = T0 + 3_600_000


def sessionizer(**caps: int) -> PartitionSessionizer:
    return PartitionSessionizer(SessionConfig(reward_window_ms=WINDOW, **caps))


def feed(sess: PartitionSessionizer, events, first_offset: int = 0) -> None:
    for offset, event in enumerate(events, start=first_offset):
        sess.process_record(encode_event(event), offset, NOW)


def reasons(sess: PartitionSessionizer) -> list[str]:
    return [dl.reason for dl in sess.take_output().dead_letters]


# ------------------------------------------------------------------ open episodes per partition
def test_the_event_that_would_open_one_episode_too_many_is_a_state_limit_dead_letter():
    sess = sessionizer(max_open_episodes=2)
    feed(sess, [decision("a", 0), decision("b", 0), decision("c", 0)])
    out = sess.take_output()
    assert [(dl.reason, dl.offset) for dl in out.dead_letters] == [("state_limit:open_episodes", 2)]
    assert "max_open_episodes=2" in out.dead_letters[0].detail
    assert sess.open_episodes == 2


def test_episodes_already_open_go_on_at_the_open_episode_cap():
    sess = sessionizer(max_open_episodes=1)
    feed(sess, [decision("a", 0), decision("b", 0), decision("a", 1), end("a", True, ts=T0 + 1)])
    sess.advance(NOW)
    out = sess.take_output()
    assert [dl.reason for dl in out.dead_letters] == ["state_limit:open_episodes"]
    assert [(r["episode_id"], r["step"]) for r in out.rows] == [("a", 0), ("a", 1)]


def test_a_closed_episode_frees_its_place_under_the_open_episode_cap():
    sess = sessionizer(max_open_episodes=1)
    feed(sess, [decision("a", 0), end("a", True, ts=T0 + 1)])
    sess.advance(NOW)
    feed(sess, [decision("b", 0)], first_offset=2)
    assert reasons(sess) == []
    assert sess.open_episodes == 1


# ------------------------------------------------------------------ events held per episode
def test_an_event_beyond_the_events_an_episode_may_hold_is_a_state_limit_dead_letter():
    sess = sessionizer(max_episode_events=3)
    feed(sess, [decision("a", 0), reward("a", 0, 1.0), reward("a", 0, 2.0), reward("a", 0, 3.0)])
    out = sess.take_output()
    assert [(dl.reason, dl.offset) for dl in out.dead_letters] == [
        ("state_limit:episode_events", 3)
    ]
    assert "max_episode_events=3" in out.dead_letters[0].detail


def test_rows_written_make_room_under_the_held_events_cap():
    sess = sessionizer(max_episode_events=2)
    feed(sess, [decision("a", 0), decision("a", 1)])
    sess.expire(NOW)  # row 0 is final and leaves the episode's state
    feed(sess, [decision("a", 2)], first_offset=2)
    assert reasons(sess) == []


# ------------------------------------------------------------------ remembered event ids
def _long_episode(sess: PartitionSessionizer, steps: int) -> None:
    """Steps 10 s apart (twice the window): each decision makes the previous row final."""
    events = []
    for step in range(steps):
        events += [decision("a", step, ts=T0 + step * 10_000),
                   reward("a", step, 1.0, ts=T0 + step * 10_000 + 100)]  # fmt: skip
    feed(sess, events)


def _remembered_ids(sess: PartitionSessionizer) -> list[str]:
    (entry,) = sess.snapshot()["episodes"]
    return list(entry[3])


def test_an_episode_remembers_at_most_max_episode_event_ids_ids():
    sess = sessionizer(max_episode_event_ids=4)
    _long_episode(sess, 6)
    assert len(sess.take_output().rows) == 5
    assert len(_remembered_ids(sess)) <= 4


def test_a_redelivery_of_a_forgotten_event_is_a_state_limit_dead_letter():
    sess = sessionizer(max_episode_event_ids=4)
    _long_episode(sess, 6)
    sess.take_output()
    feed(sess, [decision("a", 0, ts=T0)], first_offset=12)  # "a-d0" again, long forgotten
    out = sess.take_output()
    assert [dl.reason for dl in out.dead_letters] == ["state_limit:event_ids"]
    assert "max_episode_event_ids" in out.dead_letters[0].detail


def test_ids_of_events_not_yet_written_are_never_forgotten():
    sess = sessionizer(max_episode_event_ids=4)
    _long_episode(sess, 6)
    feed(sess, [reward("a", 5, 1.0, ts=T0 + 50_100)], first_offset=12)  # step 5's, again
    feed(sess, [end("a", True, ts=T0 + 50_200)], first_offset=13)
    sess.advance(NOW)
    out = sess.take_output()
    assert out.events[("reward", "duplicate")] == 1
    assert [(r["step"], r["reward"]) for r in out.rows][-1] == (5, 1.0)


def test_a_redelivery_of_a_remembered_event_is_still_an_ignored_duplicate():
    sess = sessionizer(max_episode_event_ids=4)
    _long_episode(sess, 6)
    sess.take_output()
    feed(sess, [decision("a", 5, ts=T0 + 50_000)], first_offset=12)
    out = sess.take_output()
    assert out.dead_letters == [] and out.events[("decision", "duplicate")] == 1


# ------------------------------------------------------------------ counting and settings
def test_each_cap_hit_counts_in_policyloop_sessionizer_state_limit_total():
    metrics = SessionizerMetrics("g")
    batch = PendingBatch(SessionizerSettings(), metrics, "g")
    sess = sessionizer(max_open_episodes=1, max_episode_events=2, max_episode_event_ids=4)
    feed(sess, [decision("a", 0), decision("b", 0), reward("a", 0, 1.0), reward("a", 0, 2.0)])
    batch.collect(PartitionWork(sess, -1, 3, 0, -1))
    hits = {
        limit: metrics.registry.get_sample_value(
            "policyloop_sessionizer_state_limit_total", {"group": "g", "limit": limit}
        )
        for limit in ("open_episodes", "episode_events")
    }
    assert hits == {"open_episodes": 1, "episode_events": 1}


def test_forgotten_ids_count_in_policyloop_sessionizer_state_limit_total():
    metrics = SessionizerMetrics("g")
    batch = PendingBatch(SessionizerSettings(), metrics, "g")
    sess = sessionizer(max_episode_event_ids=4)
    _long_episode(sess, 6)
    batch.collect(PartitionWork(sess, -1, 11, 0, -1))
    forgotten = metrics.registry.get_sample_value(
        "policyloop_sessionizer_state_limit_total", {"group": "g", "limit": "event_ids"}
    )
    assert forgotten == 12 - len(_remembered_ids(sess))


def test_the_caps_are_sessionizer_settings_with_defaults():
    settings = SessionizerSettings()
    assert settings.max_open_episodes == 100_000
    assert settings.max_episode_events == 10_000
    assert settings.max_episode_event_ids == 20_000
    assert settings.max_future_skew_s == 300.0


def test_the_caps_reach_the_rules():
    config = session_config(
        SessionizerSettings(
            max_open_episodes=7,
            max_episode_events=8,
            max_episode_event_ids=9,
            max_future_skew_s=1.5,
        )
    )
    assert (config.max_open_episodes, config.max_episode_events) == (7, 8)
    assert (config.max_episode_event_ids, config.max_future_skew_ms) == (9, 1_500)


# ------------------------------------------------------------------ what changed since a commit
def test_only_episodes_changed_since_the_last_take_are_reported():
    sess = sessionizer()
    feed(sess, [decision("a", 0), decision("b", 0)])
    assert sess.take_changes() == {"a", "b"}
    feed(sess, [reward("b", 0, 1.0)], first_offset=2)
    assert sess.take_changes() == {"b"}
    assert sess.take_changes() == set()


def test_episodes_whose_rows_were_written_or_that_closed_are_reported_as_changed():
    sess = sessionizer()
    feed(sess, [decision("a", 0), decision("a", 1), decision("b", 0), end("b", True, ts=T0)])
    sess.take_changes()
    sess.expire(NOW)  # a's row 0 is written; b closes
    assert sess.take_changes() == {"a", "b"}
