"""The agent's rules, as one pure function: `decide(state, event) -> [Action]`.

Everything the agent decides lives here and nowhere else: N lines within T, when a flow
becomes an incident, who may be armed (the armed-router cap, unknown sources, a rate limit
per source), when a repeat counts for capture, when an incident ends and in which state,
which router is handed over to whom. `decide` does no I/O and reads no clock: every fact
arrives on an event (the time, where a line was read, who the sender is), and every wish
leaves as an action that the agent records or a worker carries out. Results come back as
events. That is what the property tests in tests/unit/test_decide_properties.py run over
random interleavings of lines, results, clock steps, crashes and restarts.

The rule that matters most (note 116005, and the bug it fixes): a repeat only counts for
capture when the receiver logged it after BOTH ends were armed. The agent knows that by
buffer order: when arming is done it reads the receiver's log once more (`ArmDone.mark`,
a per-router read number); every line found by a later read of that router was logged
after the mark. Where the router prints a date, a line whose own time (agent clock, offset
applied) is before the arming is not counted either. A flow found already repeating is
armed at once, its earlier lines kept as evidence, and captured on the next line logged
after arming; no such line within the window ends it NOT_CAPTURED ("stopped before a
capture"), never TRANSIENT: it had repeated.

Incident phases: ARMING -> ARMED -> CAPTURING -> RELEASING -> closed. A router is held by
every open incident that armed or joined it; when an incident ends, each of its routers
is released: handed over to another incident still holding it (only this flow's own steps
are undone), or disarmed when it was the last. A router being handed over to an incident
is released by that incident only after the hand-over finished.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from collector.core.states import IncidentState
from collector.detect.events import Flow
from collector.detect.tracker import Decision, FlowTracker

# A line stamped this much before the arming is taken as logged before it even when it was
# read after the mark (the clock offset is measured to a few hundred milliseconds).
CLOCK_TOLERANCE = timedelta(seconds=2)


class SourceKind(str, Enum):
    """What the sender address of a line is, as the reader found out (inventory, config)."""

    INVENTORY = "inventory"  # an address of exactly one inventory router: both ends armed
    PEER = "peer"  # a configured peer of the receiver outside the inventory: receiver only
    AMBIGUOUS = "ambiguous"  # owned by two or more inventory routers: receiver only, said so
    SELF = "self"  # the receiver's own address
    UNKNOWN = "unknown"  # neither: a scanner, spoofed ESP, a misconfigured stranger


@dataclass(frozen=True, slots=True)
class Rules:
    """The playbook's numbers, as the core needs them."""

    occurs: int = 2
    within: timedelta = timedelta(minutes=10)
    arm_window: timedelta = timedelta(minutes=10)
    max_window: timedelta = timedelta(minutes=30)
    cooldown_flow: timedelta = timedelta(minutes=30)
    cooldown_pair: timedelta = timedelta(minutes=15)
    max_armed_routers: int = 4
    arm_unknown_sources: bool = False
    arms_per_source_per_hour: int = 3
    unconfirmed_per_router: int = 1  # open incidents of unknown or ambiguous sources per receiver

    @property
    def max_armed_for_unconfirmed(self) -> int:
        """Room unknown or ambiguous sources may take: half the cap, so a few spoofed ESP
        packets cannot blind the agent to a desync between known peers."""
        return self.max_armed_routers // 2


# ---------------------------------------------------------------------- events (in)


@dataclass(frozen=True, slots=True)
class LineSeen:
    """One invalid-SPI line, read from `flow.router`'s log (a poll, a syslog confirmation
    or the reads around arming all go through the same reader)."""

    flow: Flow
    event_id: str  # identity of this logged line (the router's counters, not its text)
    at: datetime  # agent clock when the line was read
    read: int  # number of the read of flow.router that found it (increasing per router per process)
    raw: str
    sender: str | None = None  # inventory name of the sender, when known and unique
    source: SourceKind = SourceKind.INVENTORY
    dst_owned: bool | None = True  # destaddr is an address of the receiver (None: cannot tell)
    logged_at: datetime | None = None  # the line's own time on the agent clock, when it has a date


