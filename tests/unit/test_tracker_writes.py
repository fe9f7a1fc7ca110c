"""The tracker's state is written at most once a second while lines come, and whenever the
loop's inbox runs dry: per line, thousands of open windows (scanners on a large fleet)
kept the loop busy for minutes while arms waited. Each write after the first writes only
what changed since the one before: rewriting 5,580 windows and event ids took the loop
thread 0.11-0.19 s at 10,000 routers, and it decides the arms."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from ipaddress import ip_address

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import collector.agent.tracker_writes as tracker_writes
from collector.agent.tracker_writes import TRACKER_SAVE_EVERY, TrackerWrites
from collector.detect.events import Flow
from collector.detect.tracker import FlowTracker
from collector.errors import StateStoreError
from collector.state import StateStore

T0 = datetime(2026, 12, 7, 18, 0, tzinfo=timezone.utc)


def test_a_burst_of_lines_is_written_once_per_period_and_the_rest_at_the_flush(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(tracker_writes.time, "monotonic", lambda: now[0])
    writes: list[float] = []
    tracker = TrackerWrites(lambda since: writes.append(now[0]))
    for i in range(1000):  # 1,000 lines in 0.999 s
        now[0] = 100.0 + i / 1000
        tracker.changed()
    assert writes == [100.0]  # the first line of the burst, then nothing until a period has passed
    now[0] = 100.0 + TRACKER_SAVE_EVERY
    tracker.changed()
    assert writes == [100.0, 100.0 + TRACKER_SAVE_EVERY]
    now[0] += 0.1
    tracker.changed()
    tracker.flush()  # the inbox ran dry: the last change is written now
    assert len(writes) == 3
    tracker.flush()  # nothing changed since: no write
    assert len(writes) == 3


def test_each_write_is_given_what_the_last_one_that_succeeded_left():
    """The first write is whole (None); each next one gets what the previous returned. A
    refused write leaves the store as it was, so the next is given the same as it was."""
    given_: list = []
    answers = iter(["first", StateStoreError("disk full"), "third"])

    def write(since):
        given_.append(since)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    tracker = TrackerWrites(write)
    for _ in range(3):
        tracker.changed()
        tracker.flush()
    assert given_ == [None, "first", "first"]


def flow(n: int) -> Flow:
    return Flow(f"hub{n % 3}", ip_address(f"203.0.113.{n + 1}"), ip_address("10.0.0.1"), 0x1000 + n, 50)


# One step of the agent's tracker between two writes: a line (flow n, event id e, minutes
# later), a capture, a refused arming, or the windows' expiry.
steps = st.lists(st.one_of(
    st.tuples(st.just("line"), st.integers(0, 7), st.integers(0, 12), st.integers(0, 6)),
    st.tuples(st.just("captured"), st.integers(0, 7), st.just(0), st.integers(0, 3)),
    st.tuples(st.just("forget"), st.integers(0, 7), st.just(0), st.just(0)),
    st.tuples(st.just("expire"), st.just(0), st.just(0), st.integers(0, 15)),
), min_size=1, max_size=40)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(steps=steps, writes_every=st.integers(1, 4))
# flow 0's window ends and opens again after flow 1's opened: it is now the newer of the two
@example(steps=[("line", 0, 0, 0), ("line", 1, 1, 5), ("line", 0, 2, 6)], writes_every=1)
def test_writing_only_what_changed_leaves_the_store_holding_the_whole_tracker(tmp_path_factory, steps, writes_every):
    """After each write, what the store holds is the tracker exactly, its windows' and
    event ids' order included (eviction and forgetting go oldest first after a restart):
    windows opened, counted, closed and opened again, captured, forgotten, expired, and
    event ids forgotten and seen again (small limits make both happen)."""
    path = tmp_path_factory.mktemp("trackers") / "state.db"
    tracker = FlowTracker(2, timedelta(minutes=10), timedelta(minutes=5), timedelta(minutes=2),
                          max_event_ids=6, max_flows=5)
    with StateStore(path) as store:
        saved, at = None, T0
        for index, (kind, n, event, minutes) in enumerate(steps):
            at += timedelta(minutes=minutes)
            if kind == "line":
                tracker.observe(flow(n), at, f"e{event}", frozenset({f"hub{n % 3}", f"spoke{n}"}))
            elif kind == "captured":
                tracker.mark_captured(flow(n), frozenset({f"hub{n % 3}", f"spoke{n}"}), at)
            elif kind == "forget":
                tracker.forget(flow(n))
            else:
                tracker.expire(at)
            if index % writes_every == 0 or index == len(steps) - 1:
                saved = store.save_tracker("invalid-spi", tracker.snapshot(), saved)
                assert state(store.load_tracker("invalid-spi")) == state(tracker.snapshot())


def state(snapshot):
    """A snapshot as what it means: windows, event ids and transients in their order;
    cooldowns as the mappings they are (the store gives them back in its key order)."""
    return (snapshot.windows, snapshot.seen_events, snapshot.pending_transients,
            dict(snapshot.flow_cooldowns), dict(snapshot.pair_cooldowns))


def test_a_write_after_the_first_touches_only_the_rows_that_changed(tmp_path):
    tracker = FlowTracker(2, timedelta(minutes=10), timedelta(minutes=30), timedelta(minutes=15))
    for n in range(2000):  # a scanner sweep: one-line flows
        tracker.observe(Flow("edge", ip_address("198.51.100.1"), ip_address("10.0.0.1"), 0x1000 + n, 50), T0, f"s{n}")
    with StateStore(tmp_path / "state.db") as store:
        rows = store._connection()  # this thread's: the writes below go through it
        whole = rows.total_changes
        saved = store.save_tracker("invalid-spi", tracker.snapshot())
        whole = rows.total_changes - whole
        tracker.observe(Flow("edge", ip_address("198.51.100.1"), ip_address("10.0.0.1"), 0x1001, 50),
                        T0 + timedelta(minutes=1), "repeat")  # counted: one window changes, one id is new
        before = rows.total_changes
        store.save_tracker("invalid-spi", tracker.snapshot(), saved)
        changed = rows.total_changes - before
        assert state(store.load_tracker("invalid-spi")) == state(tracker.snapshot())
    # rows inserted, replaced or deleted (the commit counter's row besides): the window,
    # the id and the save's time, where the whole write touched every window and id
    assert whole >= 4000 and changed <= 5, (whole, changed)
