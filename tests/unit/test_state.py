from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from ipaddress import ip_address
from pathlib import Path

import pytest

from collector.detect.events import Flow, InvalidSpiEvent
from collector.detect.tracker import Decision, FlowTracker, encode_key
from collector.respond.plan import Step
from collector.state import (
    SCHEMA_VERSION,
    EventRecord,
    LogCursorRecord,
    StateError,
    StateStore,
)

T0 = datetime(2024, 3, 12, 18, 22, 10, tzinfo=timezone.utc)
FLOW = Flow("hub1", ip_address("11.1.1.3"), ip_address("213.163.222.7"), 0x68842105, 50)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    with StateStore(tmp_path / "state" / "collector.db") as s:
        yield s


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- files


def test_creates_private_dir_and_file_with_wal(tmp_path):
    old = os.umask(0)  # even with a permissive umask
    try:
        path = tmp_path / "deep" / "state" / "collector.db"
        s = StateStore(path)
        s.save_addresses("hub1", [ip_address("10.0.0.1")], T0)
    finally:
        os.umask(old)
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600
    assert s.journal_mode == "wal"
    assert (path.parent / "collector.db-wal").exists()
    assert mode(path.parent / "collector.db-wal") == 0o600
    assert s.schema_version == SCHEMA_VERSION
    s.close()


def test_reopen_keeps_data_and_schema(tmp_path):
    path = tmp_path / "s.db"
    with StateStore(path) as s:
        s.create_incident("inc1", encode_key(FLOW), "invalid-spi", routers=["hub1", "spoke3"], at=T0)
    with StateStore(path) as s:
        assert s.incident("inc1").routers == ("hub1", "spoke3")
        assert s.schema_version == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.db"
    StateStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateError, match="newer"):
        StateStore(path)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StateError, match="not a usable state database"):
        StateStore(path)


def test_closed_store_refuses_use(tmp_path):
    s = StateStore(tmp_path / "s.db")
    s.close()
    with pytest.raises(StateError):
        s.armed_routers()


# ---------------------------------------------------------------- round trips


def test_log_cursor_round_trip(store):
    from collector.detect.cursor import new_lines, LogCursor

    assert store.log_cursor("hub1") is None
    _, cursor = new_lines(LogCursor(), ["022701: Jun 19 03:02:31: %LINEPROTO-5-UPDOWN: x", "022702: y"])
    record = LogCursorRecord("hub1", cursor.to_text(), 22702, "Jun 19 03:02:31", "ab12", 16384, 22860, T0)
    store.save_log_cursor(record)
    assert store.log_cursor("hub1") == record
    assert LogCursor.from_text(store.log_cursor("hub1").fingerprints) == cursor
    moved = LogCursorRecord("hub1", "", None, None, None, None, None, T0 + timedelta(minutes=1))
    store.save_log_cursor(moved)
    assert store.log_cursor("hub1") == moved


def test_events_are_all_kept_including_duplicates(store):
    event = InvalidSpiEvent(
        flow=FLOW,
        raw="*Mar 12 18:22:10.706: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi ...",
        device_time=datetime(2024, 3, 12, 18, 22, 10, 706000),  # naive: device clock, zone unknown
        seq=None,
        interface="Ethernet0/0",
        source="poll",
        received_at=T0,
    )
    first = store.record_event(EventRecord.from_invalid_spi(event, "id-1"))
    second = store.record_event(
        EventRecord("id-1", "hub1", encode_key(FLOW), "syslog", "<189>91: same line", None, T0 + timedelta(seconds=2))
    )
    store.record_event(EventRecord("q-1", "hub1", "", "qfp", "IpsecInput 12 -> 40", None, T0))
    assert second > first
    got = store.events(key=encode_key(FLOW))
    assert [(e.event_id, e.source) for e in got] == [("id-1", "poll"), ("id-1", "syslog")]
    assert got[0].raw == event.raw and got[0].device_time == event.device_time
    assert got[0].received_at == T0 and got[0].row_id == first
    assert len(store.events(router="hub1")) == 3
    assert len(store.events(since=T0 + timedelta(seconds=1))) == 1
    assert store.link_events("inc1", encode_key(FLOW), T0) == 2
    assert len(store.events(incident_id="inc1")) == 2


def test_event_batch_is_all_or_nothing(store):
    good = EventRecord("a", "hub1", "", "poll", "x", None, T0)
    bad = EventRecord("b", "hub1", "", "carrier-pigeon", "y", None, T0)  # type: ignore[arg-type]
    with pytest.raises(StateError):
        store.record_events([good, bad])
    assert store.events() == []