@dataclass(frozen=True, slots=True)
class ArmDone:
    """Arming of an incident finished on every router it asked for."""

    incident_id: str
    at: datetime
    armed: frozenset[str]  # routers armed or joined
    failed: tuple[tuple[str, str], ...] = ()  # (router, reason)
    refused: bool = False  # a safety rule said no (nothing was sent where refused)
    mark: int | None = None  # the receiver's read number taken after every end was armed
    internal_error: str | None = None  # the arming code itself failed: what it did is unknown


@dataclass(frozen=True, slots=True)
class CaptureDone:
    incident_id: str
    at: datetime
    complete: bool = True
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ReleaseDone:
    incident_id: str
    router: str
    at: datetime
    clean: bool = True
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    now: datetime


@dataclass(frozen=True, slots=True)
class Stop:
    """The agent is stopping (SIGTERM/SIGINT, the end of a daemon's run)."""

    now: datetime
    reason: str = "agent stopped"
    state: IncidentState = IncidentState.STOPPED  # FAILED for a daemon's start-up reconcile


Event = LineSeen | ArmDone | CaptureDone | ReleaseDone | Tick | Stop


# ---------------------------------------------------------------------- actions (out)


@dataclass(frozen=True, slots=True)
class Arm:
    """Open incident `incident_id` and arm its routers (join those already armed)."""

    incident_id: str
    flow: Flow
    receiver: str
    sender: str | None
    joins: tuple[tuple[str, str], ...]  # (router, incident already holding it)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Armed:
    """Record that every end of the incident is armed (and the receiver's log marked)."""

    incident_id: str
    at: datetime
    routers: frozenset[str]
    notes: tuple[str, ...] = ()  # ends that could not be armed, and why


@dataclass(frozen=True, slots=True)
class Capture:
    incident_id: str
    armed_before_repeat: bool  # the flow's first repeat was logged after both ends were armed


@dataclass(frozen=True, slots=True)
class Release:
    """Take this incident's changes back from one router, or hand its shared ones over."""

    incident_id: str
    router: str
    heir: str | None  # the incident that keeps the router armed; None: disarm it


@dataclass(frozen=True, slots=True)
class Close:
    """Record the end of an incident (all its routers are released)."""

    incident_id: str
    state: IncidentState
    reason: str


@dataclass(frozen=True, slots=True)
class Count:
    """Record a line as evidence of an incident (or of no incident: `incident_id` None)."""

    flow: Flow
    event_id: str
    raw: str
    incident_id: str | None
    after_arming: bool


@dataclass(frozen=True, slots=True)
class Skip:
    """A flow that will not be armed, and why (recorded as a skipped incident or a note)."""

    flow: Flow
    reason: str
    record: bool  # True: a skipped incident in the store; False: a note only
    unknown_source: bool = False


@dataclass(frozen=True, slots=True)
class MarkArmedLate:
    """The flow had repeated before its routers were armed: the capture holds the aftermath."""

    incident_id: str


Action = Arm | Armed | Capture | Release | Close | Count | Skip | MarkArmedLate


# ---------------------------------------------------------------------- state


class Phase(str, Enum):
    ARMING = "arming"
    ARMED = "armed"
    CAPTURING = "capturing"
    RELEASING = "releasing"


@dataclass
class Incident:
    """The core's view of one open incident."""

    incident_id: str
    flow: Flow
    receiver: str
    sender: str | None
    opened_at: datetime
    phase: Phase = Phase.ARMING
    routers: set[str] = field(default_factory=set)  # held: armed, joined or handed over to it
    armed_at: datetime | None = None
    mark: int | None = None
    lines_before_arming: int = 0
    repeated_before_arming: bool = False
    unconfirmed: bool = False  # unknown or ambiguous source: counts against the smaller cap
    end_state: IncidentState | None = None
    end_reason: str = ""
    releasing: set[str] = field(default_factory=set)  # Release sent, ReleaseDone not yet back
    waiting: set[str] = field(default_factory=set)  # to release once a hand-over to us is done
    notes: list[str] = field(default_factory=list)

    @property
    def pair(self) -> frozenset[str]:
        return frozenset([self.receiver] + ([self.sender] if self.sender else []))


