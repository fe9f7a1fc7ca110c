"""The hour repeated when summer time ends (issue 14 item 8): a router whose log stamps are
local time without their zone prints 02:00-03:00 (CEST then CET) twice. Where the buffer's
order or the clock reading tells the two passes apart, each line gets its true instant;
where nothing does, the line is marked ambiguous, never silently placed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.clocks import RouterClock, passes

UTC = timezone.utc
EU = ("clock timezone CET 1 0\nclock summer-time CEST recurring last Sun Mar 2:00 last Sun Oct 3:00\n"
      "service timestamps log datetime msec localtime\nservice timestamps debug datetime msec localtime\n")
US = ("clock timezone EST -5 0\nclock summer-time EDT recurring\n"
      "service timestamps log datetime msec localtime\nservice timestamps debug datetime msec localtime\n")
AU = ("clock timezone AEST 10 0\nclock summer-time AEDT recurring 1 Sun Oct 2:00 1 Sun Apr 3:00\n"
      "service timestamps log datetime msec localtime\nservice timestamps debug datetime msec localtime\n")
# (configuration, IANA zone with the same rules, the day summer time ends, first hour shown twice)
RULES = {
    "EU": (EU, "Europe/Berlin", datetime(2024, 10, 27), 2),
    "US": (US, "America/New_York", datetime(2024, 11, 3), 1),
    "AU": (AU, "Australia/Sydney", datetime(2024, 4, 7), 2),
}


def clock_at(config: str, zone: str, utc: datetime) -> RouterClock:
    """The router's clock read at `utc` (right: skew 0), `show clock` in its zone as IOS prints it."""
    local = utc.astimezone(ZoneInfo(zone))
    show = f"{local:%H:%M:%S}.{local.microsecond // 1000:03d} {local.tzname()} {local:%a %b} {local.day} {local.year}"
    return RouterClock.read(show, utc - timedelta(milliseconds=5), utc + timedelta(milliseconds=5),
                            running_config=config)


def local_stamp(zone: str, utc: datetime) -> datetime:
    """The zone-less local stamp a `localtime` router prints for instant `utc`."""
    return utc.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


@pytest.mark.parametrize("rules", sorted(RULES))
def test_a_step_back_in_the_repeated_hour_tells_the_two_passes_apart(rules):
    """Lines 20 min apart from 40 min before the change to 50 min after: the local stamps
    read 2:20, 2:40, 2:00, 2:20, 2:40 (EU/AU; 1:xx for the US). The step back starts the
    second pass; each line lands on its true instant, in order."""
    config, zone, day, hour = RULES[rules]
    change = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone)).astimezone(UTC) + timedelta(hours=1)
    true = [change + timedelta(minutes=m) for m in (-40, -20, 0, 20, 40, 70)]
    stamps = [local_stamp(zone, t) for t in true]
    assert stamps[0].hour == stamps[2].hour == hour and stamps[2] < stamps[1]  # the clock went back
    clock = clock_at(config, zone, change + timedelta(hours=6))
    found = passes(clock, [(s, None, "log") for s in stamps])
    assert found == [0, 0, 1, 1, 1, 0]
    assert [clock.to_agent(s, None, "log", fold=f) for s, f in zip(stamps, found)] == true


@pytest.mark.parametrize("rules", sorted(RULES))
def test_without_a_step_back_the_hour_stays_ambiguous(rules):
    """Two lines in the repeated hour and none between them going back: either pass fits,
    so neither is placed as if known. A line after the hour is in no doubt."""
    config, zone, day, hour = RULES[rules]
    change = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone)).astimezone(UTC) + timedelta(hours=1)
    stamps = [local_stamp(zone, change + timedelta(minutes=m)) for m in (10, 50, 70)]
    clock = clock_at(config, zone, change + timedelta(hours=6))
    assert passes(clock, [(s, None, "log") for s in stamps]) == [None, None, 0]
    # the default reading of an unresolved stamp is still the first pass (summer time)
    assert clock.to_agent(stamps[0], None, "log") == change + timedelta(minutes=10) - timedelta(hours=1)


