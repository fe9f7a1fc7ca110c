"""The trigger agent: sources -> tracker -> incident -> responder -> bundle.

One `Agent` serves both modes. `run_once()` is a cron pass: reconcile, poll every router,
handle what it found, expire windows, persist. `run_daemon()` schedules the same pieces
with APScheduler and adds the syslog receiver. The tracker and the incident table are
owned by the agent under one lock; router work (arming, capturing, disarming) runs in a
worker pool so a slow router never stalls the polls.

Incident life cycle (note 116005: debugs must already run when the fault repeats):
    first line of a flow  -> arm both ends (receiver conditioned on srcaddr, sender on destaddr)
    the N-th line in T     -> capture both ends, disarm both, verify, bundle, diagnose
    window ends below N    -> disarm both, record as a rekey transient
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from collector.bundle import slug
from collector.detect.cursor import LogCursor, fingerprint, new_lines
from collector.detect.events import Flow, InvalidSpiEvent
from collector.detect.logline import parse_invalid_spi, parse_syslog_datagram
from collector.detect.syslog_receiver import SyslogHint
from collector.detect.tracker import Decision, FlowTracker, encode_key, decode_key
from collector.inventory import Host, Inventory
from collector.parsing import TemplateRegistry
from collector.playbook import Playbook
from collector.respond.evidence import CaptureResult, write_incident_bundle
from collector.respond.plan import PlanError, render_dry_run
from collector.respond.responder import Responder, utcnow
from collector.respond.facts import interface_addresses, parse_logging_settings
from collector.sessions import SessionError, SessionPool
from collector.state import EventRecord, IncidentRecord, LogCursorRecord, StateStore

log = logging.getLogger(__name__)

_QFP_NAMES = ("IN_US_V4_PKT_SA_NOT_FOUND_SPI", "IN_US_V6_PKT_SA_NOT_FOUND_SPI", "IpsecInput")
ADDRESS_REFRESH = timedelta(hours=1)  # how long addresses learnt from `show ip interface brief` are trusted
EVENT_RETENTION = timedelta(days=30)  # events older than this are pruned (bundles keep the evidence)
SYSLOG_CONFIRM_INTERVAL = 5.0  # seconds between syslog-triggered SSH log reads of one router


class AgentBusy(Exception):
    """Another agent (daemon or cron run) holds the state folder's lock."""


@dataclass
class ActiveIncident:
    incident_id: str
    flow: Flow
    receiver: Host
    sender: Host | None
    armed_at: datetime | None
    trigger_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    joined: set[str] = field(default_factory=set)  # routers another incident had armed already
    released: set[str] = field(default_factory=set)  # routers this incident has disarmed or handed over

    @property
    def routers(self) -> list[str]:
        return [self.receiver.name] + ([self.sender.name] if self.sender else [])

    @property
    def pair(self) -> frozenset[str]:
        return frozenset(self.routers)