@dataclass
class CoreState:
    """Everything `decide` knows. Built fresh, or restored from the state store at start."""

    rules: Rules
    tracker: FlowTracker
    incidents: dict[str, Incident] = field(default_factory=dict)
    by_flow: dict[Flow, str] = field(default_factory=dict)
    handovers: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # router -> (from, to) in flight
    arms_by_source: dict[str, list[datetime]] = field(default_factory=dict)
    unknown_sources: dict[tuple[str, str], int] = field(default_factory=dict)  # (router, src) -> lines
    opened: int = 0
    stopping: bool = False

    @classmethod
    def fresh(cls, rules: Rules) -> CoreState:
        tracker = FlowTracker(rules.occurs, rules.within, rules.cooldown_flow, rules.cooldown_pair)
        return cls(rules=rules, tracker=tracker)

    # -- views used by decide and by the tests' invariants --------------------------

    def held_routers(self, *, unconfirmed_only: bool = False) -> set[str]:
        """Routers armed (or being armed) for an open incident and not yet released."""
        held: set[str] = set()
        for incident in self.incidents.values():
            if unconfirmed_only and not incident.unconfirmed:
                continue
            held |= incident.routers
        return held

    def holders(self, router: str, *, besides: str | None = None) -> list[Incident]:
        return [i for i in self.incidents.values()
                if router in i.routers and i.incident_id != besides and i.phase is not Phase.RELEASING]

    def adopt(self, incident: Incident) -> None:
        """Take in an incident found open in the state store (a restart, the next cron run)."""
        self.incidents[incident.incident_id] = incident
        self.by_flow[incident.flow] = incident.incident_id


# ---------------------------------------------------------------------- decide


def decide(state: CoreState, event: Event) -> list[Action]:
    """Apply one event to `state` (mutated in place) and return what to do, in order.

    No I/O, no clock: the same state and event always give the same actions."""
    if isinstance(event, LineSeen):
        return _line(state, event)
    if isinstance(event, ArmDone):
        return _arm_done(state, event)
    if isinstance(event, CaptureDone):
        return _capture_done(state, event)
    if isinstance(event, ReleaseDone):
        return _release_done(state, event)
    if isinstance(event, Tick):
        return _tick(state, event.now)
    if isinstance(event, Stop):
        return _stop(state, event)
    raise TypeError(f"not an event: {event!r}")


def _line(state: CoreState, line: LineSeen) -> list[Action]:
    flow = line.flow
    pair = frozenset([flow.router] + ([line.sender] if line.sender else []))
    decision = state.tracker.observe(flow, line.at, line.event_id, pair)
    if decision is Decision.DUPLICATE:
        return []
    incident = _open_incident_of(state, flow)
    if incident is not None:
        return _line_of_incident(state, incident, line)
    unlinked: list[Action] = [Count(flow, line.event_id, line.raw, None, after_arming=False)]
    actions = unlinked
    refusal = _refusal(state, line)
    if refusal is not None and refusal.unknown:
        key = (flow.router, str(flow.src))
        state.unknown_sources[key] = state.unknown_sources.get(key, 0) + 1
    if decision is Decision.COOLDOWN or state.stopping:
        return actions
    if refusal is not None:
        # said once per window (its first line, and again when it repeats), not per line
        if decision in (Decision.FIRST, Decision.REPEATED):
            actions.append(Skip(flow, refusal.reason, record=refusal.record, unknown_source=refusal.unknown))
        return actions
    opened = _open(state, line, repeated=_repeated(state, flow))
    return opened if any(isinstance(a, Arm) for a in opened) else unlinked + opened  # Arm counts the line itself


def _open_incident_of(state: CoreState, flow: Flow) -> Incident | None:
    incident_id = state.by_flow.get(flow)
    return state.incidents.get(incident_id) if incident_id else None


def _line_of_incident(state: CoreState, incident: Incident, line: LineSeen) -> list[Action]:
    after = (incident.phase is not Phase.ARMING and incident.mark is not None and line.read > incident.mark
             and (line.logged_at is None or incident.armed_at is None
                  or line.logged_at >= incident.armed_at - CLOCK_TOLERANCE))
    actions: list[Action] = [Count(line.flow, line.event_id, line.raw, incident.incident_id, after_arming=after)]
    if incident.phase is Phase.ARMED and after:
        incident.phase = Phase.CAPTURING
        actions.append(Capture(incident.incident_id, armed_before_repeat=not incident.repeated_before_arming))
    elif not after and incident.phase in (Phase.ARMING, Phase.ARMED):
        incident.lines_before_arming += 1
        if incident.lines_before_arming >= state.rules.occurs and not incident.repeated_before_arming:
            incident.repeated_before_arming = True
            actions.append(MarkArmedLate(incident.incident_id))
    return actions