@pytest.mark.parametrize("rules", sorted(RULES))
def test_a_clock_read_inside_the_repeated_hour_rules_out_a_pass_still_to_come(rules):
    """`show clock` read 30 min into the second pass: a line stamped 50 min into the hour
    cannot be the second pass (that is 20 min after the reading): it was the first. A line
    at 10 min into the hour, before the reading either way, stays ambiguous."""
    config, zone, day, hour = RULES[rules]
    change = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone)).astimezone(UTC) + timedelta(hours=1)
    clock = clock_at(config, zone, change + timedelta(minutes=30))
    assert clock.skew_seconds == 0.0
    late = local_stamp(zone, change - timedelta(minutes=10))  # first pass, 50 min into the hour
    early = local_stamp(zone, change + timedelta(minutes=10))  # second pass, 10 min into the hour
    assert passes(clock, [(late, None, "log")]) == [0]
    assert passes(clock, [(early, None, "log")]) == [None]
    # read in the first pass (summer zone printed), every line of the hour is on the first pass
    summer_clock = clock_at(config, zone, change - timedelta(minutes=5))
    assert passes(summer_clock, [(local_stamp(zone, change - timedelta(minutes=m)), None, "log")
                                 for m in (50, 20)]) == [0, 0]


def test_a_stamp_printed_with_its_zone_tells_the_pass_of_the_zoneless_ones_around_it():
    """Log lines print `CET`/`CEST` (show-timezone), debug lines print no zone: a `CET`
    line inside the hour means the zone-less debug lines after it are the second pass and
    those before it were the first."""
    config = EU.replace("service timestamps log datetime msec localtime",
                        "service timestamps log datetime msec localtime show-timezone")
    clock = clock_at(config, "Europe/Berlin", datetime(2024, 10, 27, 8, tzinfo=UTC))
    rows = [(datetime(2024, 10, 27, 2, 40), None, "debug"),  # 00:40Z
            (datetime(2024, 10, 27, 2, 5), "CET", "log"),  # 01:05Z
            (datetime(2024, 10, 27, 2, 10), None, "debug"),  # 01:10Z
            (datetime(2024, 10, 27, 2, 50), "CEST", "log")]  # a first-pass line as the zone prints it
    assert passes(clock, rows) == [0, 0, 1, 0]
    assert clock.to_agent(rows[2][0], None, "debug", fold=1) == datetime(2024, 10, 27, 1, 10, tzinfo=UTC)


def test_utc_stamps_and_stamps_outside_the_hour_are_never_in_doubt():
    config = EU.replace(" localtime", "")
    clock = clock_at(config, "Europe/Berlin", datetime(2024, 10, 27, 8, tzinfo=UTC))
    stamps = [(datetime(2024, 10, 27, 2, m), None, "log") for m in (10, 50, 5)]
    assert passes(clock, stamps) == [0, 0, 0]
    eu = clock_at(EU, "Europe/Berlin", datetime(2024, 10, 27, 8, tzinfo=UTC))
    assert passes(eu, [(datetime(2024, 10, 27, 1, 59), None, "log"), (datetime(2024, 10, 27, 3, 0), None, "log"),
                       (datetime(2024, 3, 31, 2, 30), None, "log")]) == [0, 0, 0]


@settings(max_examples=150, deadline=None)
@given(rules=st.sampled_from(sorted(RULES)),
       start=st.integers(min_value=-90 * 60, max_value=60 * 60),
       gaps=st.lists(st.integers(min_value=0, max_value=40 * 60 * 1000), min_size=1, max_size=25),
       read_after=st.integers(min_value=0, max_value=4 * 3600))
def test_any_buffer_across_the_autumn_change_is_placed_right_or_marked_ambiguous(rules, start, gaps, read_after):
    """Lines at random moments around the change (in increasing order, as a router logs
    them), stamped by the IANA zone with the same rules: every line whose pass is given
    lands on its true instant; a line left ambiguous is in the repeated hour; and once the
    buffer shows the clock going back (by more than a second) in a stretch of that hour, no
    line of that stretch is left ambiguous."""
    config, zone, day, hour = RULES[rules]
    change = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone)).astimezone(UTC) + timedelta(hours=1)
    true = [change + timedelta(seconds=start)]
    for gap in gaps:
        true.append(true[-1] + timedelta(milliseconds=gap))
    stamps = [local_stamp(zone, t) for t in true]
    clock = clock_at(config, zone, true[-1] + timedelta(seconds=read_after))
    found = passes(clock, [(s, None, "log") for s in stamps])
    for t, s, f in zip(true, stamps, found):
        if f is None:
            assert s.hour == hour, (s, f)
        else:
            assert clock.to_agent(s, None, "log", fold=f) == t, (s, f)
    stepped_back = any(b - a < -timedelta(seconds=1) for a, b in zip(stamps, stamps[1:]))
    in_hour = [s.hour == hour for s in stamps]
    if stepped_back and all(in_hour[i] for i in range(in_hour.index(True), len(in_hour) - in_hour[::-1].index(True))):
        assert None not in found


