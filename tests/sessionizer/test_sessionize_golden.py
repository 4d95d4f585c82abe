"""Golden cases: each list of events becomes exactly these rows and dead letters.

The sessionizer is pure (no broker), the clock is injected: ``NOW`` is the wall time handed
with each record and ``advance`` moves the event clock to close windows and timeouts.
"""

from __future__ import annotations

from typing import Any

import msgpack

from schemas.tables import rows_to_table
from schemas.wire import encode_batch, encode_event
from services.sessionizer.checkpoint import CheckpointStore
from services.sessionizer.sessionize import PartitionSessionizer, SessionConfig
from tests.sessionizer.factory import T0, decision, end, reward

WINDOW = 5_000
NOW = T0 + 3_600_000  # wall clock well after the events: nothing is "in the future"
CONFIG = SessionConfig(reward_window_ms=WINDOW, default_reward=-1.0, episode_timeout_ms=60_000)


def run(events, *, advance_to: int | None = None, config: SessionConfig = CONFIG, batch=False):
    sess = PartitionSessionizer(config)
    if batch:
        sess.process_record(encode_batch(events), 0, NOW)
    else:
        for offset, event in enumerate(events):
            sess.process_record(encode_event(event), offset, NOW)
    if advance_to is not None:
        sess.advance(advance_to)
    out = sess.take_output()
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in out.rows]
    return rows, out.dead_letters, sess


def row(
    d: dict[str, Any],
    *,
    ordinal: int,
    first_step: int,
    reward: float,
    reward_count: int,
    nxt: dict[str, Any] | None,
    terminal: bool = False,
    truncated: bool = False,
    metrics: dict[str, float] | None = None,
    processed_at_ms: int,
) -> dict[str, Any]:
    """The expected row of decision ``d`` (written out field by field, as the table defines)."""
    return {
        "ds": "2026-01-01",
        "episode_id": d["episode_id"],
        "step": d["step"],
        "step_ordinal": ordinal,
        "decision_id": d["event_id"],
        "ts": d["ts"] * 1000,
        "state": d["state"],
        "action": str(d["action"]),
        "possible_actions": ["0", "1"],
        "propensity": 0.5,
        "action_probs": None,
        "reward": reward,
        "metrics": metrics,
        "reward_count": reward_count,
        "next_state": None if nxt is None else nxt["state"],
        "next_action": None if nxt is None else str(nxt["action"]),
        "possible_next_actions": None if nxt is None else ["0", "1"],
        "next_propensity": None if nxt is None else 0.5,
        "time_diff": None if nxt is None else nxt["step"] - d["step"],
        "time_since_first": d["step"] - first_step,
        "terminal": terminal,
        "truncated": truncated,
        "policy_version": "v1",
        "processed_at": processed_at_ms * 1000,
        "action_features": None,
    }


def reasons(letters) -> list[str]:
    return [dl.reason for dl in letters]


def test_action_features_reach_the_row_aligned_with_possible_actions():
    d0 = decision("e", 0, action_features={"1": {"price": 2}}, schema_version=2)
    close = d0["ts"] + WINDOW
    rows, letters, _ = run([d0, end("e", True, ts=d0["ts"])], advance_to=close)
    expected = row(d0, ordinal=0, first_step=0, reward=-1.0, reward_count=0, nxt=None,
                   terminal=True, processed_at_ms=close)  # fmt: skip
    assert rows == [expected | {"action_features": [{}, {"price": 2.0}]}] and letters == []


def test_single_step_episode_becomes_one_terminal_row_once_its_window_closes():
    d0 = decision("e", 0)
    events = [d0, reward("e", 0, 2.5), end("e", True, ts=d0["ts"] + 200)]
    rows, letters, _ = run(events)
    assert rows == [] and letters == []  # window still open (clock = newest event ts)
    close = d0["ts"] + WINDOW
    rows, letters, sess = run(events, advance_to=close)
    assert rows == [
        row(
            d0,
            ordinal=0,
            first_step=0,
            reward=2.5,
            reward_count=1,
            nxt=None,
            terminal=True,
            processed_at_ms=close,
        )
    ]
    assert letters == [] and sess.open_episodes == 0