@dataclass(frozen=True, slots=True)
class _Refusal:
    reason: str
    record: bool  # a skipped incident in the store (True) or a note (False)
    unknown: bool  # counted as a line from an unknown source


def _refusal(state: CoreState, line: LineSeen) -> _Refusal | None:
    """Why this flow may not be armed now, whatever the cap says."""
    flow, rules = line.flow, state.rules
    if line.dst_owned is False:
        return _Refusal(f"destaddr {flow.dst} is not an address of {flow.router}: a forged or misattributed "
                        "line", record=False, unknown=True)
    if line.source is SourceKind.SELF:
        return _Refusal(f"srcaddr {flow.src} is {flow.router}'s own address", record=False, unknown=False)
    unknown = line.source is SourceKind.UNKNOWN
    if unknown and not rules.arm_unknown_sources:
        return _Refusal(f"srcaddr {flow.src} is neither an inventory router nor a configured peer of "
                        f"{flow.router} (an internet scanner or spoofed ESP?)", record=False, unknown=True)
    if unknown and not _repeated(state, flow):
        # Scanners send one packet per random SPI (real/syslog/pastebin_f2b1tc77_scan.txt);
        # a desync repeats its SPI. So an unknown source arms only once its flow repeats.
        return _Refusal(f"srcaddr {flow.src} is neither an inventory router nor a configured peer of "
                        f"{flow.router}: armed only once its flow repeats ({rules.occurs} lines within "
                        f"{_minutes(rules.within)}), as a scanner's random SPIs do not", record=False, unknown=True)
    recent = [t for t in state.arms_by_source.get(str(flow.src), []) if line.at - t < timedelta(hours=1)]
    if len(recent) >= rules.arms_per_source_per_hour:
        # an unknown source's refusals are counted with it, not kept as one skipped incident each
        return _Refusal(f"srcaddr {flow.src} already opened {len(recent)} incidents in the last hour "
                        f"(limit {rules.arms_per_source_per_hour})", record=not unknown, unknown=unknown)
    return None


def _repeated(state: CoreState, flow: Flow) -> bool:
    window = state.tracker.window(flow)
    return window is not None and window.count >= state.rules.occurs


