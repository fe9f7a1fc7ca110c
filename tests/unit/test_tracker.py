from __future__ import annotations

from datetime import datetime, timedelta, timezone
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.detect.events import Flow
from collector.detect.tracker import (
    Decision,
    FlowTracker,
    decode_key,
    encode_key,
    snapshot_from_json,
    snapshot_to_json,
)

T0 = datetime(2024, 3, 12, 18, 22, 10, tzinfo=timezone.utc)
FLOW = Flow("hub1", ip_address("11.1.1.3"), ip_address("213.163.222.7"), 0x68842105, 50)
OTHER = Flow("hub1", ip_address("11.1.1.3"), ip_address("213.163.222.7"), 0x11111111, 50)
PAIR = frozenset({"hub1", "spoke3"})


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def tracker(**kw) -> FlowTracker:
    args = dict(occurs=2, within=minutes(10), cooldown_flow=minutes(30), cooldown_pair=minutes(15))
    args.update(kw)
    return FlowTracker(**args)


def test_two_within_ten_minutes_is_first_then_repeated():
    t = tracker()
    assert t.observe(FLOW, T0, "e1", PAIR) is Decision.FIRST
    assert t.observe(FLOW, T0 + minutes(1), "e2", PAIR) is Decision.REPEATED
    # REPEATED is handed out once per window; later lines only count
    assert t.observe(FLOW, T0 + minutes(2), "e3", PAIR) is Decision.COUNTED
    assert t.window(FLOW).count == 3


def test_three_within_counts_between_first_and_repeat():
    t = tracker(occurs=3)
    assert t.observe(FLOW, T0, "e1") is Decision.FIRST
    assert t.observe(FLOW, T0 + minutes(1), "e2") is Decision.COUNTED
    assert t.observe(FLOW, T0 + minutes(2), "e3") is Decision.REPEATED


def test_occurs_one_captures_immediately():
    t = tracker(occurs=1)
    assert t.observe(FLOW, T0, "e1") is Decision.REPEATED


def test_repeat_after_window_is_a_new_first_and_old_window_is_transient():
    t = tracker()
    assert t.observe(FLOW, T0, "e1") is Decision.FIRST
    assert t.observe(FLOW, T0 + minutes(10, ) + timedelta(seconds=1), "e2") is Decision.FIRST
    assert t.expire(T0 + minutes(11)) == [FLOW]
    assert t.window(FLOW).first_seen == T0 + minutes(10) + timedelta(seconds=1)


def test_repeat_exactly_at_window_end_still_counts():
    t = tracker()
    t.observe(FLOW, T0, "e1")
    assert t.observe(FLOW, T0 + minutes(10), "e2") is Decision.REPEATED


def test_expire_returns_only_transients_and_drops_them():
    t = tracker()
    t.observe(FLOW, T0, "a1")
    t.observe(OTHER, T0, "b1")
    t.observe(OTHER, T0 + minutes(1), "b2")  # repeated: not a transient
    assert t.expire(T0 + minutes(9)) == []
    assert t.expire(T0 + minutes(10)) == [FLOW]
    assert t.window(FLOW) is None and t.window(OTHER) is None
    assert t.expire(T0 + minutes(20)) == []


def test_window_end_is_first_seen_plus_within():
    t = tracker()
    t.observe(FLOW, T0, "e1")
    assert t.window_end(FLOW) == T0 + minutes(10)
    assert t.window_end(OTHER) is None


def test_duplicate_event_id_is_not_counted():
    t = tracker()
    assert t.observe(FLOW, T0, "same-line") is Decision.FIRST
    assert t.observe(FLOW, T0 + timedelta(seconds=5), "same-line") is Decision.DUPLICATE
    assert t.window(FLOW).count == 1
    assert t.observe(FLOW, T0 + minutes(1), "next-line") is Decision.REPEATED


def test_out_of_order_line_counts_inside_window():
    t = tracker()
    t.observe(FLOW, T0 + minutes(2), "late")
    assert t.observe(FLOW, T0, "early") is Decision.REPEATED
    assert t.window(FLOW).last_seen == T0 + minutes(2)


def test_flow_cooldown_after_capture():
    t = tracker()
    t.observe(FLOW, T0, "e1", PAIR)
    t.observe(FLOW, T0 + minutes(1), "e2", PAIR)
    t.mark_captured(FLOW, PAIR, T0 + minutes(3))
    assert t.window(FLOW) is None
    # pair cooldown (15m) is shorter than flow cooldown (30m): check the flow one alone
    assert t.observe(FLOW, T0 + minutes(20), "e3", None) is Decision.COOLDOWN
    assert t.observe(FLOW, T0 + minutes(33), "e4", None) is Decision.FIRST


def test_pair_cooldown_blocks_other_flows_on_the_same_tunnel():
    t = tracker()
    t.mark_captured(FLOW, PAIR, T0)
    assert t.observe(OTHER, T0 + minutes(5), "o1", PAIR) is Decision.COOLDOWN
    assert t.observe(OTHER, T0 + minutes(5), "o2", frozenset({"hub1", "spoke9"})) is Decision.FIRST
    assert t.observe(OTHER, T0 + minutes(15), "o3", PAIR) is Decision.REPEATED  # cooldown over, window of o2
    other = Flow("hub2", ip_address("10.0.0.1"), ip_address("10.0.0.2"), 7, 50)
    assert t.observe(other, T0 + minutes(15), "o4", PAIR) is Decision.FIRST