def test_missing_reward_gives_the_default_reward_and_count_zero():
    d0, d1 = decision("e", 0), decision("e", 1)
    events = [d0, d1, end("e", True, ts=d1["ts"] + 10)]
    close = d1["ts"] + WINDOW
    rows, letters, _ = run(events, advance_to=close)
    assert rows == [
        row(
            d0, ordinal=0, first_step=0, reward=-1.0, reward_count=0, nxt=d1, processed_at_ms=close
        ),
        row(
            d1,
            ordinal=1,
            first_step=0,
            reward=-1.0,
            reward_count=0,
            nxt=None,
            terminal=True,
            processed_at_ms=close,
        ),
    ]
    assert letters == []


def test_several_rewards_are_summed_with_their_metrics():
    d0 = decision("e", 0)
    events = [
        d0,
        reward("e", 0, 1.0, metrics={"clicks": 1.0}),
        reward("e", 0, 2.0, metrics={"clicks": 2.0, "spend": 0.5}),
        reward("e", 0, 4.0),
        end("e", False, ts=d0["ts"] + 500),
    ]
    close = d0["ts"] + WINDOW
    rows, letters, _ = run(events, advance_to=close)
    assert rows == [
        row(
            d0,
            ordinal=0,
            first_step=0,
            reward=7.0,
            reward_count=3,
            nxt=None,
            truncated=True,
            metrics={"clicks": 3.0, "spend": 0.5},
            processed_at_ms=close,
        )
    ]
    assert letters == []


def test_first_aggregation_takes_the_first_reward_and_does_not_wait_for_the_window():
    config = SessionConfig(reward_window_ms=WINDOW, aggregation="first", default_reward=-1.0)
    d0, d1 = decision("e", 0), decision("e", 1)
    events = [
        d0,
        reward("e", 0, 3.0, metrics={"m": 1.0}),
        reward("e", 0, 10.0, metrics={"m": 5.0}),
        d1,
    ]
    rows, letters, sess = run(events, config=config)
    # d0 has its successor and a reward: final at once, with the first reward only
    assert rows == [
        row(
            d0,
            ordinal=0,
            first_step=0,
            reward=3.0,
            reward_count=2,
            nxt=d1,
            metrics={"m": 1.0},
            processed_at_ms=NOW,
        )
    ]
    assert letters == [] and sess.open_episodes == 1


def test_reward_before_its_decision_is_joined_when_the_decision_arrives():
    d0 = decision("e", 0)
    events = [reward("e", 0, 5.0, ts=d0["ts"] + 50), d0, end("e", True, ts=d0["ts"] + 60)]
    close = d0["ts"] + WINDOW
    rows, letters, _ = run(events, advance_to=close)
    assert rows == [
        row(
            d0,
            ordinal=0,
            first_step=0,
            reward=5.0,
            reward_count=1,
            nxt=None,
            terminal=True,
            processed_at_ms=close,
        )
    ]
    assert letters == []


def test_out_of_order_steps_are_written_in_step_order_with_gaps_as_time_diff():
    # all inside one reward window, which is also the re-ordering window
    d0, d2, d5 = decision("e", 0), decision("e", 2, ts=T0 + 1000), decision("e", 5, ts=T0 + 2000)
    events = [d5, d0, end("e", True, ts=d5["ts"] + 1), d2]
    close = d5["ts"] + WINDOW
    rows, letters, _ = run(events, advance_to=close, batch=True)
    assert rows == [
        row(
            d0, ordinal=0, first_step=0, reward=-1.0, reward_count=0, nxt=d2, processed_at_ms=close
        ),
        row(
            d2, ordinal=1, first_step=0, reward=-1.0, reward_count=0, nxt=d5, processed_at_ms=close
        ),
        row(
            d5,
            ordinal=2,
            first_step=0,
            reward=-1.0,
            reward_count=0,
            nxt=None,
            terminal=True,
            processed_at_ms=close,
        ),
    ]
    assert [r["time_diff"] for r in rows] == [2, 3, None]
    assert [r["time_since_first"] for r in rows] == [0, 2, 5]
    assert letters == []