def _open(state: CoreState, line: LineSeen, *, repeated: bool) -> list[Action]:
    flow, rules = line.flow, state.rules
    sender = line.sender if line.source is SourceKind.INVENTORY else None
    routers = [flow.router] + ([sender] if sender and sender != flow.router else [])
    held = state.held_routers()
    new = [r for r in routers if r not in held]
    unconfirmed = line.source in (SourceKind.UNKNOWN, SourceKind.AMBIGUOUS)
    unknown = line.source is SourceKind.UNKNOWN  # its refusals are counted with the source, not recorded each
    if len(held) + len(new) > rules.max_armed_routers:
        return [Skip(flow, f"armed-router cap reached ({len(held)} of {rules.max_armed_routers} armed)",
                     record=not unknown, unknown_source=unknown)]
    leaving = [r for r in routers if r in held and not state.holders(r)]
    if leaving:  # still being disarmed for an incident that just ended: the next line arms it
        return [Skip(flow, f"{', '.join(leaving)} still being disarmed for an earlier incident", record=False)]
    if unconfirmed:
        held_unconfirmed = state.held_routers(unconfirmed_only=True)
        if len(held_unconfirmed | set(new)) > rules.max_armed_for_unconfirmed:
            return [Skip(flow, "room for unconfirmed sources used up "
                               f"({rules.max_armed_for_unconfirmed} of {rules.max_armed_routers} routers)",
                         record=not unknown, unknown_source=unknown)]
        on_receiver = [i for i in state.incidents.values() if i.unconfirmed and i.receiver == flow.router]
        if len(on_receiver) >= rules.unconfirmed_per_router:
            # many sources at once (a scan, spoofed ESP) must not pile incidents onto one router
            return [Skip(flow, f"{len(on_receiver)} incident(s) of unconfirmed sources already open on "
                               f"{flow.router} (limit {rules.unconfirmed_per_router})",
                         record=not unknown, unknown_source=unknown)]
    state.opened += 1
    incident_id = _incident_id(line, state.opened)
    notes = []
    if line.source is SourceKind.PEER:
        notes.append(f"srcaddr {flow.src} is a configured peer of {flow.router} outside the inventory: "
                     "only the receiving end is captured")
    elif line.source is SourceKind.AMBIGUOUS:
        notes.append(f"srcaddr {flow.src} is an address of more than one inventory router: the sender is "
                     "ambiguous, only the receiving end is captured")
    elif sender is None:
        notes.append(f"srcaddr {flow.src} is not a router of the inventory: only the receiving end "
                     f"({flow.router}) is captured")
    incident = Incident(incident_id, flow, flow.router, sender if len(routers) > 1 else None, line.at,
                        routers=set(routers), unconfirmed=unconfirmed, notes=notes, lines_before_arming=1)
    if repeated:  # the window already holds earlier lines of this flow, all before any arming
        incident.lines_before_arming = max(state.rules.occurs, 1)
        incident.repeated_before_arming = True
    state.incidents[incident_id] = incident
    state.by_flow[flow] = incident_id
    state.arms_by_source.setdefault(str(flow.src), []).append(line.at)
    joins = tuple((r, state.holders(r, besides=incident_id)[0].incident_id)
                  for r in routers if r in held and state.holders(r, besides=incident_id))
    actions: list[Action] = [Count(flow, line.event_id, line.raw, incident_id, after_arming=False),
                             Arm(incident_id, flow, flow.router, incident.sender, joins, tuple(notes))]
    if incident.repeated_before_arming:
        actions.append(MarkArmedLate(incident_id))
    return actions


def _incident_id(line: LineSeen, n: int) -> str:
    digest = hashlib.blake2s(f"{line.flow.key()}|{line.event_id}|{n}".encode(), digest_size=3).hexdigest()
    return f"{line.at:%Y%m%dT%H%M%S}{digest}"


def _arm_done(state: CoreState, done: ArmDone) -> list[Action]:
    incident = state.incidents.get(done.incident_id)
    if incident is None:
        return []
    if incident.phase is not Phase.ARMING:
        if done.internal_error is not None and incident.phase is Phase.ARMED:
            # the arm work failed after it said the incident armed (staging the logs as they were)
            return _end(state, incident, IncidentState.FAILED,
                        f"internal error after arming ({done.internal_error}), see the agent log; disarming at once")
        return []
    for router, reason in done.failed:
        incident.notes.append(f"{router}: {reason}")
    # A router whose arming failed may still hold half-applied steps: it stays held and is
    # released with the rest (its undo runs), but it no longer counts as armed.
    if state.stopping:
        return _end(state, incident, IncidentState.STOPPED, "agent stopped while arming")
    if done.internal_error is not None:  # it may have armed anything: every router is released now
        return _end(state, incident, IncidentState.FAILED,
                    f"internal error while arming ({done.internal_error}), see the agent log; disarming at once")
    if incident.receiver not in done.armed:
        why = "; ".join(f"{r}: {reason}" for r, reason in done.failed) or "receiver not armed"
        final = IncidentState.SKIPPED if done.refused else IncidentState.FAILED
        return _end(state, incident, final, f"not armed: {why}")
    incident.phase = Phase.ARMED
    incident.armed_at = done.at
    incident.mark = done.mark
    return [Armed(incident.incident_id, done.at, done.armed, tuple(f"{r}: {why}" for r, why in done.failed))]


def _capture_done(state: CoreState, done: CaptureDone) -> list[Action]:
    incident = state.incidents.get(done.incident_id)
    if incident is None or incident.phase is not Phase.CAPTURING:
        return []
    state.tracker.mark_captured(incident.flow, incident.pair, done.at)
    reason = "complete" if done.complete else (done.problem or "incomplete")
    return _end(state, incident, IncidentState.CAPTURED, reason)


