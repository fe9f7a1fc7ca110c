"""Property tests of the decision core: random interleavings of lines, results, clock steps,
crashes and restarts, checked against invariants of the world they act on.

The harness plays the routers and the worker: it keeps which incident holds steps on which
router (as the state store and the routers would), completes pending actions in random
order with random outcomes, and can crash the agent (losing in-flight work) and restart it
the way `collector watch` does (cron: adopt what is armed; daemon: end it), with the
start-up sweep that undoes steps of incidents no longer open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from ipaddress import ip_address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.core.decide import (
    Arm,
    ArmDone,
    Armed,
    Capture,
    CaptureDone,
    Close,
    CoreState,
    Incident,
    LineSeen,
    Phase,
    Release,
    ReleaseDone,
    Rules,
    SourceKind,
    Stop,
    Tick,
    decide,
)
from collector.core.states import IncidentState
from collector.detect.events import Flow

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
RULES = Rules(occurs=2, within=timedelta(minutes=10), arm_window=timedelta(minutes=10),
              max_window=timedelta(minutes=30), cooldown_flow=timedelta(minutes=30),
              cooldown_pair=timedelta(minutes=15), max_armed_routers=3, arms_per_source_per_hour=3)

# (receiver, srcaddr, spi, sender name, source kind)
FLOWS = [
    ("hub1", "198.51.100.11", 0x1001, "spoke1", SourceKind.INVENTORY),
    ("hub1", "198.51.100.12", 0x1002, "spoke2", SourceKind.INVENTORY),
    ("hub2", "198.51.100.11", 0x1003, "spoke1", SourceKind.INVENTORY),
    ("hub1", "203.0.113.99", 0x7777, None, SourceKind.UNKNOWN),
    ("hub1", "192.0.2.50", 0x1004, None, SourceKind.PEER),
    ("hub1", "198.51.100.2", 0x1005, "hub2", SourceKind.INVENTORY),
    ("spoke3", "198.51.100.1", 0x1006, "hub1", SourceKind.INVENTORY),
]


def flow_of(index: int) -> tuple[Flow, str | None, SourceKind]:
    receiver, src, spi, sender, kind = FLOWS[index]
    return Flow(receiver, ip_address(src), ip_address("198.51.100.1"), spi, 50), sender, kind


@dataclass
class World:
    """Routers, store and worker as the core's actions leave them."""

    state: CoreState = field(default_factory=lambda: CoreState.fresh(RULES))
    now: datetime = T0
    reads: dict[str, int] = field(default_factory=dict)  # last read number per router
    lines: int = 0
    steps: dict[str, set[str]] = field(default_factory=dict)  # router -> incidents with steps there
    pending: list = field(default_factory=list)  # actions the worker has not finished
    in_flight: list = field(default_factory=list)  # lines read but not yet handed to the core
    store: dict[str, dict] = field(default_factory=dict)  # incident -> what the store knows
    arm_sent: dict[str, Arm] = field(default_factory=dict)
    armed_done: dict[str, int] = field(default_factory=dict)  # incident -> read number of its mark
    line_reads: dict[str, int] = field(default_factory=dict)  # event id -> read number
    captures: list[tuple[str, int]] = field(default_factory=list)
    unknown_arms: list[Arm] = field(default_factory=list)
    cap_ok: bool = True

    def feed(self, event) -> None:
        for action in decide(self.state, event):
            self.apply(action, event)
        if len(self.state.held_routers()) > RULES.max_armed_routers:
            self.cap_ok = False

    def apply(self, action, event) -> None:
        if isinstance(action, Arm):
            self.arm_sent[action.incident_id] = action
            self.store[action.incident_id] = {"flow": action.flow, "armed_at": None, "open": True,
                                              "routers": {action.receiver} | ({action.sender} if action.sender else set()),
                                              "sender": action.sender}
            if event.source is SourceKind.UNKNOWN:
                self.unknown_arms.append(action)
            self.pending.append(action)
        elif isinstance(action, Capture):
            # the line that triggered it must have been read after the mark of both ends' arming
            mark = self.armed_done.get(action.incident_id)
            read = self.line_reads.get(event.event_id) if isinstance(event, LineSeen) else None
            self.captures.append((action.incident_id, -1 if mark is None or read is None or read <= mark else read))
            self.store[action.incident_id]["capturing"] = True
            self.pending.append(action)
        elif isinstance(action, Release):
            self.pending.append(action)
        elif isinstance(action, Armed):  # the store learns armed_at here, as the agent's recorder does
            self.store[action.incident_id]["armed_at"] = action.at
        elif isinstance(action, Close):
            self.store[action.incident_id]["open"] = False

    def line(self, index: int, delayed: bool = False) -> None:
        """A line logged and read now; `delayed`: its read result reaches the core later
        (a poll that ran while another end was being armed)."""
        flow, sender, kind = flow_of(index)
        self.reads[flow.router] = self.reads.get(flow.router, 0) + 1
        self.lines += 1
        event_id = f"{flow.router}|{self.lines}"
        self.line_reads[event_id] = self.reads[flow.router]
        seen = LineSeen(flow, event_id, self.now, self.reads[flow.router], "raw", sender=sender, source=kind)
        if delayed:
            self.in_flight.append(seen)
        else:
            self.feed(seen)

    def deliver(self, pick: int) -> None:
        if self.in_flight:
            self.feed(self.in_flight.pop(pick % len(self.in_flight)))

    def complete(self, pick: int, ok: bool) -> None:
        if not self.pending:
            return
        action = self.pending.pop(pick % len(self.pending))
        if isinstance(action, Arm):
            routers = [action.receiver] + ([action.sender] if action.sender else [])
            armed = frozenset(r for r in routers if ok or r != action.receiver)
            for router in routers:  # a failed arm may leave half its steps: they are recorded
                self.steps.setdefault(router, set()).add(action.incident_id)
            self.reads[action.receiver] = self.reads.get(action.receiver, 0) + 1
            mark = self.reads[action.receiver]
            self.armed_done[action.incident_id] = mark
            failed = () if ok else ((action.receiver, "refused"),)
            self.feed(ArmDone(action.incident_id, self.now, armed, failed, mark=mark))
        elif isinstance(action, Capture):
            self.feed(CaptureDone(action.incident_id, self.now, complete=ok))
        elif isinstance(action, Release):
            held = self.steps.setdefault(action.router, set())
            held.discard(action.incident_id)
            if action.heir is not None:
                held.add(action.heir)
            self.feed(ReleaseDone(action.incident_id, action.router, self.now))

    def tick(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        self.feed(Tick(self.now))

    def crash_and_restart(self, daemon: bool) -> None:
        """In-flight work is lost; the store and the routers keep what they had."""
        self.pending.clear()
        self.in_flight.clear()
        self.state = CoreState.fresh(RULES)
        self.reads = {r: 0 for r in self.reads}  # a new process numbers its reads from 1
        self.line_reads.clear()
        adopted = set()
        for incident_id, record in self.store.items():
            if record["open"] and record["armed_at"] is not None:
                flow = record["flow"]
                incident = Incident(incident_id, flow, flow.router, record["sender"], record["armed_at"],
                                    phase=Phase.CAPTURING if record.get("capturing") else Phase.ARMED,
                                    routers=set(record["routers"]), armed_at=record["armed_at"], mark=0)
                self.state.adopt(incident)
                adopted.add(incident_id)
                self.armed_done[incident_id] = 0
                if incident.phase is Phase.CAPTURING:  # salvage: capture again before disarming
                    self.pending.append(Capture(incident_id, armed_before_repeat=False))
            elif record["open"]:
                record["open"] = False  # armed_at unknown: arming never finished; the sweep undoes it
        for router, holders in self.steps.items():  # start-up sweep of steps of closed incidents
            holders.intersection_update(adopted)
        if daemon:
            self.feed(Stop(self.now, "agent restarted; disarmed at start-up", state=IncidentState.FAILED))

    def drain(self) -> None:
        for _ in range(200):
            while self.in_flight:
                self.deliver(0)
            while self.pending:
                self.complete(0, True)
            if not self.state.incidents:
                return
            self.tick(3600)
        raise AssertionError(f"incidents never ended: {self.state.incidents}")


ops = st.lists(st.one_of(
    st.tuples(st.just("line"), st.integers(0, len(FLOWS) - 1), st.booleans()),
    st.tuples(st.just("line"), st.integers(0, len(FLOWS) - 1), st.booleans()),
    st.tuples(st.just("deliver"), st.integers(0, 5)),
    st.tuples(st.just("complete"), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([1, 30, 61, 300, 700, 2000])),
    st.tuples(st.just("crash"), st.booleans()),
    st.tuples(st.just("stop"), st.just(0)),
), max_size=80)


def run(program) -> World:
    world = World()
    for op in program:
        if op[0] == "line":
            world.line(op[1], op[2])
        elif op[0] == "deliver":
            world.deliver(op[1])
        elif op[0] == "complete":
            world.complete(op[1], op[2])
        elif op[0] == "tick":
            world.tick(op[1])
        elif op[0] == "crash":
            world.crash_and_restart(op[1])
        elif op[0] == "stop":
            world.feed(Stop(world.now))
    world.drain()
    return world


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_every_router_armed_is_disarmed_in_the_end(program):
    world = run(program)
    left = {router: holders for router, holders in world.steps.items() if holders}
    assert not left, f"steps left on routers: {left}"
    assert not any(record["open"] for record in world.store.values())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_a_capture_happens_only_on_a_line_read_after_both_ends_were_armed(program):
    world = run(program)
    for incident_id, read in world.captures:
        assert read != -1, f"incident {incident_id} captured on a line read before its arming mark"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_the_armed_router_cap_always_holds(program):
    assert run(program).cap_ok


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_nothing_is_armed_for_a_source_outside_inventory_and_configured_peers(program):
    assert run(program).unknown_arms == []
