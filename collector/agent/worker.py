"""Acting: the router work the decision core asks for, carried out and answered as events.

`Worker.arm`, `capture` and `release` each take one action, talk to routers through the
responder (the only code that changes a router), and return the events that report what
happened: `ArmDone`, `CaptureDone`, `ReleaseDone`, and any `LineSeen` read on the way
(arming reads the log first, because arming may empty it). The worker never calls the
decision code; the agent's loop feeds what it returns.

What an incident needs across actions (and across cron runs: arm in one process, capture
in the next) is kept in a staging folder beside the bundles: the other end's address as
the sender itself knows it, the notes, and each router's log as read just before arming.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from collector.core.decide import Arm, ArmDone, Capture, CaptureDone, Close, Event, LineSeen, Release, ReleaseDone
from collector.bundle import check_bundle_room
from collector.core.observers import AgentEvents, NullEvents
from collector.core.results import ArmResult, DisarmResult, LogSnapshot
from collector.core.states import IncidentState
from collector.detect.events import Flow
from collector.detect.tracker import decode_key
from collector.diagnose.report_html import render_capture_html
from collector.inventory import Host, Inventory
from collector.playbook import Playbook
from collector.evidence import CaptureResult, RouterCapture, write_incident_bundle
from collector.respond.plan import PlanError, render_dry_run
from collector.respond.responder import Responder
from collector.sessions import SessionError
from collector.state import StateStore
from collector.timeutil import utcnow

from collector.agent.reader import LogReader

log = logging.getLogger(__name__)

Address = IPv4Address | IPv6Address


@dataclass
class IncidentContext:
    """What the worker knows of one incident: its ends and what it has seen of them."""

    incident_id: str
    flow: Flow
    receiver: str
    sender: str | None
    sender_peer: str | None = None  # the receiver's address as the sender knows it (NAT-T)
    notes: list[str] = field(default_factory=list)
    armed_at: datetime | None = None
    pre_arm: dict[str, LogSnapshot] = field(default_factory=dict)
    captures: tuple[RouterCapture, ...] = ()
    captured_at: datetime | None = None
    armed_before_repeat: bool = False
    releases: list[DisarmResult] = field(default_factory=list)


class Worker:
    """Carries out Arm, Capture and Release on routers; seals bundles.

    Threads: each method runs in a worker thread of the agent; both ends of an incident
    are worked on in parallel through `ends`. Contexts are per incident and only one
    action of an incident runs at a time (the core asks for the next only after the
    previous one answered), so they need no lock beyond the dict's own atomicity."""

    def __init__(self, *, inventory: Inventory, playbook: Playbook, store: StateStore, responder: Responder,
                 reader: LogReader, bundle_root: Path, ends: ThreadPoolExecutor, dry_run: bool = False,
                 report=lambda message: None, observers: AgentEvents | None = None):
        self.inventory = inventory
        self.playbook = playbook
        self.store = store
        self.responder = responder
        self.reader = reader
        self.bundle_root = bundle_root
        self.ends = ends
        self.dry_run = dry_run
        self.report = report
        self.observers = observers or NullEvents()
        self._contexts: dict[str, IncidentContext] = {}
        self.released: list[tuple[str, str, str]] = []  # (incident, router, verdict), for what the agent says

    # -- arm ---------------------------------------------------------------------------

    def arm(self, action: Arm) -> list[Event]:
        context = IncidentContext(action.incident_id, action.flow, action.receiver, action.sender,
                                  notes=list(action.notes))
        self._contexts[action.incident_id] = context
        receiver = self.inventory.hosts[action.receiver]
        sender = self.inventory.hosts.get(action.sender) if action.sender else None
        if sender is not None:
            context.sender_peer = self._sender_peer(sender, action.flow)
        ends = [(receiver, action.flow.src, "receiver")]
        if sender is not None:
            ends.append((sender, ip_address(context.sender_peer), "sender"))
        if self.dry_run:
            return self._dry_run(action, ends)
        room = check_bundle_room(self.bundle_root)
        if room is not None:  # a capture that cannot be written is not worth a debugged router
            return [ArmDone(action.incident_id, utcnow(), frozenset(),
                            ((action.receiver, f"not armed: no room for the bundle: {room}"),), refused=True)]
        joins = dict(action.joins)
        started = time.monotonic()
        outcomes = list(self.ends.map(lambda end: self._arm_one(action, end, joins.get(end[0].name)), ends))
        events: list[Event] = [line for _result, lines in outcomes for line in lines]
        results = [result for result, _lines in outcomes]
        self.observers.armed(action.incident_id, results, time.monotonic() - started)
        context.pre_arm = {r.router: r.pre_arm_log for r in results if r.pre_arm_log is not None}
        armed = frozenset(r.router for r in results if r.armed)
        failed = tuple((r.router, r.error or "not armed") for r in results if not r.armed)
        refused = any(r.refused for r in results if r.router == receiver.name)
        mark, marked_lines = None, []
        if receiver.name in armed:
            try:  # every end is armed now: anything this read does not hold was logged after
                marked_lines, mark = self.reader.poll(receiver)
            except SessionError as exc:
                failed += ((receiver.name, f"could not read its log after arming: {exc.reason}"),)
                armed -= {receiver.name}
        context.armed_at = utcnow()
        for router, reason in failed:
            context.notes.append(f"{router}: {reason}")
        self._save(context)
        return events + [ArmDone(action.incident_id, context.armed_at, armed, failed, refused, mark)] + marked_lines

    def _arm_one(self, action: Arm, end: tuple[Host, Address, str], holder: str | None) -> tuple[ArmResult, list[LineSeen]]:
        host, peer, _role = end
        window = self.playbook.arm_window
        if holder is not None:
            return self.responder.join(host, peer, action.incident_id, window, holder_incident_id=holder), []
        lines: list[LineSeen] = []
        try:  # arming may resize the buffer, which empties it: take in what is unread first
            lines, _number = self.reader.poll(host)
        except SessionError as exc:
            log.warning("%s: log read before arming failed: %s", host.name, exc.reason)
        return self.responder.arm(host, peer, action.incident_id, window), lines

    def _sender_peer(self, sender: Host, flow: Flow) -> str:
        """The receiver's address as the sender knows it: under NAT-T the receiver logs its
        inside address, which the sender never sees; its SA with the logged SPI says."""
        try:
            found = self.responder.find_sender_peer(sender, flow.spi_hex)
        except (SessionError, PlanError, ValueError) as exc:
            log.warning("%s: could not look up its SA for %s: %s", sender.name, flow.spi_hex, exc)
            found = None
        return str(found) if found is not None else str(flow.dst)

    def _dry_run(self, action: Arm, ends) -> list[Event]:
        plans = []
        for host, peer, _role in ends:
            try:
                plans.append(self.responder.plan_only(host, peer, action.incident_id, self.playbook.arm_window))
            except (SessionError, PlanError) as exc:
                self.report(f"{host.name}: dry run could not plan: {exc}")
        self.report("dry run: nothing was changed on any router; this is what would run:\n" + render_dry_run(plans))
        return [ArmDone(action.incident_id, utcnow(), frozenset(), ((action.receiver, "dry run: nothing changed"),),
                        refused=True)]

    # -- capture -------------------------------------------------------------------------

    def capture(self, action: Capture) -> list[Event]:
        context = self.context(action.incident_id)
        ends = [(context.receiver, context.flow.src, "receiver")]
        if context.sender:
            ends.append((context.sender, ip_address(context.sender_peer or str(context.flow.dst)), "sender"))

        def one(end):
            name, peer, role = end
            host = self.inventory.hosts.get(name)
            if host is None:
                return RouterCapture(name, role, "unknown", peer, (), None, error="not in the inventory any more")
            return self.responder.capture(host, peer, role, action.incident_id)

        context.captures = tuple(self.ends.map(one, ends))
        context.captured_at = utcnow()
        context.armed_before_repeat = action.armed_before_repeat
        problems = [f"{c.router}: {c.error}" for c in context.captures if c.error]
        return [CaptureDone(action.incident_id, context.captured_at, complete=not problems,
                            problem="; ".join(problems) or None)]

    # -- release ---------------------------------------------------------------------------

    def release(self, action: Release) -> list[Event]:
        host = self.inventory.hosts.get(action.router)
        if host is None:
            result = DisarmResult(action.router, clean=False, error="not in the inventory: disarm it by hand")
        elif action.heir is not None:
            result = self.responder.hand_over(host, action.incident_id, action.heir)
        else:
            result = self.responder.disarm(host, action.incident_id)
        if any("logging buffered" in " ".join(change.undo) for change in result.changes):
            self.reader.read_whole_buffer_next(action.router)
        self.context(action.incident_id).releases.append(result)
        self.released.append((action.incident_id, action.router, result.summary()))
        return [ReleaseDone(action.incident_id, action.router, utcnow(), clean=result.clean or result.nothing_armed,
                            summary=result.summary())]

    # -- the bundle ---------------------------------------------------------------------------

    def seal(self, close: Close, *, trigger_lines: tuple[str, ...], secrets: tuple[str, ...],
             diagnose) -> Path | None:
        """Write the incident's bundle (a capture happened), then drop its staging folder."""
        context = self.context(close.incident_id)
        if close.state is not IncidentState.CAPTURED or context.captured_at is None:
            self.forget(close.incident_id)
            return None
        incomplete = [f"{c.router}: {c.error}" for c in context.captures if c.error]
        incomplete += [f"{r.router}: {r.summary()}" for r in context.releases if not (r.clean or r.nothing_armed)]
        result = CaptureResult(
            incident_id=close.incident_id, flow=context.flow, trigger_lines=trigger_lines, captures=context.captures,
            armed_at=context.armed_at, captured_at=context.captured_at,
            armed_before_repeat=context.armed_before_repeat and context.armed_at is not None,
            sender=context.sender, notes=tuple(context.notes),
            actions=tuple(change.to_json() for r in context.releases for change in r.changes),
            disarm={r.router: r.summary() for r in context.releases}, incomplete=tuple(incomplete),
            pre_arm=tuple(context.pre_arm.values()))
        bundle = write_incident_bundle(result, self.bundle_root, secrets=secrets, report=diagnose(result),
                                       html=render_capture_html(result))
        self.forget(close.incident_id)
        return bundle

    # -- contexts ------------------------------------------------------------------------------

    def context(self, incident_id: str) -> IncidentContext:
        """The incident's context, from memory or from its staging folder (an earlier run)."""
        context = self._contexts.get(incident_id)
        if context is None:
            context = self._load(incident_id)
            self._contexts[incident_id] = context
        return context

    def forget(self, incident_id: str) -> None:
        self._contexts.pop(incident_id, None)
        shutil.rmtree(self._staging(incident_id), ignore_errors=True)

    def _staging(self, incident_id: str) -> Path:
        return self.bundle_root / ".staging" / incident_id

    def _save(self, context: IncidentContext) -> None:
        if self.dry_run:
            return
        folder = self._staging(context.incident_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {"flow": context.flow.key(), "receiver": context.receiver, "sender": context.sender,
                "sender_peer": context.sender_peer, "notes": context.notes,
                "armed_at": context.armed_at.isoformat() if context.armed_at else None,
                "pre_arm": {name: {"read_at": s.read_at.isoformat(), "file": f"{name}.pre-arm.log"}
                            for name, s in context.pre_arm.items()}}
        for name, snapshot in context.pre_arm.items():
            _write_private(folder / f"{name}.pre-arm.log", snapshot.text)
        _write_private(folder / "context.json", json.dumps(data))

    def _load(self, incident_id: str) -> IncidentContext:
        record = self.store.incident(incident_id)
        folder = self._staging(incident_id)
        try:
            data = json.loads((folder / "context.json").read_text())
        except (OSError, ValueError):
            data = {}
        if record is not None:
            flow = decode_key(record.key)
            others = [r for r in record.routers if r != flow.router]
            context = IncidentContext(incident_id, flow, flow.router, others[0] if others else None)
            context.armed_at = record.armed_at
        else:
            raise KeyError(f"incident {incident_id} is unknown to the state store")
        context.sender_peer = data.get("sender_peer")
        context.notes = list(data.get("notes", []))
        for name, item in data.get("pre_arm", {}).items():
            try:
                text = (folder / item["file"]).read_text()
            except (OSError, KeyError):
                continue
            context.pre_arm[name] = LogSnapshot(name, text, datetime.fromisoformat(item["read_at"]))
        return context


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(text)