def _tick(state: CoreState, now: datetime) -> list[Action]:
    state.tracker.expire(now)
    for source, times in list(state.arms_by_source.items()):
        kept = [t for t in times if now - t < timedelta(hours=1)]
        if kept:
            state.arms_by_source[source] = kept
        else:
            del state.arms_by_source[source]
    actions: list[Action] = []
    # An incident leaves ARMING only through its ArmDone: the worker always answers (a
    # failure is an answer), and a crash loses the whole process, not one answer.
    for incident in list(state.incidents.values()):
        if incident.phase is Phase.ARMED and incident.armed_at is not None:
            if now - incident.armed_at >= state.rules.arm_window:
                if incident.repeated_before_arming:
                    actions += _end(state, incident, IncidentState.NOT_CAPTURED,
                                    "stopped before a capture: the flow had repeated before the debugs were armed, "
                                    f"and no line was logged after arming within {_minutes(state.rules.arm_window)}")
                else:
                    actions += _end(state, incident, IncidentState.TRANSIENT,
                                    "seen once, not repeated within the window: rekey transient")
    return actions


def _stop(state: CoreState, stop: Stop) -> list[Action]:
    state.stopping = stop.state is IncidentState.STOPPED
    actions: list[Action] = []
    for incident in list(state.incidents.values()):
        if incident.phase is Phase.ARMED:
            actions += _end(state, incident, stop.state, stop.reason)
    return actions  # ARMING ends when its ArmDone arrives; CAPTURING finishes its bundle first


def _end(state: CoreState, incident: Incident, final: IncidentState, reason: str) -> list[Action]:
    """Start releasing every router of an incident; it closes when the last is released."""
    incident.phase = Phase.RELEASING
    incident.end_state = final
    incident.end_reason = reason
    state.by_flow.pop(incident.flow, None)
    actions: list[Action] = []
    for router in sorted(incident.routers):
        actions += _release(state, incident, router)
    return actions + _close_if_done(state, incident)


def _release(state: CoreState, incident: Incident, router: str) -> list[Action]:
    if any(to == incident.incident_id for _from, to in state.handovers.get(router, [])):
        incident.waiting.add(router)  # shared steps are still on their way to this incident
        return []
    heirs = state.holders(router, besides=incident.incident_id)
    heir = heirs[0].incident_id if heirs else None
    if heir is not None:
        state.handovers.setdefault(router, []).append((incident.incident_id, heir))
    incident.releasing.add(router)
    return [Release(incident.incident_id, router, heir)]


def _release_done(state: CoreState, done: ReleaseDone) -> list[Action]:
    incident = state.incidents.get(done.incident_id)
    if incident is None:
        return []
    incident.releasing.discard(done.router)
    incident.routers.discard(done.router)
    if done.summary or not done.clean:  # the end reason says per router what its disarm found
        incident.notes.append(f"{done.router}: {done.summary or 'disarm not verified'}")
    actions: list[Action] = []
    pending = state.handovers.get(done.router, [])
    finished = [h for h in pending if h[0] == done.incident_id]
    state.handovers[done.router] = [h for h in pending if h[0] != done.incident_id]
    if not state.handovers[done.router]:
        del state.handovers[done.router]
    for _from, to in finished:
        heir = state.incidents.get(to)
        if heir is not None and done.router in heir.waiting:
            heir.waiting.discard(done.router)
            actions += _release(state, heir, done.router)
            actions += _close_if_done(state, heir)
    return actions + _close_if_done(state, incident)


def _close_if_done(state: CoreState, incident: Incident) -> list[Action]:
    if incident.phase is not Phase.RELEASING or incident.releasing or incident.waiting:
        return []
    if incident.incident_id not in state.incidents:
        return []
    del state.incidents[incident.incident_id]
    if state.by_flow.get(incident.flow) == incident.incident_id:
        del state.by_flow[incident.flow]
    reason = incident.end_reason
    if incident.notes and incident.end_state is not IncidentState.CAPTURED:
        reason = "; ".join([reason] + [n for n in incident.notes if n not in reason])
    return [Close(incident.incident_id, incident.end_state or IncidentState.FAILED, reason)]


def _minutes(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def open_incidents(state: CoreState) -> Iterable[Incident]:
    return state.incidents.values()
