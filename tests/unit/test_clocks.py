"""Router clocks against the agent's: zones from the configuration, UTC or local stamps,
summer time, and buffers on either side of New Year (issue 14 item 8)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from collector.clocks import RouterClock, clock_offset, parse_show_clock, stamp_kinds, zone_offsets
from collector.command_results import CommandResult
from collector.evidence import RouterCapture, build_timeline

UTC = timezone.utc
CET_CONFIG = "hostname hub\nservice timestamps debug datetime msec\nservice timestamps log datetime msec\n" \
             "clock timezone CET 1 0\nclock summer-time CEST recurring last Sun Mar 2:00 last Sun Oct 3:00\n"


def asked(at: datetime) -> tuple[datetime, datetime]:
    return at - timedelta(milliseconds=20), at + timedelta(milliseconds=20)


def test_show_clock_forms():
    assert parse_show_clock("*18:22:10.123 CET Tue Mar 12 2024") == (datetime(2024, 3, 12, 18, 22, 10, 123000), "CET")
    assert parse_show_clock(".01:02:03 UTC Wed Jan 1 2025\n") == (datetime(2025, 1, 1, 1, 2, 3), "UTC")
    assert parse_show_clock("10:00:00.5 Sat Dec 31 2022") == (datetime(2022, 12, 31, 10, 0, 0, 500000), None)
    assert parse_show_clock("% Invalid input detected") is None


def test_zones_from_the_configuration():
    zones = zone_offsets(CET_CONFIG)
    assert zones["CET"] == timedelta(hours=1) and zones["CEST"] == timedelta(hours=2) and zones["UTC"] == timedelta(0)
    assert zone_offsets("clock timezone IST 5 30\n")["IST"] == timedelta(hours=5, minutes=30)
    assert zone_offsets("clock timezone NST -3 30\n")["NST"] == -timedelta(hours=3, minutes=30)
    assert zone_offsets("clock timezone PST -8\nclock summer-time PDT date Mar 10 2024 2:00 Nov 3 2024 2:00 30\n") \
        == {"UTC": timedelta(0), "GMT": timedelta(0), "Z": timedelta(0), "PST": timedelta(hours=-8),
            "PDT": timedelta(hours=-7, minutes=-30)}
    # a known configuration with no `clock timezone`: IOS runs on UTC whatever the name
    assert zone_offsets("hostname r1\n", wall_zone="XYZ")["XYZ"] == timedelta(0)
    assert "XYZ" not in zone_offsets("", wall_zone="XYZ")


def test_which_clock_each_kind_of_stamp_uses():
    assert stamp_kinds(CET_CONFIG) == {"log": False, "debug": False}
    assert stamp_kinds("service timestamps log datetime msec localtime show-timezone\n"
                       "service timestamps debug uptime\n") == {"log": True, "debug": None}
    assert stamp_kinds("") == {"log": None, "debug": None}


def test_show_clock_in_local_time_and_log_stamps_in_utc():
    """The router's clock is right; it shows CET (UTC+1) and stamps its log in UTC."""
    agent_now = datetime(2024, 3, 12, 17, 22, 10, tzinfo=UTC)
    clock = RouterClock.read("*18:22:10.000 CET Tue Mar 12 2024", *asked(agent_now), running_config=CET_CONFIG)
    assert clock.skew_seconds == 0.0
    # a UTC log stamp printed without zone 10 s ago is 10 s ago on the agent's clock
    assert clock.to_agent(datetime(2024, 3, 12, 17, 22, 0), None, "log") == agent_now - timedelta(seconds=10)
    # without the configuration the hour is taken as skew, and the stamps as the wall clock's
    naive = RouterClock.read("*18:22:10.000 CET Tue Mar 12 2024", *asked(agent_now))
    assert naive.skew_seconds == 3600.0 and not naive.zone_known
    assert clock_offset("*18:22:10.000 CET Tue Mar 12 2024", *asked(agent_now), CET_CONFIG) == 0.0


