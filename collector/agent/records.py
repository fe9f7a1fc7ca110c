"""Recording: what the decision core decided, written to the state store and told to the observers.

Every action is recorded before the router work it describes is started (an incident
exists in the store before its first arm step), so a crash at any point leaves a store
that the next start can act on (startup.py).
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

from collector.agent.pending import PendingWrites
from collector.core.decide import Arm, ArmDone, Armed, Capture, Close, Count, Incident, MarkArmedLate, Skip
from collector.core.observers import AgentEvents
from collector.core.results import DisarmResult
from collector.core.states import IncidentState
from collector.detect.tracker import encode_key
from collector.errors import StateStoreError
from collector.playbook import Playbook
from collector.state import EventRecord, StateStore
from collector.timeutil import utcnow


def _goes_on(record):
    """A record the store refuses is said (once per problem) and the agent goes on:
    deciding and disarming do not wait for a disk with room."""
    @functools.wraps(record)
    def tolerant(self, *args):
        try:
            return record(self, *args)
        except StateStoreError as exc:
            self.refused(exc)
            return None
    return tolerant


class IncidentRecorder:
    """Writes the core's record-keeping actions and each incident's end to the store.

    Threads: everything but `ended` runs in the agent's loop thread, in the order the core
    decided; `ended` runs in a worker thread (it follows the bundle's sealing). The store
    is thread-safe and the observers must be; the number of skips it recorded (loop
    thread only) keeps their incident ids apart; `_lock` guards the problems already said
    and the incident ends the store refused (`held_ends`), kept to be written again.

    Invariants: it touches no router and calls no decision code. An incident is created
    in the store (`opened`) before any arm step of it can be recorded, or it is not armed;
    in a dry run the arm notes and the armed-late flag are not written (no incident was
    opened). A write the store refuses never stops the agent: it is said once per problem,
    and an incident's end is held and written again (`write_held`).

    The lines counted and the unknown sources noted are kept (`_seen`) and written together
    (`flush`): when the loop has no event left to process, before an incident links its
    lines, before an incident's trigger lines are read, and every KEPT_AT_MOST of them. A
    synced write for each held the loop (and every writer queued behind it) through a
    burst of lines: 500 writes in the first second of 50 flows."""

    def __init__(self, *, store: StateStore, playbook: Playbook, observers: AgentEvents, dry_run: bool):
        self.store = store
        self.playbook = playbook
        self.observers = observers
        self.dry_run = dry_run
        self._skips = 0
        self._lock = threading.Lock()
        self._said: set[str] = set()
        self.held_ends: dict[str, dict] = {}  # incident -> its end as `update_incident` takes it
        self._seen: PendingWrites[EventRecord | tuple] = PendingWrites(self._write_seen)  # lines, unknown sources

    def refused(self, exc: StateStoreError) -> None:
        """The store refused a write: say so once per problem."""
        with self._lock:
            if str(exc) in self._said:
                return
            self._said.add(str(exc))
        self.observers.problem(None, f"the state store cannot be written: {exc}; the agent goes on and still "
                                     "disarms on time; undo steps and incident ends it cannot record are kept in "
                                     "memory and written again")

    def opened(self, action: Arm, incident: Incident) -> bool:
        """An incident is about to be armed: create it and link the lines that opened it.
        False: the store refused (its steps could not be recorded either: not armed)."""
        try:
            self._opened(action, incident)
        except StateStoreError as exc:
            self.refused(exc)
            return False
        return True

    def not_opened(self, action: Arm) -> ArmDone:
        """The core's answer to an arm whose incident the store could not record."""
        return ArmDone(action.incident_id, utcnow(), frozenset(),
                       ((action.receiver, "not armed: the state store cannot be written"),), refused=True)

    @_goes_on
    def flush(self) -> None:
        """Write the lines counted and the unknown sources noted since the last flush, in
        one transaction. A store that refuses them is said (the lines are then lost, as a
        line's own write lost it before)."""
        self._seen.flush()

    def _write_seen(self, seen: list[EventRecord | tuple]) -> None:
        self.store.record_seen([s for s in seen if isinstance(s, EventRecord)],
                               [s for s in seen if not isinstance(s, EventRecord)])

    def _opened(self, action: Arm, incident: Incident) -> None:
        self.flush()  # the lines it links
        routers = [action.receiver] + ([action.sender] if action.sender else [])
        self.store.create_incident(action.incident_id, encode_key(action.flow), self.playbook.name,
                                   IncidentState.ARMED, routers=routers, reason="; ".join(action.notes),
                                   at=incident.opened_at, armed_late=incident.repeated_before_arming)
        self.store.link_events(action.incident_id, encode_key(action.flow), incident.opened_at - self.playbook.within)
        self.observers.incident_opened(action.incident_id, action.receiver, action.flow.key(),
                                       state=IncidentState.ARMED)

    @_goes_on
    def line(self, count: Count) -> None:
        """A line counted: written with the next `flush`."""
        self._seen.add(EventRecord(event_id=count.event_id, router=count.flow.router, key=encode_key(count.flow),
                                   source="poll", raw=count.raw, device_time=None, received_at=utcnow(),
                                   incident_id=count.incident_id))

    @_goes_on
    def skip(self, skip: Skip) -> None:
        flow = skip.flow
        message = f"{flow.spi_hex} from {flow.src}: not arming: {skip.reason}"
        if skip.unknown_source:  # said first: a store that refuses the record does not hide it
            self.observers.unknown_source(flow.router, message)
        else:
            self.observers.problem(flow.router, message)
        if skip.unknown_source:  # written with the next `flush`
            self._seen.add((flow.router, str(flow.src), skip.reason, utcnow()))
        if skip.record:
            # Numbered: one flow skipped twice within a second (two of its lines in one poll
            # while the cap is reached) is two skips, not one id twice (that stopped the agent).
            self._skips += 1
            incident_id = f"{utcnow():%Y%m%dT%H%M%S}-skip-{abs(hash((flow, skip.reason))) % 10**6:06d}-{self._skips}"
            self.store.create_incident(incident_id, encode_key(flow), self.playbook.name, IncidentState.SKIPPED,
                                       routers=[flow.router], reason=skip.reason)

    @_goes_on
    def armed_late(self, action: MarkArmedLate) -> None:
        if not self.dry_run:
            self.store.update_incident(action.incident_id, armed_late=True)

    @_goes_on
    def armed(self, action: Armed) -> None:
        """Every end answered its arm: when, and what the arm noted beside the opening reason."""
        if not self.dry_run:
            record = self.store.incident(action.incident_id)
            notes = [n for n in ([record.reason] if record and record.reason else []) + list(action.notes) if n]
            self.store.update_incident(action.incident_id, armed_at=action.at, reason="; ".join(notes))

    @_goes_on
    def capturing(self, action: Capture) -> None:
        self.store.update_incident(action.incident_id, state=IncidentState.CAPTURING)

    def trigger_lines(self, incident_id: str) -> tuple[str, ...]:
        """The polled lines that belong to the incident (its bundle's trigger)."""
        self.flush()
        record = self.store.incident(incident_id)
        key = record.key if record else None
        return tuple(e.raw for e in self.store.events(key=key)
                     if e.incident_id == incident_id and e.source == "poll")

    def ended(self, close: Close, bundle: Path | None, releases: list[DisarmResult], since: float) -> str:
        """The incident is over (its bundle sealed, if it had a capture): tell the observers
        and store its end; returns the end reason as stored."""
        self.observers.disarmed(close.incident_id, releases, close.state, since)
        if bundle is not None:
            complete = json.loads((bundle / "manifest.json").read_text()).get("complete", False)
            self.observers.captured(close.incident_id, bundle, complete=complete, seconds=since)
        reason = close.reason
        if close.state is IncidentState.CAPTURED and bundle is None:
            reason = f"{reason}; the bundle could not be written"
        end = {"state": close.state, "reason": reason, "bundle_path": bundle}
        try:
            self.store.update_incident(close.incident_id, **end)
        except StateStoreError as exc:
            self.refused(exc)
            with self._lock:
                self.held_ends[close.incident_id] = end
            reason += f" (not recorded in the state store yet: {exc})"
        return reason

    def write_held(self) -> int:
        """Write the incident ends the store refused; returns how many it still refuses."""
        with self._lock:
            held = dict(self.held_ends)
        for incident_id, end in held.items():
            try:
                self.store.update_incident(incident_id, **end)
            except StateStoreError:
                continue
            with self._lock:
                self.held_ends.pop(incident_id, None)
        with self._lock:
            return len(self.held_ends)
