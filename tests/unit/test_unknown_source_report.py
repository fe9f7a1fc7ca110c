"""Lines from unknown sources (internet scanners, spoofed ESP) reach the operator's screen at
most once per quiet period, with a count of what was held back; refusals of known flows are
printed every time. (A 10,000-router watch printed 5,808 scanner lines in 15 minutes.)"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from ipaddress import ip_address

import pytest

import collector.agent.loop as loop
from collector.agent.records import IncidentRecorder
from collector.core.decide import Skip
from collector.core.observers import FanOut
from collector.demo import demo_playbook
from collector.detect.events import Flow
from collector.state import StateStore

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)


def skip(router: str, src: str, *, unknown: bool) -> Skip:
    flow = Flow(router, ip_address(src), ip_address("192.0.2.1"), 0x3EC20000, 50)
    reason = "srcaddr is neither an inventory router nor a configured peer" if unknown else "cap reached"
    return Skip(flow, reason, record=False, unknown_source=unknown)


@pytest.fixture
def recorder(tmp_path, monkeypatch):
    now = [T0]
    monkeypatch.setattr(loop, "utcnow", lambda: now[0])
    printed: list[str] = []
    with StateStore(tmp_path / "state.db") as store:
        rec = IncidentRecorder(store=store, playbook=demo_playbook(), observers=FanOut(loop._Printer(printed.append)),
                               dry_run=False)
        yield rec, printed, now, store


def test_scanner_lines_are_printed_once_per_quiet_period_with_the_count_held_back(recorder):
    rec, printed, now, store = recorder
    rec.skip(skip("spoke1", "102.182.183.106", unknown=True))
    assert len(printed) == 1 and printed[0].startswith("spoke1: 0x3EC20000 from 102.182.183.106: not arming")
    assert "at most once every 10 minutes" in printed[0] and "collector incidents" in printed[0]
    for i in range(40):  # 40 more within the quiet period, on 3 routers
        now[0] = T0 + timedelta(seconds=10 * i + 1)
        rec.skip(skip(f"spoke{2 + i % 3}", f"88.211.155.{i + 1}", unknown=True))
    assert len(printed) == 1
    now[0] = T0 + loop.UNKNOWN_SOURCE_QUIET + timedelta(seconds=1)
    rec.skip(skip("spoke9", "43.191.12.4", unknown=True))
    assert len(printed) == 2
    assert printed[1].startswith("spoke9: 0x3EC20000 from 43.191.12.4:")
    assert "and 40 more from unknown sources on 3 router(s) since 10:00:00 UTC" in printed[1]
    # every one of them is still kept for `collector incidents`, written together when the
    # agent's loop has no event left (`flush`)
    assert store.unknown_sources() == []
    rec.flush()
    assert {u["router"] for u in store.unknown_sources()} == {"spoke1", "spoke2", "spoke3", "spoke4", "spoke9"}


def test_a_known_flow_refused_is_printed_every_time_even_among_scanner_lines(recorder):
    rec, printed, now, _store = recorder
    rec.skip(skip("spoke1", "102.182.183.106", unknown=True))
    for i in range(3):
        now[0] = T0 + timedelta(seconds=i + 1)
        rec.skip(skip("hub1", "192.0.2.9", unknown=False))
    assert [line.split(":")[0] for line in printed] == ["spoke1", "hub1", "hub1", "hub1"]
    assert all("cap reached" in line for line in printed[1:])


def test_a_poll_failure_repeated_word_for_word_is_printed_once_per_quiet_time_with_how_often_it_came(monkeypatch):
    from datetime import datetime, timedelta, timezone

    from collector.agent import loop

    now = [datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)]
    monkeypatch.setattr(loop, "utcnow", lambda: now[0])
    printed: list[str] = []
    printer = loop._Printer(printed.append)
    for _ in range(5):  # a full disk, at every one-second poll
        printer.poll_failed("hub1", "log poll failed: the disk is full")
        now[0] += timedelta(seconds=1)
    printer.poll_failed("hub2", "log poll failed: the disk is full")  # another router: said
    printer.poll_failed("hub1", "log poll failed: connection refused")  # another problem: said
    assert printed == ["hub1: log poll failed: the disk is full", "hub2: log poll failed: the disk is full",
                       "hub1: log poll failed: connection refused"]
    now[0] += loop.UNKNOWN_SOURCE_QUIET
    printer.poll_failed("hub1", "log poll failed: the disk is full")
    assert printed[-1] == "hub1: log poll failed: the disk is full (said 4 more times since 10:00:00 UTC)"