def test_summer_time_and_local_stamps_with_their_zone_printed():
    agent_now = datetime(2024, 7, 1, 10, 0, 5, tzinfo=UTC)
    config = CET_CONFIG.replace("log datetime msec", "log datetime msec localtime show-timezone")
    clock = RouterClock.read("12:00:00.000 CEST Mon Jul 1 2024", *asked(agent_now), running_config=config)
    assert clock.skew_seconds == -5.0  # the router is 5 s slow
    # `Jul  1 11:59:55.000 CEST:` is 09:59:55 UTC on the router, 10:00:00 on the agent's clock
    assert clock.to_agent(datetime(2024, 7, 1, 11, 59, 55), "CEST", "log") == agent_now - timedelta(seconds=5)
    # the debug stamps of the same router are UTC (no localtime on the debug line)
    assert clock.to_agent(datetime(2024, 7, 1, 9, 59, 55), None, "debug") == agent_now - timedelta(seconds=5)


@pytest.mark.parametrize("wall, zone_line, newest, year", [
    # the agent is in December; a router east of UTC is already in January: its Jan lines are next year's
    ("08:59:50.000 JST Fri Jan 1 2027", "clock timezone JST 9 0", datetime(2000, 1, 1, 8, 59, 40), 2027),
    # the agent is in January; a router west of UTC still prints December: those lines are last year's
    ("19:00:10.000 EST Thu Dec 31 2026", "clock timezone EST -5 0", datetime(2000, 12, 31, 19, 0, 0), 2026),
    # a router in January reading its December lines: the year before
    ("00:00:30.000 UTC Fri Jan 1 2027", "", datetime(2000, 12, 31, 23, 59, 50), 2026),
])
def test_the_year_of_a_yearless_stamp_is_the_routers_own(wall, zone_line, newest, year):
    config = f"{zone_line}\nservice timestamps log datetime msec localtime\n"
    clock = RouterClock.read(wall, *asked(datetime(2026, 12, 31, 23, 59, 50, tzinfo=UTC)), running_config=config)
    assert clock.year_of_newest(newest, None, "log") == year


def _capture(router: str, role: str, show_clock: str, config: str, log: str, at: datetime) -> RouterCapture:
    def rec(command, text):
        started, ended = asked(at)
        return CommandResult(router, command, text, started, ended)
    return RouterCapture(router, role, "cisco_ios", "192.0.2.1",
                         (rec("show clock", show_clock), rec("show logging", log), rec("show running-config", config)),
                         None)


def test_a_timeline_across_new_year_and_three_zones_is_in_true_order():
    """Agent at 2026-12-31 23:59:50 UTC. Tokyo (JST, local stamps) is in 2027, New York
    (EST, UTC stamps) and a UTC router are still in 2026; each logs one line, 10, 6 and 2
    seconds ago on the agent's clock. The timeline lists them in that order, each at the
    right instant."""
    agent_now = datetime(2026, 12, 31, 23, 59, 50, tzinfo=UTC)
    header = "Log Buffer (8192 bytes):\n"
    tokyo = _capture("tokyo", "receiver", "08:59:50.000 JST Fri Jan 1 2027",
                     "clock timezone JST 9 0\nservice timestamps log datetime msec localtime\n",
                     header + "Jan  1 08:59:40.000: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has "
                     "invalid spi for destaddr=10.0.0.1, prot=50, spi=0x1(1), srcaddr=10.0.0.2, input interface=Gi1\n",
                     agent_now)
    newyork = _capture("newyork", "sender", "18:59:50.000 EST Thu Dec 31 2026",
                       "clock timezone EST -5 0\nservice timestamps log datetime msec\n",
                       header + "Dec 31 23:59:44.000: %SYS-5-CONFIG_I: Configured from console by lab on vty0\n",
                       agent_now)
    london = _capture("london", "sender", "23:59:50.000 UTC Thu Dec 31 2026",
                      "service timestamps log datetime msec\n",
                      header + "Dec 31 23:59:48.000: %LINK-3-UPDOWN: Interface Tunnel1, changed state to up\n",
                      agent_now)
    rows = build_timeline((tokyo, newyork, london), year=2026)
    assert [r["router"] for r in rows] == ["tokyo", "newyork", "london"]
    assert [r["agent_time"] for r in rows] == [
        (agent_now - timedelta(seconds=s)).isoformat() for s in (10, 6, 2)]