def test_naive_received_time_is_refused(store):
    with pytest.raises(StateError, match="timezone-aware"):
        store.record_event(EventRecord("a", "hub1", "", "poll", "x", None, datetime(2024, 1, 1)))


def test_tracker_state_round_trip_keeps_behaviour(store):
    tracker = FlowTracker(2, timedelta(minutes=10), timedelta(minutes=30), timedelta(minutes=15))
    pair = frozenset({"hub1", "spoke3"})
    tracker.observe(FLOW, T0, "e1", pair)
    tracker.observe(("edge1", "Tunnel0"), T0, "g1")
    tracker.mark_captured(("edge2", "Tunnel7"), frozenset({"edge2", "edge3"}), T0)
    tracker.observe(("edge9", "Tunnel9"), T0 - timedelta(hours=1), "old")
    tracker.observe(("edge9", "Tunnel9"), T0, "new")  # old window closed: pending transient

    assert store.load_tracker("invalid-spi") is None
    store.save_tracker("invalid-spi", tracker.snapshot())
    store.save_tracker("tunnel-flap", FlowTracker(3, timedelta(minutes=15), timedelta(0), timedelta(0)).snapshot())
    loaded = store.load_tracker("invalid-spi")
    assert loaded == tracker.snapshot()
    assert store.load_tracker("tunnel-flap").windows == ()

    # a --once run: a new process restores and sees the repeat
    again = FlowTracker(2, timedelta(minutes=10), timedelta(minutes=30), timedelta(minutes=15))
    again.restore(loaded)
    assert again.observe(FLOW, T0 + timedelta(minutes=3), "e2", pair) is Decision.REPEATED
    assert again.observe(FLOW, T0 + timedelta(minutes=3), "e1", pair) is Decision.DUPLICATE
    assert again.expire(T0 + timedelta(minutes=1)) == [("edge9", "Tunnel9")]

    # saving again replaces, it does not accumulate
    store.save_tracker("invalid-spi", again.snapshot())
    assert store.load_tracker("invalid-spi") == again.snapshot()


def test_incident_lifecycle(store):
    key = encode_key(FLOW)
    store.create_incident("inc1", key, "invalid-spi", routers=["hub1"], at=T0)
    with pytest.raises(StateError, match="already exists"):
        store.create_incident("inc1", key, "invalid-spi")
    store.update_incident("inc1", state="capturing", routers=["hub1", "spoke3"], at=T0 + timedelta(minutes=2))
    done = store.update_incident("inc1", state="captured", bundle_path=Path("/b/x.tar.gz"), reason="repeat")
    assert (done.state, done.bundle_path, done.reason, done.routers) == (
        "captured", "/b/x.tar.gz", "repeat", ("hub1", "spoke3"))
    assert done.created_at == T0 and done.updated_at > T0
    store.create_incident("inc2", key, "invalid-spi", state="skipped", reason="cpu 85% > 60%")
    assert [i.incident_id for i in store.incidents(states=["captured"])] == ["inc1"]
    assert len(store.incidents(key=key)) == 2
    with pytest.raises(StateError):
        store.update_incident("inc1", state="exploded")  # type: ignore[arg-type]
    with pytest.raises(StateError):
        store.update_incident("nope", state="failed")


def test_armed_steps_and_reconcile(store):
    steps = [
        Step(("no logging console",), ("logging console debugging",), "config", "console"),
        Step(("debug crypto condition peer ipv4 11.1.1.3",), ("no debug crypto condition peer ipv4 11.1.1.3",),
             "exec", "condition"),
        Step(("debug crypto ipsec",), ("no debug crypto ipsec",), "exec", "ipsec"),
    ]
    for i, step in enumerate(steps):
        store.begin_step("inc1", "hub1", i, step)
        if i < 2:
            store.set_step_status("inc1", "hub1", i, "applied")
    # crash here: step 2 was written but its outcome is unknown
    store.begin_step("inc1", "spoke3", 0, steps[0])
    store.set_step_status("inc1", "spoke3", 0, "failed", "timeout")
    store.begin_step("inc0", "edge1", 0, steps[0])
    store.set_step_status("inc0", "edge1", 0, "undone")

    assert store.armed_routers() == ["hub1", "spoke3"]
    hub = store.armed_steps("hub1")
    assert [(a.index, a.status) for a in hub] == [(0, "applied"), (1, "applied"), (2, "pending")]
    assert hub[1].step == steps[1]
    assert store.armed_steps("spoke3")[0].error == "timeout"

    for a in reversed(hub):
        store.set_step_status(a.incident_id, a.router, a.index, "undone")
    store.note_step_error("inc1", "spoke3", 0, "undo failed: session dropped")
    assert store.armed_routers() == ["spoke3"]
    assert store.armed_steps("spoke3")[0].status == "failed"
    assert len(store.armed_steps("hub1", include_undone=True)) == 3
    with pytest.raises(StateError):
        store.set_step_status("inc1", "hub1", 9, "applied")