def test_zero_cooldowns_mean_no_cooldown():
    t = tracker(cooldown_flow=timedelta(0), cooldown_pair=timedelta(0))
    t.mark_captured(FLOW, PAIR, T0)
    assert t.observe(FLOW, T0, "e1", PAIR) is Decision.FIRST


def test_duplicate_wins_over_cooldown():
    t = tracker()
    t.observe(FLOW, T0, "e1")
    t.mark_captured(FLOW, None, T0)
    assert t.observe(FLOW, T0 + minutes(1), "e1") is Decision.DUPLICATE


def test_naive_datetimes_are_rejected():
    t = tracker()
    with pytest.raises(ValueError, match="timezone-aware"):
        t.observe(FLOW, datetime(2024, 1, 1), "e1")


@pytest.mark.parametrize(
    "kw",
    [dict(occurs=0), dict(within=timedelta(0)), dict(cooldown_flow=timedelta(seconds=-1))],
)
def test_bad_parameters_are_rejected(kw):
    with pytest.raises(ValueError):
        tracker(**kw)


def test_snapshot_round_trip_through_json_keeps_behaviour():
    t = tracker()
    generic = ("edge1", "Tunnel100")
    t.observe(FLOW, T0, "e1", PAIR)
    t.observe(generic, T0, "g1", None)
    t.observe(OTHER, T0 - minutes(30), "x1")  # closed below N -> pending transient
    t.observe(OTHER, T0, "x2")
    t.mark_captured(("edge2", "Tunnel7"), frozenset({"edge2", "edge3"}), T0)

    text = snapshot_to_json(t.snapshot())
    again = tracker()
    again.load_json(text)
    assert again.snapshot() == t.snapshot()
    assert snapshot_from_json(again.to_json()) == t.snapshot()

    # the restored tracker behaves the same: dedupe, counting, cooldown, pending transients
    assert again.observe(FLOW, T0 + minutes(1), "e1", PAIR) is Decision.DUPLICATE
    assert again.observe(FLOW, T0 + minutes(1), "e2", PAIR) is Decision.REPEATED
    assert again.observe(("edge2", "Tunnel7"), T0 + minutes(1), "c1") is Decision.COOLDOWN
    assert again.expire(T0 + minutes(1)) == [OTHER]


def test_key_codec_round_trips_flows_and_tuples():
    v6 = Flow("r", ip_address("2001:db8::1"), ip_address("2001:db8::2"), 0xFFFFFFFF, 51)
    for key in (FLOW, v6, ("r1", "Tunnel0"), ("r1", 5)):
        assert decode_key(encode_key(key)) == key
    with pytest.raises(TypeError):
        encode_key(["not", "hashable as a key"])
    with pytest.raises(TypeError):
        encode_key(("r1", 1.5))


def test_event_ids_are_forgotten_after_the_horizon():
    t = tracker()
    t.observe(FLOW, T0, "e1")
    t.expire(T0 + minutes(11))
    assert t.snapshot().seen_events == ()
    # an id older than the horizon is no longer a duplicate (bounded memory)
    assert t.observe(FLOW, T0 + minutes(12), "e1") is Decision.FIRST


def test_memory_stays_bounded_under_a_flood_of_flows():
    t = tracker(max_event_ids=50, max_flows=20)
    for i in range(1000):
        flow = Flow("hub1", ip_address("11.1.1.3"), ip_address("10.0.0.1"), i, 50)
        t.observe(flow, T0 + timedelta(seconds=i), f"id-{i}")
    snap = t.snapshot()
    assert len(snap.windows) == 20
    assert len(snap.seen_events) == 50
    # evicted windows are reported as transients so the agent can disarm them
    transients = t.expire(T0 + timedelta(seconds=1000))
    assert len(transients) == 980
    assert transients[0].spi == 0
    # the cooldown tables shrink too
    t.mark_captured(FLOW, PAIR, T0)
    t.expire(T0 + minutes(60))
    assert t.snapshot().flow_cooldowns == () and t.snapshot().pair_cooldowns == ()


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=3600), min_size=1, max_size=40),
    occurs=st.integers(min_value=1, max_value=4),
)
def test_every_repeat_decision_matches_a_recount(offsets, occurs):
    """Property: REPEATED is returned exactly when the window's count first reaches N."""
    t = tracker(occurs=occurs, cooldown_flow=timedelta(0), cooldown_pair=timedelta(0))
    start = None
    count = 0
    for i, off in enumerate(sorted(offsets)):
        at = T0 + timedelta(seconds=off)
        decision = t.observe(FLOW, at, f"e{i}")
        if start is None or at > start + minutes(10):
            start, count = at, 1
        else:
            count += 1
        expected = (
            Decision.REPEATED
            if count == occurs
            else Decision.FIRST
            if count == 1
            else Decision.COUNTED
        )
        assert decision is expected