def _hub_log(*stamps: str) -> str:
    return "Log Buffer (8192 bytes):\n" + "".join(
        f"Oct 27 {s}: %LINK-3-UPDOWN: Interface Tunnel{i}, changed state to down\n" for i, s in enumerate(stamps))


def test_the_timeline_places_both_passes_in_true_order_and_marks_what_it_cannot_tell():
    """A CET router with zone-less local stamps, read at 08:00 UTC: its buffer steps back
    from 02:50 to 02:10 (the second pass), so the 02:30 line above is 00:30Z and the 02:20
    one below is 01:20Z. A second router's lines in the hour never step back: they are
    listed as ambiguous, and the report says so."""
    from collector.diagnose.incident import diagnose
    from collector.evidence import CaptureResult, build_timeline
    from collector.detect.events import Flow
    from tests.unit.test_clocks import _capture

    now = datetime(2024, 10, 27, 8, 0, tzinfo=UTC)
    hub = _capture("hub", "receiver", "09:00:00.000 CET Sun Oct 27 2024", EU,
                   _hub_log("02:30:00.000", "02:50:00.000", "02:10:00.000", "02:20:00.000", "03:05:00.000"), now)
    spoke = _capture("spoke", "sender", "09:00:00.000 CET Sun Oct 27 2024", EU,
                     _hub_log("02:15:00.000", "02:45:00.000"), now)
    rows = build_timeline((hub, spoke), year=2024)
    hub_rows = [r for r in rows if r["router"] == "hub"]
    assert [r["agent_time"] for r in hub_rows] == [datetime(2024, 10, 27, h, m, tzinfo=UTC).isoformat() for h, m in
                                                  ((0, 30), (0, 50), (1, 10), (1, 20), (2, 5))]
    assert not any("time_ambiguous" in r for r in hub_rows)
    spoke_rows = [r for r in rows if r["router"] == "spoke"]
    assert len(spoke_rows) == 2 and all("CEST, then CET" in r["time_ambiguous"] for r in spoke_rows)
    assert all(r["agent_time"] in (datetime(2024, 10, 27, 0, 15, tzinfo=UTC).isoformat(),
                                   datetime(2024, 10, 27, 0, 45, tzinfo=UTC).isoformat()) for r in spoke_rows)

    from ipaddress import ip_address
    flow = Flow(router="hub", src=ip_address("192.0.2.2"), dst=ip_address("192.0.2.1"), spi=1, prot=50)
    result = CaptureResult(incident_id="x", flow=flow, trigger_lines=(), captures=(hub, spoke), armed_at=None,
                           captured_at=now, armed_before_repeat=False, sender="spoke")
    notes = diagnose(result).meta.notes
    assert any(n.startswith("spoke: 2 lines stamped 2024-10-27 02:00-03:00 local time") and "may be an hour early" in n
               for n in notes), notes
    assert not any(n.startswith("hub:") for n in notes)


def test_a_line_one_read_leaves_undecided_is_placed_by_a_later_read_that_tells_its_pass():
    """The flow's line as the agent first read it stands alone (no order to go by); the
    capture's read of the same buffer shows the step back before it: the one row of that
    line takes the second pass."""
    from collector.evidence import build_timeline
    from tests.unit.test_clocks import _capture

    now = datetime(2024, 10, 27, 8, 0, tzinfo=UTC)
    log = _hub_log("02:30:00.000", "02:50:00.000", "02:10:00.000")
    hub = _capture("hub", "receiver", "09:00:00.000 CET Sun Oct 27 2024", EU, log, now)
    alone = log.splitlines()[-1]
    rows = build_timeline((hub,), year=2024, trigger_lines=(alone,), receiver="hub")
    row = next(r for r in rows if r["line"] == alone)
    assert row["seen_in"] == ["trigger", "capture"] and "time_ambiguous" not in row
    assert row["agent_time"] == datetime(2024, 10, 27, 1, 10, tzinfo=UTC).isoformat()
    assert [r["agent_time"][11:16] for r in rows] == ["00:30", "00:50", "01:10"]
    # with a capture that shows no step back either, the row stays ambiguous, at the first pass
    bare = _capture("hub", "receiver", "09:00:00.000 CET Sun Oct 27 2024", EU, "Log Buffer (8192 bytes):\n" + alone + "\n", now)
    (only,) = build_timeline((bare,), year=2024, trigger_lines=(alone,), receiver="hub")
    assert only["time_ambiguous"] and only["agent_time"] == datetime(2024, 10, 27, 0, 10, tzinfo=UTC).isoformat()