def test_qfp_counters_and_addresses(store):
    assert store.qfp_counters("hub1") is None
    store.save_qfp_counters("hub1", {"IpsecInput": 10, "IN_US_V4_PKT_SA_NOT_FOUND_SPI": 64574}, T0)
    store.save_qfp_counters("hub1", {"IpsecInput": 12}, T0 + timedelta(minutes=5))
    reading = store.qfp_counters("hub1")
    assert dict(reading.counters) == {"IpsecInput": 12}
    assert reading.read_at == T0 + timedelta(minutes=5)

    store.save_addresses("spoke3", [ip_address("11.1.1.3"), ip_address("2001:db8::3")], T0)
    store.save_addresses("hub1", [ip_address("213.163.222.7")], T0)
    assert store.routers_with_address(ip_address("11.1.1.3")) == ["spoke3"]
    assert store.routers_with_address(ip_address("2001:0db8:0:0::3")) == ["spoke3"]
    store.save_addresses("spoke3", [ip_address("11.1.1.4")], T0 + timedelta(hours=1))
    assert store.routers_with_address(ip_address("11.1.1.3")) == []
    assert [str(a.address) for a in store.addresses("spoke3")] == ["11.1.1.4"]


# ---------------------------------------------------------------- concurrency and crashes


def test_concurrent_writers_from_threads_lose_nothing(tmp_path):
    path = tmp_path / "s.db"
    shared = StateStore(path)
    other = StateStore(path)  # a second handle, as another process would have
    errors: list[BaseException] = []

    def work(store: StateStore, n: int) -> None:
        try:
            for i in range(40):
                store.record_event(EventRecord(f"t{n}-{i}", f"r{n}", "", "poll", f"line {i}", None, T0))
                store.begin_step(f"inc{n}", f"r{n}", i, Step(("debug x",), ("no debug x",), "exec", ""))
                store.set_step_status(f"inc{n}", f"r{n}", i, "applied")
                store.armed_routers()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(shared if n % 2 else other, n)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(shared.events()) == 8 * 40
    assert len(shared.armed_steps()) == 8 * 40
    assert shared.armed_routers() == [f"r{n}" for n in range(8)]
    shared.close()
    other.close()


