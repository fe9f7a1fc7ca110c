"""The decision core, rule by rule, on hand-written sequences of events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from ipaddress import ip_address

from collector.core.decide import (
    Arm,
    ArmDone,
    Capture,
    CaptureDone,
    Close,
    CoreState,
    Count,
    LineSeen,
    MarkArmedLate,
    Release,
    ReleaseDone,
    Rules,
    Skip,
    SourceKind,
    Stop,
    Tick,
    decide,
)
from collector.core.states import IncidentState
from collector.detect.events import Flow

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
RULES = Rules(max_armed_routers=4)
SPOKE1 = Flow("hub1", ip_address("198.51.100.11"), ip_address("198.51.100.1"), 0x1001, 50)
SPOKE2 = Flow("hub1", ip_address("198.51.100.12"), ip_address("198.51.100.1"), 0x1002, 50)


class Core:
    def __init__(self, rules: Rules = RULES):
        self.state = CoreState.fresh(rules)
        self.reads: dict[str, int] = {}
        self.n = 0

    def line(self, flow=SPOKE1, sender="spoke1", at=T0, source=SourceKind.INVENTORY, **kw):
        self.reads[flow.router] = self.reads.get(flow.router, 0) + 1
        self.n += 1
        return decide(self.state, LineSeen(flow, f"{flow.router}|{self.n}", at, self.reads[flow.router],
                                           f"line {self.n}", sender=sender, source=source, **kw))

    def armed(self, arm: Arm, at=T0, ok=True):
        self.reads[arm.receiver] = self.reads.get(arm.receiver, 0) + 1
        routers = {arm.receiver} | ({arm.sender} if arm.sender else set())
        armed = frozenset(routers if ok else routers - {arm.receiver})
        failed = () if ok else ((arm.receiver, "Command authorization failed."),)
        return decide(self.state, ArmDone(arm.incident_id, at, armed, failed, refused=not ok,
                                          mark=self.reads[arm.receiver]))

    def released(self, actions, at=T0):
        out = []
        for a in [a for a in actions if isinstance(a, Release)]:
            out += decide(self.state, ReleaseDone(a.incident_id, a.router, at))
        return out


def only(actions, kind):
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, actions
    return found[0]


def test_first_line_arms_both_ends_and_a_repeat_logged_after_arming_captures():
    core = Core()
    arm = only(core.line(), Arm)
    assert (arm.receiver, arm.sender) == ("hub1", "spoke1")
    assert [type(a).__name__ for a in core.armed(arm)] == ["Armed"]
    capture = only(core.line(at=T0 + timedelta(minutes=1)), Capture)
    assert capture.armed_before_repeat is True


def test_a_flow_already_repeating_is_armed_once_and_waits_for_a_line_after_arming():
    core = Core()
    arm = only(core.line(), Arm)
    second = core.line()  # the same buffer read: logged long before any arming
    third = core.line()
    assert not [a for a in second + third if isinstance(a, (Capture, Arm))]
    assert any(isinstance(a, MarkArmedLate) for a in second)
    core.armed(arm)
    capture = only(core.line(at=T0 + timedelta(seconds=70)), Capture)
    assert capture.armed_before_repeat is False  # the capture shows the aftermath, and says so


def test_a_line_read_before_the_arming_mark_but_handed_over_late_does_not_capture():
    core = Core()
    arm = only(core.line(), Arm)
    core.reads["hub1"] += 1  # a poll read a line while the sender was still being armed
    late = LineSeen(SPOKE1, "hub1|late", T0, core.reads["hub1"], "late line", sender="spoke1")
    core.armed(arm)
    actions = decide(core.state, late)
    assert not any(isinstance(a, Capture) for a in actions)
    assert only(actions, Count).after_arming is False


def test_a_line_stamped_before_the_arming_does_not_capture_even_when_read_later():
    core = Core()
    arm = only(core.line(), Arm)
    core.armed(arm, at=T0 + timedelta(minutes=5))
    actions = core.line(logged_at=T0 + timedelta(minutes=1))
    assert not any(isinstance(a, Capture) for a in actions)


def test_no_line_after_arming_ends_not_captured_when_it_had_repeated_and_transient_otherwise():
    core = Core()
    arm = only(core.line(), Arm)
    core.line()
    core.armed(arm)
    ended = decide(core.state, Tick(T0 + RULES.arm_window))
    assert {a.router for a in ended if isinstance(a, Release)} == {"hub1", "spoke1"}
    close = only(core.released(ended), Close)
    assert close.state is IncidentState.NOT_CAPTURED and "stopped before a capture" in close.reason

    quiet = Core()
    arm = only(quiet.line(flow=SPOKE2, sender="spoke2"), Arm)
    quiet.armed(arm)
    close = only(quiet.released(decide(quiet.state, Tick(T0 + RULES.arm_window))), Close)
    assert close.state is IncidentState.TRANSIENT


def test_a_refused_receiver_ends_skipped_and_releases_what_the_sender_armed():
    core = Core()
    arm = only(core.line(), Arm)
    ended = core.armed(arm, ok=False)
    assert [a.router for a in ended if isinstance(a, Release)] == ["hub1", "spoke1"]
    close = only(core.released(ended), Close)
    assert close.state is IncidentState.SKIPPED and "Command authorization failed." in close.reason


def test_an_internal_error_of_the_arm_work_after_it_said_armed_disarms_at_once():
    """The worker says an incident armed before it stages each end's log as it was; a bug
    after that is answered with a second ArmDone carrying the error: both ends are released
    now, not at the window's end."""
    core = Core()
    arm = only(core.line(), Arm)
    core.armed(arm)
    ended = decide(core.state, ArmDone(arm.incident_id, T0, frozenset(), internal_error="RuntimeError: staging"))
    assert sorted(a.router for a in ended if isinstance(a, Release)) == ["hub1", "spoke1"]
    close = only(core.released(ended), Close)
    assert close.state is IncidentState.FAILED and "internal error after arming (RuntimeError: staging)" in close.reason
    # an answer without an error for an incident already armed changes nothing
    again = only(core.line(flow=SPOKE2, sender="spoke2"), Arm)
    core.armed(again)
    assert core.armed(again) == []