LOCAL_CET = CET_CONFIG.replace("log datetime msec", "log datetime msec localtime")


@pytest.mark.parametrize("config, show_clock, stamp, utc", [
    # spring, Europe: 01:59 is still CET (UTC+1), 03:01 already CEST (UTC+2); 02:xx never shows
    (LOCAL_CET, "10:00:00.000 CEST Sun Mar 31 2024", datetime(2024, 3, 31, 1, 59), datetime(2024, 3, 31, 0, 59)),
    (LOCAL_CET, "10:00:00.000 CEST Sun Mar 31 2024", datetime(2024, 3, 31, 3, 1), datetime(2024, 3, 31, 1, 1)),
    # autumn: the repeated hour is read as summer time, the hour after it as standard
    (LOCAL_CET, "10:00:00.000 CET Sun Oct 27 2024", datetime(2024, 10, 27, 2, 30), datetime(2024, 10, 27, 0, 30)),
    (LOCAL_CET, "10:00:00.000 CET Sun Oct 27 2024", datetime(2024, 10, 27, 3, 30), datetime(2024, 10, 27, 2, 30)),
    # a bare `recurring`: the US rules (second Sunday of March, first Sunday of November)
    ("clock timezone PST -8 0\nclock summer-time PDT recurring\nservice timestamps log datetime localtime\n",
     "10:00:00.000 PDT Mon Mar 11 2024", datetime(2024, 3, 10, 1, 59), datetime(2024, 3, 10, 9, 59)),
    ("clock timezone PST -8 0\nclock summer-time PDT recurring\nservice timestamps log datetime localtime\n",
     "10:00:00.000 PDT Mon Mar 11 2024", datetime(2024, 3, 10, 3, 0), datetime(2024, 3, 10, 10, 0)),
    # southern hemisphere: summer across New Year (Sydney, first Sunday of October to first of April)
    ("clock timezone AEST 10 0\nclock summer-time AEDT recurring 1 Sun Oct 2:00 1 Sun Apr 3:00\n"
     "service timestamps log datetime localtime\n",
     "10:00:00.000 AEDT Wed Jan 10 2024", datetime(2024, 1, 9, 12, 0), datetime(2024, 1, 9, 1, 0)),
    ("clock timezone AEST 10 0\nclock summer-time AEDT recurring 1 Sun Oct 2:00 1 Sun Apr 3:00\n"
     "service timestamps log datetime localtime\n",
     "10:00:00.000 AEDT Wed Jan 10 2024", datetime(2023, 7, 1, 12, 0), datetime(2023, 7, 1, 2, 0)),
    # `date` rules in both orders, with a 30-minute shift
    ("clock timezone PST -8\nclock summer-time PDT date Mar 10 2024 2:00 Nov 3 2024 2:00 30\n"
     "service timestamps log datetime localtime\n",
     "10:00:00.000 PDT Mon Mar 11 2024", datetime(2024, 3, 10, 3, 0), datetime(2024, 3, 10, 10, 30)),
    ("clock timezone PST -8\nclock summer-time PDT date 10 Mar 2024 2:00 3 Nov 2024 2:00\n"
     "service timestamps log datetime localtime\n",
     "10:00:00.000 PDT Mon Mar 11 2024", datetime(2024, 3, 9, 23, 0), datetime(2024, 3, 10, 7, 0)),
])
def test_local_stamps_without_zone_take_the_offset_of_their_own_moment(config, show_clock, stamp, utc):
    """A buffer of `localtime` stamps that do not print their zone may straddle a
    summer-time change; each line takes the offset in force when it was logged, not the one
    `show clock` prints now (the router's clock is right: skew 0)."""
    wall, _ = parse_show_clock(show_clock)
    offset = zone_offsets(config)[parse_show_clock(show_clock)[1]]
    clock = RouterClock.read(show_clock, *asked((wall - offset).replace(tzinfo=UTC)), running_config=config)
    assert clock.skew_seconds == 0.0
    assert clock.to_agent(stamp, None, "log") == utc.replace(tzinfo=UTC)