def test_duplicate_event_ids_are_ignored_and_counted_not_dead_lettered():
    d0 = decision("e", 0)
    r0 = reward("e", 0, 1.0)
    events = [d0, r0, dict(r0), dict(d0), end("e", True, ts=d0["ts"] + 1)]
    close = d0["ts"] + WINDOW
    sess = PartitionSessionizer(CONFIG)
    for offset, event in enumerate(events):
        sess.process_record(encode_event(event), offset, NOW)
    sess.advance(close)
    out = sess.take_output()
    assert [r["reward"] for r in out.rows] == [1.0]
    assert [r["reward_count"] for r in out.rows] == [1]
    assert out.dead_letters == []
    assert out.events[("decision", "duplicate")] == 1
    assert out.events[("reward", "duplicate")] == 1


def test_second_decision_for_a_step_with_another_event_id_is_dead_lettered():
    d0 = decision("e", 0)
    clash = decision("e", 0, event_id="other")
    _rows, letters, _ = run([d0, clash])
    assert reasons(letters) == ["duplicate_step"]
    assert letters[0].value == encode_event(clash) and letters[0].offset == 1


def test_episode_end_terminal_marks_the_last_row_terminal():
    d0, d1 = decision("e", 0), decision("e", 1)
    close = d1["ts"] + WINDOW
    rows, _, _ = run([d0, d1, end("e", True, ts=d1["ts"])], advance_to=close)
    assert [(r["terminal"], r["truncated"]) for r in rows] == [(False, False), (True, False)]


def test_episode_end_not_terminal_marks_the_last_row_truncated():
    d0, d1 = decision("e", 0), decision("e", 1)
    close = d1["ts"] + WINDOW
    rows, _, _ = run([d0, d1, end("e", False, ts=d1["ts"])], advance_to=close)
    assert [(r["terminal"], r["truncated"]) for r in rows] == [(False, False), (False, True)]


def test_silent_episode_is_closed_as_truncated_after_the_timeout():
    d0, d1 = decision("e", 0), decision("e", 1)
    rows, _letters, sess = run([d0, d1], advance_to=d1["ts"] + 59_999)
    # d0 is final (successor known, window closed); d1 waits for its successor or the end
    assert [r["step"] for r in rows] == [0]
    assert sess.open_episodes == 1
    sess.advance(d1["ts"] + 60_000)
    rows = sess.take_output().rows
    assert [(r["step"], r["terminal"], r["truncated"], r["next_action"]) for r in rows] == [
        (1, False, True, None)
    ]
    assert sess.open_episodes == 0


def test_reward_past_its_window_is_dead_lettered_as_late():
    d0 = decision("e", 0)
    late = reward("e", 0, 9.0, ts=d0["ts"] + WINDOW + 1)
    rows, letters, _ = run([d0, late, end("e", True, ts=d0["ts"] + 1)], advance_to=NOW)
    assert reasons(letters) == ["late"]
    assert letters[0].value == encode_event(late) and letters[0].offset == 1
    assert [(r["reward"], r["reward_count"]) for r in rows] == [(-1.0, 0)]


def test_reward_for_a_row_already_written_is_dead_lettered_as_late():
    d0 = decision("e", 0)
    rows, _, sess = run([d0, end("e", True, ts=d0["ts"])], advance_to=d0["ts"] + WINDOW)
    assert len(rows) == 1
    sess.process_record(encode_event(reward("e", 0, 1.0, ts=d0["ts"] + 10)), 9, NOW)
    out = sess.take_output()
    assert reasons(out.dead_letters) == ["late"] and out.rows == []