def test_unknown_sources_arm_nothing_and_are_counted():
    core = Core()
    scanner = Flow("hub1", ip_address("125.240.132.86"), ip_address("198.51.100.1"), 0x77B40000, 50)
    first = core.line(flow=scanner, sender=None, source=SourceKind.UNKNOWN)
    second = core.line(flow=scanner, sender=None, source=SourceKind.UNKNOWN)
    assert not any(isinstance(a, Arm) for a in first + second)
    assert only(first, Skip).unknown_source is True
    assert core.state.unknown_sources == {("hub1", "125.240.132.86"): 2}


SWITCH_ON = Rules(max_armed_routers=4, arm_unknown_sources=True)


def _scan_line(core, n: int, router="hub1", at=T0):
    """One scanner packet: a new source and a new random SPI each time."""
    flow = Flow(router, ip_address(f"125.240.{n // 250}.{n % 250 + 1}"), ip_address("198.51.100.1"), 0x77B40000 + n, 50)
    return core.line(flow=flow, sender=None, source=SourceKind.UNKNOWN, at=at + timedelta(seconds=n))


def test_with_the_switch_on_a_scan_of_single_packets_arms_nothing_and_records_no_incident():
    core = Core(SWITCH_ON)
    actions = [a for n in range(90) for a in _scan_line(core, n)]
    assert not any(isinstance(a, Arm) for a in actions)
    skips = [a for a in actions if isinstance(a, Skip)]
    assert len(skips) == 90 and all(s.unknown_source and not s.record for s in skips)
    assert "armed only once its flow repeats" in skips[0].reason
    assert not core.state.incidents and len(core.state.unknown_sources) == 90


def test_with_the_switch_on_an_unknown_source_that_repeats_arms_the_receiver_only_once_per_router():
    core = Core(SWITCH_ON)
    stranger = Flow("hub1", ip_address("203.0.113.50"), ip_address("198.51.100.1"), 0xABCD, 50)
    assert not any(isinstance(a, Arm) for a in core.line(flow=stranger, sender=None, source=SourceKind.UNKNOWN))
    again = core.line(flow=stranger, sender=None, source=SourceKind.UNKNOWN, at=T0 + timedelta(seconds=10))
    arm = only(again, Arm)
    assert arm.receiver == "hub1" and arm.sender is None
    assert any(isinstance(a, MarkArmedLate) for a in again)  # it had repeated before arming: the report says so
    # a second unknown source repeating on the same hub waits: one unconfirmed incident per router
    other = Flow("hub1", ip_address("203.0.113.51"), ip_address("198.51.100.1"), 0xABCE, 50)
    core.line(flow=other, sender=None, source=SourceKind.UNKNOWN)
    skip = only(core.line(flow=other, sender=None, source=SourceKind.UNKNOWN), Skip)
    assert "already open on hub1 (limit 1)" in skip.reason and skip.unknown_source and not skip.record
    # known peers keep their room: a flow between inventory routers still arms
    assert only(core.line(flow=SPOKE2, sender="spoke2"), Arm).sender == "spoke2"