def test_an_unknown_summer_time_form_keeps_the_wall_clocks_offset():
    config = LOCAL_CET.replace("recurring last Sun Mar 2:00 last Sun Oct 3:00", "recurring someday")
    clock = RouterClock.read("10:00:00.000 CEST Sun Mar 31 2024",
                             *asked(datetime(2024, 3, 31, 8, tzinfo=UTC)), running_config=config)
    assert clock.summer is None
    assert clock.to_agent(datetime(2024, 3, 31, 1, 59), None, "log") == datetime(2024, 3, 30, 23, 59, tzinfo=UTC)


def test_a_timeline_across_the_spring_change_keeps_the_two_minutes_between_its_lines():
    """Two lines logged two minutes apart across the CET -> CEST jump (01:59 and 03:01 on
    the router's local clock) stay two minutes apart on the agent's clock."""
    agent_now = datetime(2024, 3, 31, 8, 0, tzinfo=UTC)
    log = ("Log Buffer (8192 bytes):\n"
           "Mar 31 01:59:00.000: %LINK-3-UPDOWN: Interface Tunnel1, changed state to down\n"
           "Mar 31 03:01:00.000: %LINK-3-UPDOWN: Interface Tunnel1, changed state to up\n")
    capture = _capture("hub", "receiver", "10:00:00.000 CEST Sun Mar 31 2024", LOCAL_CET, log, agent_now)
    rows = build_timeline((capture,), year=2024)
    assert [r["agent_time"] for r in rows] == [datetime(2024, 3, 31, 0, 59, tzinfo=UTC).isoformat(),
                                               datetime(2024, 3, 31, 1, 1, tzinfo=UTC).isoformat()]


def _track(earlier_wall: str, earlier_at: datetime, latest_wall: str, latest_at: datetime):
    from collector.clocks import ClockTrack
    latest = RouterClock.read(latest_wall, *asked(latest_at), running_config="service timestamps log datetime msec\n")
    return ClockTrack(latest.reread(earlier_wall, *asked(earlier_at)), latest)


def test_two_readings_that_agree_change_nothing():
    agent = datetime(2026, 12, 6, 6, 50, 0, tzinfo=UTC)
    track = _track("06:50:03.000 UTC Sun Dec 6 2026", agent, "06:50:08.000 UTC Sun Dec 6 2026",
                   agent + timedelta(seconds=5))
    assert track.disagreement() is None
    for stamp in (datetime(2026, 12, 6, 6, 40), datetime(2026, 12, 6, 6, 50, 5), datetime(2026, 12, 6, 6, 51)):
        assert track.to_agent(stamp, None) == track.latest.to_agent(stamp, None) == \
            stamp.replace(tzinfo=UTC) - timedelta(seconds=3)


def test_a_clock_that_ran_ten_times_faster_between_the_readings_is_interpolated():
    """The lab's clock runs ten times the agent's: 50 router seconds pass in 5 agent
    seconds. A line stamped halfway between the readings lands halfway on the agent's
    clock; lines outside take the nearer reading's skew; the order never changes."""
    agent = datetime(2026, 12, 6, 6, 50, 0, tzinfo=UTC)
    track = _track("06:51:00.000 UTC Sun Dec 6 2026", agent, "06:51:50.000 UTC Sun Dec 6 2026",
                   agent + timedelta(seconds=5))
    assert track.runs_forward
    assert track.to_agent(datetime(2026, 12, 6, 6, 51, 25), None) == agent + timedelta(seconds=2.5)
    assert track.to_agent(datetime(2026, 12, 6, 6, 50, 50), None) == agent - timedelta(seconds=10)
    assert track.to_agent(datetime(2026, 12, 6, 6, 52, 0), None) == agent + timedelta(seconds=15)
    assert track.disagreement() == (
        "its clock advanced 50.0 s between the reading before arming and the capture's while the agent's "
        "advanced 5.0 s (stepped, or running at another rate); its lines between the two readings are "
        "placed by interpolation, and those logged before the first reading at the agent's rate from it: "
        "their times are estimates (marked ≈)")
    assert track.estimated_before() == agent  # the line 10 s before it really was 1 s before: a guess