class StateLock:
    """An exclusive lock file in the state folder; held for the agent's whole run."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "agent.lock"
        self._fd: int | None = None

    def __enter__(self) -> "StateLock":
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AgentBusy(f"another collector watch holds {self.path} (pid {holder}); not starting") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Agent:
    def __init__(self, inventory: Inventory, playbook: Playbook, store: StateStore, *, pool: SessionPool,
                 registry: TemplateRegistry, bundle_root: Path, dry_run: bool = False, workers: int = 20,
                 report: callable | None = None):
        self.inventory = inventory
        self.playbook = playbook
        self.store = store
        self.pool = pool
        self.registry = registry
        self.bundle_root = bundle_root
        self.dry_run = dry_run
        self.report = report or (lambda message: log.warning("%s", message))
        self.responder = Responder(playbook=playbook, store=store, sessions=pool, registry=registry)
        self.tracker = FlowTracker(playbook.occurs, playbook.within, playbook.cooldown.flow, playbook.cooldown.pair)
        snapshot = store.load_tracker(playbook.name)
        if snapshot is not None:
            self.tracker.restore(snapshot)
        self._lock = threading.RLock()
        self._active: dict[Flow, ActiveIncident] = {}
        self._router_locks: dict[str, threading.Lock] = {}
        # Long-lived pools: a thread per call would open a new state-store connection per
        # thread (the store keeps one per thread until it is closed), so a daemon polling
        # every minute would grow without bound.
        self._workers = ThreadPoolExecutor(max_workers=max(2, workers), thread_name_prefix="respond")
        self._poll_pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="poll")
        self._ends_pool = ThreadPoolExecutor(max_workers=2 * max(2, workers), thread_name_prefix="end")
        self._pending: list[Future] = []
        self._confirm_after: dict[str, float] = {}  # router -> monotonic time its next syslog confirmation may run
        self._confirm_due: set[str] = set()  # routers with hints waiting for that time
        self.bundles: list[Path] = []

    # -- sources ------------------------------------------------------------------------

    def poll_router(self, host: Host) -> list[InvalidSpiEvent]:
        """Read the router's log; new invalid-SPI lines become events (recorded, returned)."""
        with self.pool.session(host) as session:
            output = session.run(self.playbook.sources.poll.command, read_timeout=max(host.options.read_timeout, 120.0))
            if self._addresses_stale(host.name):  # so a flow's sender is found beyond inventory `addresses`
                brief = session.run("show ip interface brief").text
                self.store.save_addresses(host.name, interface_addresses(self.registry, host.platform, brief), utcnow())
        received = utcnow()
        lines = [line for line in output.text.splitlines() if "RECVD_PKT_INV_SPI" in line]
        record = self.store.log_cursor(host.name)
        cursor = LogCursor.from_text(record.fingerprints if record else None)
        fresh, cursor = new_lines(cursor, lines)
        settings_size = None
        if "Log Buffer (" in output.text:
            try:
                settings_size = parse_logging_settings(output.text[:4000]).buffered_size
            except PlanError:
                settings_size = None
        events = []
        for line in fresh:
            event = parse_invalid_spi(line, router=host.name, source="poll", received_at=received, year=received.year)
            if event is not None:
                events.append(event)
        self.store.record_events([EventRecord.from_invalid_spi(e, self._event_id(e)) for e in events])
        self.store.save_log_cursor(LogCursorRecord(
            router=host.name, fingerprints=cursor.to_text(),
            last_seq=events[-1].seq if events else None,
            last_device_time=None, last_line_hash=fingerprint(lines[-1]) if lines else None,
            buffer_size=settings_size, messages_logged=None, read_at=received))
        return events

    def _addresses_stale(self, router: str) -> bool:
        known = self.store.addresses(router)
        return not known or utcnow() - min(a.seen_at for a in known) > ADDRESS_REFRESH

    @staticmethod
    def _event_id(event: InvalidSpiEvent) -> str:
        return f"{event.flow.router}|{fingerprint(event.raw)}"

    def poll_all(self, hosts: list[Host] | None = None) -> int:
        """One log poll over the fleet; returns how many new events it handled."""
        hosts = hosts if hosts is not None else list(self.inventory.hosts.values())
        found: list[InvalidSpiEvent] = []
        futures = {self._poll_pool.submit(self.poll_router, h): h for h in hosts}
        for future, host in futures.items():
            try:
                found += future.result()
            except SessionError as exc:
                self.report(f"{host.name}: log poll failed: {exc.reason}")
        found.sort(key=lambda e: (e.device_time or e.received_at.replace(tzinfo=None), e.flow.router))
        for event in found:
            self.handle(event)
        return len(found)

    def poll_qfp(self, hosts: list[Host] | None = None) -> None:
        """IOS-XE drop counters: growth raises a suspicion and an immediate log read."""
        hosts = hosts if hosts is not None else [h for h in self.inventory.hosts.values() if h.platform == "cisco_xe"]
        for host in hosts:
            try:
                counters = self._read_qfp(host)
            except SessionError as exc:
                self.report(f"{host.name}: QFP poll failed: {exc.reason}")
                continue
            now = utcnow()
            before = self.store.qfp_counters(host.name)
            self.store.save_qfp_counters(host.name, counters, now)
            if before is None:
                continue
            grown = {k: v - before.counters.get(k, 0) for k, v in counters.items() if v > before.counters.get(k, 0)}
            if not grown:
                continue
            text = ", ".join(f"{k} +{v}" for k, v in grown.items())
            self.store.record_event(EventRecord(event_id=f"{host.name}|qfp|{now.isoformat()}", router=host.name, key="",
                                                source="qfp", raw=text, device_time=None, received_at=now))
            events = self.poll_router(host)
            for event in events:
                self.handle(event)
            logged = [e for e in self.store.events(router=host.name, since=now - self.playbook.within)
                      if e.source == "poll"]
            if not logged:
                self.report(f"{host.name}: invalid-SPI drops in QFP counters ({text}) with no log line: "
                            "this image may not log RECVD_PKT_INV_SPI (ASR1000 before XE 2.3.2, NAT-T before CSCsq59183)")

    def _read_qfp(self, host: Host) -> dict[str, int]:
        counters: dict[str, int] = {}
        with self.pool.session(host) as session:
            for spec in self.playbook.sources.qfp.commands:
                text = session.run(spec.command).text
                for line in text.splitlines():
                    parts = line.split()
                    for name in _QFP_NAMES:
                        if name in parts:
                            numbers = [p for p in parts[parts.index(name) + 1:] if p.isdigit()]
                            if numbers:
                                counters[name] = int(numbers[0])
        return counters

    def on_syslog_hint(self, hint: SyslogHint) -> None:
        """A UDP line is only a hint: confirm it by reading that router's log over SSH."""
        line = parse_syslog_datagram(hint.data)
        if line is None:
            return
        now = utcnow()
        event = parse_invalid_spi(line.raw, router=hint.router, source="syslog", received_at=now, year=now.year)
        if event is None:
            return
        self.store.record_event(EventRecord.from_invalid_spi(event, f"syslog|{fingerprint(line.raw)}"))
        host = self.inventory.hosts.get(hint.router)
        if host is None or not self._claim_confirmation(host.name):
            return
        self._confirm(host)

    def _claim_confirmation(self, name: str) -> bool:
        """At most one SSH confirmation per router per SYSLOG_CONFIRM_INTERVAL: a burst or
        a flood of datagrams must not turn into a burst of log reads on the router.
        A hint inside the interval marks the router for `confirm_pending`."""
        now = time.monotonic()
        with self._lock:
            if now < self._confirm_after.get(name, 0.0):
                self._confirm_due.add(name)
                return False
            self._confirm_after[name] = now + SYSLOG_CONFIRM_INTERVAL
            self._confirm_due.discard(name)
            return True

    def _confirm(self, host: Host) -> None:
        try:
            for confirmed in self.poll_router(host):
                self.handle(confirmed)
        except SessionError as exc:
            self.report(f"{host.name}: could not confirm a syslog line over SSH: {exc.reason}")

    def confirm_pending(self) -> None:
        """Read the routers whose syslog hints arrived while their last confirmation was fresh."""
        now = time.monotonic()
        with self._lock:
            due = [name for name in self._confirm_due if now >= self._confirm_after.get(name, 0.0)]
        for name in due:
            host = self.inventory.hosts.get(name)
            if host is not None and self._claim_confirmation(name):
                self._confirm(host)

    # -- decisions ----------------------------------------------------------------------

    def handle(self, event: InvalidSpiEvent) -> Decision:
        flow = event.flow
        with self._lock:
            sender = self._resolve_sender(flow)
            pair = frozenset([flow.router] + ([sender.name] if sender else []))
            decision = self.tracker.observe(flow, event.received_at, self._event_id(event), pair)
            log.info("%s %s from %s: %s", flow.router, flow.spi_hex, flow.src, decision.value)
            incident = self._active.get(flow)
            if decision is Decision.FIRST:
                incident = self._open_incident(event, sender)
                if incident is not None:
                    self._submit(self._arm, incident)
            elif decision is Decision.REPEATED:
                if incident is None:  # first line missed (agent not running): aftermath only
                    incident = self._open_incident(event, sender, armed_late=True)
                    if incident is not None:
                        self._submit(self._arm_and_capture, incident)
                else:
                    incident.trigger_lines.append(event.raw)
                    self._submit(self._capture, incident)
            elif incident is not None and decision is Decision.COUNTED:
                incident.trigger_lines.append(event.raw)
            self._save_tracker()
            return decision

    def _resolve_sender(self, flow: Flow) -> Host | None:
        owner = self.inventory.owner_of(str(flow.src))
        if owner is None:
            names = self.store.routers_with_address(flow.src)
            owner = self.inventory.hosts.get(names[0]) if names else None
        return owner if owner is not None and owner.name != flow.router else None

    def _open_incident(self, event: InvalidSpiEvent, sender: Host | None, armed_late: bool = False) -> ActiveIncident | None:
        flow = event.flow
        receiver = self.inventory.hosts.get(flow.router)
        if receiver is None:
            return None
        incident = ActiveIncident(
            incident_id=f"{event.received_at:%Y%m%dT%H%M%S}{uuid.uuid4().hex[:6]}",
            flow=flow, receiver=receiver, sender=sender, armed_at=None, trigger_lines=[event.raw])
        if sender is None:
            incident.notes.append(f"srcaddr {flow.src} is not a router of the inventory: only the receiving end "
                                  f"({flow.router}) is captured")
        if armed_late:  # the earlier lines of the flow are in the state store: keep them as evidence
            earlier = [e.raw for e in self.store.events(key=encode_key(flow)) if e.source == "poll"]
            incident.trigger_lines = list(dict.fromkeys(earlier + [event.raw]))
            incident.notes.append("the first line of this flow was not seen by the agent: debugs were armed after "
                                  "the repeat, so the capture holds the aftermath, not the cause (note 116005)")
        busy = {name for other in self._active.values() for name in other.routers if name not in other.released}
        # A router already armed for another flow (a hub with several desynchronised
        # spokes) is joined: this flow only adds its own debug condition there.
        incident.joined = busy.intersection(incident.routers)
        armed_now = len(busy)
        cap = self.playbook.guards.max_armed_routers
        reason = None
        if armed_now + len(set(incident.routers) - busy) > cap:
            reason = f"armed-router cap reached ({armed_now} of {cap} armed)"
        state = "skipped" if reason else "armed"
        self.store.create_incident(incident.incident_id, encode_key(flow), self.playbook.name, state,
                                   routers=incident.routers, reason=reason or "")
        self.store.link_events(incident.incident_id, encode_key(flow), event.received_at - self.playbook.within)
        if reason:
            self.report(f"{flow.router} {flow.spi_hex}: not arming: {reason}")
            return None
        self._active[flow] = incident
        return incident

    def _submit(self, fn, incident: ActiveIncident) -> None:
        future = self._workers.submit(self._guarded, fn, incident)
        self._pending = [f for f in self._pending if not f.done()] + [future]

    def _guarded(self, fn, incident: ActiveIncident) -> None:
        try:
            with incident.lock:
                if not incident.closed:
                    fn(incident)
        except Exception:  # an unexpected error must still leave the routers disarmed
            log.exception("incident %s failed", incident.incident_id)
            with incident.lock:
                try:
                    self._disarm_incident(incident, "failed", "internal error; see the agent log")
                except Exception:  # the retry job and the dead-man applet remain
                    log.exception("incident %s: disarm after the error failed too", incident.incident_id)
                    self._close(incident, "failed", "internal error; disarm left to the retry and the dead-man applet")

    def _ends(self, incident: ActiveIncident) -> list[tuple[Host, object, str]]:
        flow = incident.flow
        ends = [(incident.receiver, flow.src, "receiver")]
        if incident.sender is not None:
            ends.append((incident.sender, flow.dst, "sender"))
        return ends

    # -- router work (worker threads, one incident at a time) ------------------------------

    def _arm(self, incident: ActiveIncident) -> None:
        window = self.playbook.arm_window
        if self.dry_run:
            plans = []
            for host, peer, _role in self._ends(incident):
                try:
                    plans.append(self.responder.plan_only(host, peer, incident.incident_id, window))
                except (SessionError, PlanError) as exc:
                    self.report(f"{host.name}: dry run could not plan: {exc}")
            self.report("dry run: nothing was changed on any router; this is what would run:\n" + render_dry_run(plans))
            return
        # both ends as close together as possible
        unread: list[InvalidSpiEvent] = []

        def arm(end):
            host, peer, _role = end
            if host.name in incident.joined:
                with self._lock:
                    holder = next((other.incident_id for other in self._active.values()
                                   if other is not incident and host.name in other.routers
                                   and host.name not in other.released), incident.incident_id)
                return self.responder.join(host, peer, incident.incident_id, window, holder_incident_id=holder)
            # Arming may resize the log buffer, which empties it on IOS: first take in the
            # lines of other flows that the last poll has not seen yet.
            try:
                unread.extend(self.poll_router(host))
            except SessionError as exc:
                log.warning("%s: log read before arming failed: %s", host.name, exc.reason)
            return self.responder.arm(host, peer, incident.incident_id, window)

        outcomes = list(self._ends_pool.map(arm, self._ends(incident)))
        incident.armed_at = utcnow()
        for event in unread:
            self.handle(event)
        for outcome in outcomes:
            if not outcome.armed:
                incident.notes.append(f"{outcome.router}: {outcome.error}")
                self.report(f"{outcome.router}: {outcome.error}")
        self.store.update_incident(incident.incident_id, reason="; ".join(incident.notes))

    def _arm_and_capture(self, incident: ActiveIncident) -> None:
        self._arm(incident)
        self._capture(incident, armed_before_repeat=False)

    def _capture(self, incident: ActiveIncident, armed_before_repeat: bool = True) -> None:
        if self.dry_run:
            self.report(f"dry run: would capture {', '.join(incident.routers)} now")
            self._close(incident, "skipped", "dry run")
            return
        self.store.update_incident(incident.incident_id, state="capturing")
        pool = self._ends_pool
        captures = tuple(pool.map(lambda end: self.responder.capture(end[0], end[1], end[2], incident.incident_id),
                                  self._ends(incident)))
        disarms = list(pool.map(lambda end: (end[0].name, self._release(incident, end)), self._ends(incident)))
        actions = [change.to_json() for _name, result in disarms for change in result.changes]
        verdicts = {name: result.summary() for name, result in disarms}
        incomplete = [f"{c.router}: {c.error}" for c in captures if c.error]
        incomplete += [f"{n}: {r.summary()}" for n, r in disarms if not (r.clean or r.nothing_armed) or r.error]
        result = CaptureResult(
            incident_id=incident.incident_id, flow=incident.flow, trigger_lines=tuple(incident.trigger_lines),
            captures=captures, armed_at=incident.armed_at, captured_at=utcnow(),
            armed_before_repeat=armed_before_repeat and incident.armed_at is not None, sender=incident.sender.name if incident.sender else None,
            notes=tuple(incident.notes), actions=tuple(actions), disarm=verdicts, incomplete=tuple(incomplete))
        bundle = write_incident_bundle(result, self.bundle_root, secrets=tuple(self.inventory.secret_values()),
                                       report=_diagnose(result))
        self.bundles.append(bundle)
        with self._lock:
            self.tracker.mark_captured(incident.flow, incident.pair, utcnow())
            self._save_tracker()
        self._close(incident, "captured", "; ".join(incomplete) or "complete", bundle)
        self.report(f"captured {incident.flow.router} {incident.flow.spi_hex} from {incident.flow.src}: bundle {bundle}")

    def _release(self, incident: ActiveIncident, end):
        """Disarm this incident on one router, or, when another active incident still
        needs the router, undo only this flow's own steps and hand the rest over to it.
        One router at a time, so two incidents ending together cannot both hand over."""
        host, peer, _role = end
        with self._router_lock(host.name):
            with self._lock:
                heir = next((other for other in self._active.values()
                             if other is not incident and not other.closed and host.name in other.routers
                             and host.name not in other.released), None)
            incident.released.add(host.name)
            if heir is None:
                return self.responder.disarm(host, incident.incident_id)
            return self.responder.hand_over(host, incident.incident_id, heir.incident_id)

    def _router_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._router_locks.setdefault(name, threading.Lock())

    def _disarm_incident(self, incident: ActiveIncident, state: str, reason: str) -> None:
        results = list(self._ends_pool.map(lambda end: (end[0].name, self._release(incident, end)),
                                           self._ends(incident)))
        verdicts = "; ".join(f"{name}: {result.summary()}" for name, result in results)
        self._close(incident, state, f"{reason}; {verdicts}")

    def _close(self, incident: ActiveIncident, state: str, reason: str, bundle: Path | None = None) -> None:
        incident.closed = True
        self.store.update_incident(incident.incident_id, state=state, reason=reason, bundle_path=bundle)
        with self._lock:
            self._active.pop(incident.flow, None)

    # -- time -----------------------------------------------------------------------------

    def expire(self) -> list[Flow]:
        """Windows that closed below N: rekey transients, disarmed."""
        now = utcnow()
        with self._lock:
            keys = self.tracker.expire(now)
            self._save_tracker()
            finished = [self._active.get(k) for k in keys]
        for incident in finished:
            if incident is not None:
                self._submit(lambda inc: self._disarm_incident(inc, "transient",
                             "seen once, not repeated within the window: rekey transient"), incident)
        with self._lock:  # hard stop: nothing stays armed past max_window
            overdue = [i for i in self._active.values()
                       if i.armed_at and now - i.armed_at > self.playbook.max_window]
        for incident in overdue:
            self._submit(lambda inc: self._disarm_incident(inc, "failed", "max_window reached"), incident)
        return [k for k in keys if isinstance(k, Flow)]

    def prune(self) -> int:
        """Keep the state store bounded: a syslog flood records thousands of events a second."""
        return self.store.prune_events(utcnow() - EVENT_RETENTION)

    def _save_tracker(self) -> None:
        self.store.save_tracker(self.playbook.name, self.tracker.snapshot())

    # -- start, stop ------------------------------------------------------------------------

    def resume(self) -> None:
        """Adopt incidents a previous run left armed (cron mode: windows span runs)."""
        for record in self.store.incidents(states=["armed", "capturing"]):
            incident = self._incident_from(record)
            if incident is not None:
                self._active[incident.flow] = incident

    def _incident_from(self, record: IncidentRecord) -> ActiveIncident | None:
        try:
            flow = decode_key(record.key)
        except ValueError:
            return None
        if not isinstance(flow, Flow) or flow.router not in self.inventory.hosts:
            return None
        names = [r for r in record.routers if r != flow.router]
        sender = self.inventory.hosts.get(names[0]) if names else None
        return ActiveIncident(record.incident_id, flow, self.inventory.hosts[flow.router], sender,
                              armed_at=record.created_at)

    def salvage_captures(self) -> list[str]:
        """Incidents a killed run left in `capturing`: the repeat was seen, the evidence was
        not yet on disk. While the routers are still armed their log buffers still hold
        the debug trail, so capture again before anything is disarmed. If the routers were
        already disarmed, the run died while writing the bundle: name what it left."""
        said = []
        for record in self.store.incidents(states=["capturing"]):
            incident = self._incident_from(record)
            still_armed = self.store.armed_steps(incident_id=record.incident_id)
            if incident is None or not still_armed:
                partial = self._unfinished_bundles(incident.flow) if incident is not None else []
                where = (f"; unfinished bundle kept at {', '.join(str(p) for p in partial)} (NOT complete)"
                         if partial else "")
                self.store.update_incident(record.incident_id, state="failed",
                                           reason=f"agent stopped while writing the bundle{where}")
                said.append(f"incident {record.incident_id}: agent stopped while writing its bundle{where}")
                continue
            since = record.created_at - self.playbook.within
            incident.trigger_lines = [e.raw for e in self.store.events(key=record.key)
                                      if e.source == "poll" and (e.incident_id == record.incident_id
                                                                 or (e.incident_id is None and e.received_at >= since))]
            incident.notes.append("the agent was stopped during this capture; it was captured again at the next "
                                  "start, before disarming")
            late = "not seen by the agent" in record.reason
            with incident.lock:
                self._capture(incident, armed_before_repeat=not late)
            done = self.store.incident(record.incident_id)
            said.append(f"incident {record.incident_id}: stopped during capture, captured again at start-up: "
                        f"{done.bundle_path if done else '?'}")
        return said

    def _unfinished_bundles(self, flow: Flow) -> list[Path]:
        if not self.bundle_root.is_dir():
            return []
        tail = f"_invalid-spi_{slug(flow.router, 40)}_{flow.spi_hex.lower()}."
        return sorted(p for p in self.bundle_root.glob(".*.partial") if tail in p.name)

    def retry_disarms(self) -> list[str]:
        """Undo steps of incidents that are no longer active: a crashed run, or a disarm that
        could not reach the router at the time. Steps of active incidents are left alone."""
        stale: dict[str, set[str]] = {}
        for step in self.store.armed_steps():  # read before the active set: see below
            stale.setdefault(step.router, set()).add(step.incident_id)
        with self._lock:  # an incident is active before its first step is recorded
            active = {incident.incident_id for incident in self._active.values()}
        cleaned = []
        for name, incident_ids in sorted(stale.items()):
            left = sorted(incident_ids - active)
            if not left:
                continue
            host = self.inventory.hosts.get(name)
            if host is None:
                cleaned.append(f"{name}: armed in state but not in the inventory; disarm it by hand")
                continue
            verdicts = [self.responder.disarm(host, incident_id).summary() for incident_id in left]
            cleaned.append(f"{name}: {'; '.join(dict.fromkeys(verdicts))}")
        return cleaned

    def reconcile(self) -> list[str]:
        """At daemon start: finish what a crashed or stopped run left, captures first, then
        disarm every router the state store says is armed."""
        cleaned = self.salvage_captures()
        cleaned += self.retry_disarms()
        for record in self.store.incidents(states=["armed", "capturing"]):
            self.store.update_incident(record.incident_id, state="failed", reason="agent restarted; disarmed at start-up")
        return cleaned

    def drain(self, timeout: float | None = None) -> None:
        """Wait for router work in flight."""
        wait(list(self._pending), timeout=timeout)

    def disarm_all(self, reason: str) -> None:
        with self._lock:
            active = list(self._active.values())
        for incident in active:
            with incident.lock:
                if not incident.closed:
                    self._disarm_incident(incident, "failed", reason)

    def close(self) -> None:
        self._workers.shutdown(wait=True)
        self._poll_pool.shutdown(wait=True)
        self._ends_pool.shutdown(wait=True)


def _diagnose(result: CaptureResult):
    try:
        from collector.diagnose.incident import diagnose_capture
    except ImportError:
        return None
    try:
        return diagnose_capture(result)
    except Exception:  # a report failure must not lose the capture
        log.exception("diagnosis failed for %s", result.incident_id)
        return None


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