def test_unknown_sources_never_take_more_than_half_the_cap_and_are_not_recorded_as_incidents_when_refused():
    core = Core(SWITCH_ON)
    for n, router in enumerate(("hub1", "hub2", "hub3")):
        flow = Flow(router, ip_address(f"203.0.113.{60 + n}"), ip_address("198.51.100.1"), 0x100 + n, 50)
        core.line(flow=flow, sender=None, source=SourceKind.UNKNOWN)
        last = core.line(flow=flow, sender=None, source=SourceKind.UNKNOWN)
    skip = only(last, Skip)
    assert "room for unconfirmed sources used up (2 of 4 routers)" in skip.reason
    assert skip.unknown_source and not skip.record
    assert len(core.state.held_routers(unconfirmed_only=True)) == 2


def test_a_destination_that_is_not_the_receivers_is_refused():
    core = Core()
    skip = only(core.line(dst_owned=False), Skip)
    assert "not an address of hub1" in skip.reason


def test_the_cap_skips_a_flow_that_would_arm_more_routers_than_allowed():
    core = Core(Rules(max_armed_routers=2))
    only(core.line(), Arm)
    other = Flow("hub2", ip_address("198.51.100.13"), ip_address("198.51.100.2"), 0x2001, 50)
    skip = only(core.line(flow=other, sender="spoke3"), Skip)
    assert "cap reached (2 of 2" in skip.reason


def test_a_second_flow_joins_the_armed_hub_and_the_hub_is_handed_over_then_disarmed_last():
    core = Core()
    first = only(core.line(), Arm)
    core.armed(first)
    second = only(core.line(flow=SPOKE2, sender="spoke2"), Arm)
    assert second.joins == (("hub1", first.incident_id),)
    core.armed(second)
    ended = decide(core.state, Tick(T0 + RULES.arm_window))  # both windows end together
    releases = {(a.incident_id, a.router): a.heir for a in ended if isinstance(a, Release)}
    assert releases[(first.incident_id, "hub1")] == second.incident_id
    # The second incident must not disarm the hub before the hand-over has finished.
    assert (second.incident_id, "hub1") not in releases
    after = decide(core.state, ReleaseDone(first.incident_id, "hub1", T0))
    assert only(after, Release) == Release(second.incident_id, "hub1", None)


def test_a_capture_ends_captured_and_starts_the_cooldown():
    core = Core()
    arm = only(core.line(), Arm)
    core.armed(arm)
    only(core.line(), Capture)
    ended = decide(core.state, CaptureDone(arm.incident_id, T0 + timedelta(minutes=2)))
    assert only(core.released(ended), Close).state is IncidentState.CAPTURED
    again = core.line(at=T0 + timedelta(minutes=5))
    assert not any(isinstance(a, Arm) for a in again)


def test_stop_ends_armed_incidents_as_stopped_and_arms_nothing_new():
    core = Core()
    arm = only(core.line(), Arm)
    core.armed(arm)
    ended = decide(core.state, Stop(T0))
    assert only(core.released(ended), Close).state is IncidentState.STOPPED
    assert not any(isinstance(a, Arm) for a in core.line(flow=SPOKE2, sender="spoke2"))


def test_a_source_that_keeps_opening_incidents_is_rate_limited():
    core = Core(Rules(arms_per_source_per_hour=1, cooldown_flow=timedelta(0), cooldown_pair=timedelta(0)))
    arm = only(core.line(), Arm)
    core.armed(arm)
    core.released(decide(core.state, Tick(T0 + RULES.arm_window)))
    other_spi = Flow("hub1", SPOKE1.src, SPOKE1.dst, 0x9999, 50)
    skip = only(core.line(flow=other_spi, at=T0 + timedelta(minutes=20)), Skip)
    assert "already opened 1 incidents in the last hour" in skip.reason


def test_a_flow_from_the_receivers_own_address_arms_nothing_and_says_so():
    core = Core()
    own = Flow("hub1", ip_address("198.51.100.1"), ip_address("198.51.100.1"), 0x1003, 50)
    said = []
    for n in range(3):  # repeated, still nothing: a router cannot be out of sync with itself
        actions = core.line(flow=own, sender=None, source=SourceKind.SELF, at=T0 + timedelta(seconds=n))
        assert not any(isinstance(a, Arm) for a in actions)
        said += [a for a in actions if isinstance(a, Skip)]
    assert said and all(s.reason == "srcaddr 198.51.100.1 is hub1's own address" for s in said)
    assert all((s.record, s.unknown_source) == (False, False) for s in said)
    assert core.state.incidents == {}


def test_an_address_of_two_routers_arms_the_receiver_only_and_says_the_sender_is_ambiguous():
    core = Core()
    arm = only(core.line(sender="spoke1", source=SourceKind.AMBIGUOUS), Arm)
    assert (arm.receiver, arm.sender) == ("hub1", None)  # neither owner is debugged on a guess
    assert any("more than one inventory router" in note and "only the receiving end" in note for note in arm.notes)
    incident = core.state.incidents[arm.incident_id]
    assert incident.routers == {"hub1"} and incident.unconfirmed is True