def test_reward_without_a_decision_is_dead_lettered_when_the_episode_closes():
    d0 = decision("e", 0)
    stray = reward("e", 7, 1.0, ts=d0["ts"])
    rows, letters, _ = run([d0, stray, end("e", True, ts=d0["ts"])], advance_to=d0["ts"] + WINDOW)
    assert [r["step"] for r in rows] == [0]
    assert reasons(letters) == ["orphan_reward"]


def test_rows_build_a_valid_timeline_table():
    d0, d1 = decision("e", 0, action_probs=[0.5, 0.5]), decision("e", 1)
    rows, _, _ = run(
        [d0, reward("e", 0, 1.0, metrics={"m": 2.0}), d1, end("e", True, ts=d1["ts"])],
        advance_to=d1["ts"] + WINDOW,
    )
    table = rows_to_table(rows)
    assert table.num_rows == 2
    assert table.column("action_probs").to_pylist() == [[0.5, 0.5], None]


def test_snapshot_and_restore_continue_exactly_where_the_state_was(tmp_path):
    d0, d1 = decision("e", 0), decision("e", 1)
    first = PartitionSessionizer(CONFIG)
    first.process_record(encode_event(d0), 0, NOW)
    first.process_record(encode_event(reward("e", 0, 2.0)), 1, NOW)
    first.process_record(encode_event(decision("closed", 0)), 2, NOW)
    first.process_record(encode_event(end("closed", True, ts=T0)), 3, NOW)
    first.advance(T0 + WINDOW)  # "closed" is written and remembered as closed
    assert len(first.take_output().rows) == 1
    store = CheckpointStore(str(tmp_path), "group", "topic")  # through MessagePack, as on disk
    store.save(0, 1, first.snapshot())
    second = PartitionSessionizer(CONFIG)
    second.restore(store.load(0, 1))
    assert second.open_episodes == first.open_episodes == 1
    second.process_record(encode_event(reward("closed", 0, 1.0)), 4, NOW)
    assert [dl.reason for dl in second.take_output().dead_letters] == ["late"]
    for sess in (first, second):
        sess.process_record(encode_event(d1), 2, NOW)
        sess.process_record(encode_event(end("e", True, ts=d1["ts"])), 3, NOW)
        sess.advance(d1["ts"] + WINDOW)
    assert first.take_output().rows == second.take_output().rows


def test_a_checkpoint_of_positional_arrays_restores_and_is_written_back_in_the_same_form():
    """Checkpoints written before the state had named records (plain ``[offset, index, event]``
    and 9-element episode arrays) load, and today's snapshot of that state reads the same."""
    d0, d1, r0 = decision("e", 0), decision("e", 1), reward("e", 0, 2.0)
    the_end = end("e", True, ts=d1["ts"], last_step=1)
    old = {
        "v": 1,
        "clock": d1["ts"],
        "episodes": [
            ["e", [[0, None, d0], [2, 0, d1]], [[1, None, r0]], ["e-d0", "e-r0-2.0", "e-d1"],
             [2, 1, the_end], d1["ts"], None, 0, None],
        ],
        "closed_ids": ["gone"],
        "closed_at": [T0],
    }  # fmt: skip
    packed = msgpack.packb(old, use_bin_type=True)
    sess = PartitionSessionizer(CONFIG)
    sess.restore(msgpack.unpackb(packed, raw=False, strict_map_key=False))
    again = msgpack.unpackb(msgpack.packb(sess.snapshot(), use_bin_type=True), raw=False)
    for snap in (again, old):  # event ids are a set: their order in the array is arbitrary
        snap["episodes"][0][3] = sorted(snap["episodes"][0][3])
    assert again == old
    sess.advance(d1["ts"] + WINDOW)
    rows = sess.take_output().rows
    steps = [(r["step"], r["reward"], r["terminal"]) for r in rows]
    assert steps == [(0, 2.0, False), (1, -1.0, True)]
