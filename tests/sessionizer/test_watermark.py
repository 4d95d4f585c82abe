"""The partition's watermark: event time, not arrival time, decides lateness and timeouts.

Pure sessionizer, injected clocks. ``arrival`` is the wall time handed with each record (when the
worker read it); ``expire(idle_now_ms)`` is what the worker does after every fetch and tick (with
``idle_now_ms`` = wall time minus the slack once the partition is caught up);
``advance(now_ms)`` is the end of a batch run's input. See ``services/sessionizer/watermark.py``.
"""

from __future__ import annotations

from schemas.wire import encode_event
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from tests.sessionizer.factory import T0, decision, end, reward

WINDOW = 5_000
TIMEOUT = 60_000
HOUR = 3_600_000
CONFIG = SessionConfig(
    reward_window_ms=WINDOW,
    default_reward=-1.0,
    episode_timeout_ms=TIMEOUT,
    max_future_skew_ms=300_000,
)


def feed(sess: PartitionSessionizer, events, arrival: int, first_offset: int = 0) -> None:
    for offset, event in enumerate(events, start=first_offset):
        sess.process_record(encode_event(event), offset, arrival)


def test_the_watermark_is_the_newest_event_time_seen():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("a", 0, ts=T0), decision("a", 1, ts=T0 + 700)], arrival=T0 + 1_000)
    assert sess.watermark == T0 + 700


def test_an_event_stamped_ahead_of_its_arrival_moves_the_watermark_only_to_its_arrival():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("a", 0, ts=T0)], arrival=T0 + 100)
    feed(sess, [decision("skewed", 0, ts=T0 + 180_000)], arrival=T0 + 200, first_offset=1)
    assert sess.watermark == T0 + 200


def test_an_event_more_than_max_future_skew_ahead_of_its_arrival_is_a_dead_letter():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("a", 0, ts=T0 + 300_001)], arrival=T0)
    letters = sess.take_output().dead_letters
    assert [dl.reason for dl in letters] == ["invalid:ts"]
    assert sess.watermark < T0


def test_a_future_stamped_event_closes_no_other_episodes_reward_window():
    d0, d1 = decision("a", 0, ts=T0), decision("a", 1, ts=T0 + 10)
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [d0, d1, decision("skewed", 0, ts=T0 + 180_000)], arrival=T0 + 200)
    sess.expire()
    feed(sess, [reward("a", 0, 2.0, ts=T0 + 1_000), end("a", True, ts=T0 + 1_100)], T0 + 1_200, 3)
    sess.expire(T0 + 20_000)
    rows = sess.take_output().rows
    assert [(r["episode_id"], r["step"], r["reward"]) for r in rows] == [
        ("a", 0, 2.0),
        ("a", 1, -1.0),
    ]


def test_a_future_stamped_event_times_out_no_other_episode():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("a", 0, ts=T0)], arrival=T0 + 100)
    feed(sess, [decision("skewed", 0, ts=T0 + 4 * 60_000)], arrival=T0 + 200, first_offset=1)
    sess.expire()
    assert sess.open_episodes == 2
    assert sess.take_output().rows == []


def test_quiet_time_closes_the_windows_of_rows_whose_successor_is_known():
    d0, d1 = decision("a", 0, ts=T0), decision("a", 1, ts=T0 + 10)
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [d0, d1], arrival=T0 + 20)
    sess.expire(T0 + WINDOW)
    assert [r["step"] for r in sess.take_output().rows] == [0]


def test_quiet_time_never_times_out_an_episode():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("a", 0, ts=T0), decision("a", 1, ts=T0 + 10)], arrival=T0 + 20)
    sess.expire(T0 + HOUR)  # an hour without a record: a producer outage looks just like this
    assert sess.open_episodes == 1
    assert [(r["step"], r["truncated"]) for r in sess.take_output().rows] == [(0, False)]