CRASH_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from collector.state import EventRecord, StateStore
    from collector.respond.plan import Step

    store = StateStore(sys.argv[1])
    t = datetime.now(timezone.utc)
    batch = 0
    while True:
        store.record_events(
            [EventRecord(f"b{batch}-{i}", "hub1", f"batch-{batch}", "poll", "x" * 2000, None, t) for i in range(20)]
        )
        store.begin_step("inc", "hub1", batch, Step(("debug crypto ipsec",), ("no debug crypto ipsec",), "exec", ""))
        print(batch, flush=True)
        batch += 1
    """
)


def test_process_killed_mid_write_leaves_a_consistent_database(tmp_path):
    path = tmp_path / "s.db"
    StateStore(path).close()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        confirmed = -1
        while confirmed < 30:  # let it commit a few batches, then kill it mid-stream
            line = child.stdout.readline()
            assert line, "writer exited early"
            confirmed = int(line)
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with StateStore(path) as store:
        per_batch: dict[str, int] = {}
        for e in store.events():
            per_batch[e.key] = per_batch.get(e.key, 0) + 1
        # every transaction is all or nothing, and every confirmed one survived
        assert set(per_batch.values()) == {20}
        assert {f"batch-{b}" for b in range(confirmed + 1)} <= set(per_batch)
        steps = store.armed_steps("hub1")
        assert len(steps) >= confirmed + 1
        assert store.armed_routers() == ["hub1"]
        # and the store is writable again
        store.record_event(EventRecord("after", "hub1", "", "poll", "x", None, T0))


def test_transfer_steps_hands_shared_steps_to_the_next_incident(tmp_path):
    from collector.respond.plan import Step

    store = StateStore(tmp_path / "state.db")
    base = [Step(("logging buffered 1000000 debugging",), ("no logging buffered",), "config", "log"),
            Step(("debug crypto condition peer ipv4 192.0.2.3",), ("no debug crypto condition peer ipv4 192.0.2.3",), "exec", "cond A"),
            Step(("debug crypto isakmp",), ("no debug crypto isakmp",), "exec", "debug")]
    for i, step in enumerate(base):
        store.begin_step("A", "hub1", i, step)
    store.begin_step("B", "hub1", 1, Step(("debug crypto condition peer ipv4 192.0.2.4",),
                                          ("no debug crypto condition peer ipv4 192.0.2.4",), "exec", "cond B"))
    assert store.transfer_steps("hub1", "A", "B", keep=[1]) == 2
    assert [(s.incident_id, s.index, s.step.why) for s in store.armed_steps("hub1", "A")] == [("A", 1, "cond A")]
    moved = sorted(store.armed_steps("hub1", "B"), key=lambda s: s.index, reverse=True)
    # B's disarm (indexes in reverse) undoes its own condition first, then the shared steps in their order
    assert [s.step.why for s in moved] == ["cond B", "debug", "log"]
    assert store.transfer_steps("hub1", "A", "B", keep=[1]) == 0
    store.close()


def test_prune_events_keeps_recent_ones_and_those_of_open_incidents(tmp_path):
    from datetime import timedelta

    store = StateStore(tmp_path / "state.db")
    now = datetime.now(timezone.utc)
    old, recent = now - timedelta(days=40), now - timedelta(days=1)

    def event(event_id: str, at: datetime, incident: str | None = None) -> EventRecord:
        return EventRecord(event_id=event_id, router="hub1", key="k", source="poll", raw=event_id,
                           device_time=None, received_at=at, incident_id=incident)

    store.create_incident("open1", "k", "invalid-spi", "armed")
    store.create_incident("done1", "k", "invalid-spi", "captured")
    store.record_events([event("old", old), event("old-open", old, "open1"), event("old-done", old, "done1"),
                         event("recent", recent)])
    assert store.prune_events(now - timedelta(days=30)) == 2
    assert sorted(e.event_id for e in store.events()) == ["old-open", "recent"]
    store.close()


def test_a_schema_4_store_keeps_its_log_cursors_and_reads_them_as_never_read_whole(tmp_path):
    """Schema 5 adds when each buffer was last read whole; a cursor written before that
    reads back as never read whole (the next poll of that router reads it whole)."""
    from collector.state.schema import MIGRATIONS

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for version in (1, 2, 3, 4):
        for statement in MIGRATIONS[version].split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("INSERT INTO log_cursors VALUES ('hub1', 'fp', 7, NULL, NULL, 16384, 120, ?)",
                 (datetime(2026, 12, 1, tzinfo=timezone.utc).isoformat(),))
    conn.execute("PRAGMA user_version=4")
    conn.commit()
    conn.close()
    with StateStore(path) as store:
        cursor = store.log_cursor("hub1")
        assert (cursor.fingerprints, cursor.messages_logged, cursor.whole_read_at) == ("fp", 120, None)
        at = datetime(2026, 12, 6, tzinfo=timezone.utc)
        store.save_log_cursor(replace(cursor, whole_read_at=at))
        assert store.log_cursor("hub1").whole_read_at == at


def test_writers_of_one_process_queue_for_each_other_instead_of_failing_on_a_busy_file(tmp_path):
    """A thread that finds another's write transaction open waits its turn in this process;
    SQLite's busy handler (which sleeps in steps, and gives up at the busy timeout) is kept
    for other processes. With a 10 ms busy timeout, a 300 ms write would fail the other."""
    with StateStore(tmp_path / "collector.db", timeout_seconds=0.01) as store:
        inside, errors = threading.Event(), []

        def long_write():
            with store._write() as conn:
                inside.set()
                conn.execute("UPDATE meta SET value = value WHERE name = 'commits'")
                threading.Event().wait(0.3)

        holder = threading.Thread(target=long_write)
        holder.start()
        assert inside.wait(5)
        try:
            store.save_log_cursor(LogCursorRecord("r1", "", None, None, None, None, None, T0))
        except StateError as exc:
            errors.append(exc)
        holder.join(5)
        assert errors == []
        assert store.log_cursor("r1") is not None