def test_clocks_that_agree_place_no_line_by_a_guess():
    agent = datetime(2026, 12, 6, 6, 50, 0, tzinfo=UTC)
    track = _track("06:50:03.000 UTC Sun Dec 6 2026", agent, "06:50:08.400 UTC Sun Dec 6 2026",
                   agent + timedelta(seconds=5))
    assert track.disagreement() is None and track.estimated_before() is None


def test_a_timeline_marks_the_lines_a_fast_clock_places_by_a_guess_and_the_report_shows_them():
    """The lab's clock at ten times the agent's (`--time-scale 10`): the pre-arm reading
    and the capture's are 5 agent seconds and 50 router seconds apart. The line logged
    before the first reading is placed at the agent's rate, 60 s early (it was 6 s before
    it): its row is marked as an estimate, and so is the report's line for it; the lines
    between the readings are interpolated, unmarked."""
    from collector.core.results import LogSnapshot
    from collector.diagnose.report import IncidentMeta, _timeline_section, timeline_summary

    agent = datetime(2026, 12, 6, 6, 50, 0, tzinfo=UTC)
    inv = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=10.0.0.1, "
           "prot=50, spi=0x1(1), srcaddr=10.0.0.2, input interface=Gi1")
    log = ("Log Buffer (8192 bytes):\n"
           f"Dec  6 06:50:00.000: {inv}\n"  # 60 router s before the first reading
           f"Dec  6 06:51:25.000: {inv}\n")  # halfway between the readings
    capture = _capture("hub", "receiver", "06:51:50.000 UTC Sun Dec 6 2026", "service timestamps log datetime msec\n",
                       log, agent + timedelta(seconds=5))
    snapshot = LogSnapshot("hub", log, agent, "06:51:00.000 UTC Sun Dec 6 2026", asked(agent))
    rows = list(build_timeline((capture,), year=2026, pre_arm=(snapshot,), pre_arm_lines=False))
    assert [(r["agent_time"], r.get("time_estimated", False)) for r in rows] == [
        ((agent - timedelta(seconds=60)).isoformat(), True), ((agent + timedelta(seconds=2.5)).isoformat(), False)]
    meta = IncidentMeta(incident_id="i", source="capture", captured_at=(agent + timedelta(seconds=5)).isoformat(),
                        armed_at=None)
    text = "\n".join(_timeline_section(timeline_summary(rows), meta))
    assert f"| ≈ {(agent - timedelta(seconds=60)).isoformat()} | hub |" in text
    assert f"| {(agent + timedelta(seconds=2.5)).isoformat()} | hub |" in text
    assert "≈: a time the clock readings can only estimate (see the notes)" in text
    without_guess = list(build_timeline((capture,), year=2026, pre_arm_lines=False))  # one reading: no disagreement
    assert not any("time_estimated" in r for r in without_guess)
    assert "≈" not in "\n".join(_timeline_section(timeline_summary(without_guess), meta))


def test_a_clock_stepped_back_between_the_readings_uses_the_capture_reading_alone():
    agent = datetime(2026, 12, 6, 6, 50, 0, tzinfo=UTC)
    track = _track("06:52:00.000 UTC Sun Dec 6 2026", agent, "06:50:05.000 UTC Sun Dec 6 2026",
                   agent + timedelta(seconds=5))
    assert not track.runs_forward
    stamp = datetime(2026, 12, 6, 6, 51, 0)
    assert track.to_agent(stamp, None) == track.latest.to_agent(stamp, None) == agent + timedelta(seconds=60)
    assert track.disagreement().startswith("its clock moved -115.0 s between the reading before arming")
    assert track.estimated_before() == agent + timedelta(seconds=5)  # where the step fell is unknown