def test_a_replay_after_an_outage_longer_than_the_timeout_continues_its_episodes():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("a", 0, ts=T0), decision("a", 1, ts=T0 + 10)], arrival=T0 + 20)
    for minute in range(1, 61):  # the worker's ticks during an hour-long producer outage
        sess.expire(T0 + minute * 60_000)
    spooled = [
        decision("a", 2, ts=T0 + 30_000),
        reward("a", 2, 1.0, ts=T0 + 30_100),
        end("a", True, ts=T0 + 30_200),
    ]
    feed(sess, spooled, arrival=T0 + HOUR + 1_000, first_offset=2)
    sess.expire(T0 + HOUR + 1_000)
    out = sess.take_output()
    assert out.dead_letters == []
    assert [(r["step"], r["reward"], r["terminal"], r["truncated"]) for r in out.rows] == [
        (0, -1.0, False, False),
        (1, -1.0, False, False),
        (2, 1.0, True, False),
    ]
    assert sess.open_episodes == 0


def test_a_replayed_reward_behind_its_successor_but_inside_its_window_joins_its_row():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("before", 0, ts=T0)], arrival=T0 + 10)
    sess.expire(T0 + HOUR)  # quiet for an hour, then the spool arrives
    spooled = [
        decision("c", 0, ts=T0 + 30_000),
        decision("c", 1, ts=T0 + 30_100),
        reward("c", 0, 3.0, ts=T0 + 32_000),  # after step 1 on the wire, 2 s after step 0
        end("c", True, ts=T0 + 32_100),
    ]
    feed(sess, spooled, arrival=T0 + HOUR + 1_000, first_offset=1)
    sess.expire()
    feed(sess, [decision("after", 0, ts=T0 + 40_000)], T0 + HOUR + 2_000, 5)  # moves event time
    sess.expire()
    out = sess.take_output()
    assert out.dead_letters == []
    assert [(r["episode_id"], r["step"], r["reward"]) for r in out.rows] == [
        ("c", 0, 3.0),
        ("c", 1, -1.0),
    ]


def test_event_time_of_other_episodes_times_out_a_silent_episode():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("silent", 0, ts=T0)], arrival=T0 + 10)
    feed(sess, [decision("busy", 0, ts=T0 + TIMEOUT)], arrival=T0 + TIMEOUT + 10, first_offset=1)
    sess.expire()
    rows = sess.take_output().rows
    assert [(r["episode_id"], r["step"], r["truncated"]) for r in rows] == [("silent", 0, True)]


def test_a_record_just_read_is_not_closed_by_quiet_time_before_the_next_one_can_arrive():
    """Between two fetches of a replay the partition is caught up for a moment: the quiet-time
    rule waits until no record has arrived for the slack (``idle_now_ms`` = wall - slack)."""
    sess = PartitionSessionizer(CONFIG)
    arrival = T0 + HOUR
    feed(sess, [decision("c", 0, ts=T0), decision("c", 1, ts=T0 + 10)], arrival=arrival)
    sess.expire(arrival - 2_000)  # a tick right after the fetch: wall - slack < arrival
    feed(sess, [reward("c", 0, 1.0, ts=T0 + 1_000)], arrival=arrival + 50, first_offset=2)
    sess.expire(arrival + 50)  # quiet since the last record: now complete rows close
    out = sess.take_output()
    assert out.dead_letters == []
    assert [(r["step"], r["reward"]) for r in out.rows] == [(0, 1.0)]


def test_the_end_of_a_batch_runs_input_closes_windows_and_timeouts_on_wall_time():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("a", 0, ts=T0), decision("a", 1, ts=T0 + 10)], arrival=T0 + 20)
    sess.advance(T0 + HOUR)
    rows = sess.take_output().rows
    assert [(r["step"], r["truncated"]) for r in rows] == [(0, False), (1, True)]


def test_the_end_of_a_batch_runs_input_leaves_the_watermark_on_event_time():
    sess = PartitionSessionizer(CONFIG)
    feed(sess, [decision("a", 0, ts=T0)], arrival=T0 + 20)
    sess.advance(T0 + HOUR)
    assert sess.watermark == T0
    feed(sess, [decision("b", 0, ts=T0 + 1_000)], arrival=T0 + HOUR + 10, first_offset=1)
    sess.expire()  # the next run's replay is judged on event time: not timed out at once
    assert sess.open_episodes == 1


def test_the_watermark_survives_a_checkpoint():
    first = PartitionSessionizer(CONFIG)
    feed(first, [decision("a", 0, ts=T0 + 500)], arrival=T0 + 600)
    second = PartitionSessionizer(CONFIG)
    second.restore(first.snapshot())
    assert second.watermark == T0 + 500
