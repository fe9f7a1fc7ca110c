"""The agent: read, decide, act, in one loop that owns the decision state.

    readers (polls, syslog confirmations, QFP)  ──► inbox ──► decide() ──► actions
    worker threads (arm, capture, release, seal) ──► inbox        │
                                                                  ├─ record: store, observers (here)
                                                                  └─ router work: worker pool

Only `Agent.process` touches the decision state, one event at a time, in the thread that
runs the loop (`run_until_idle` for a cron pass and the tests, `serve` for the daemon).
Every other thread only puts events in the inbox. Actions are recorded before the
router work they describe is started (an incident exists in the store before its first
arm step), and router work reports back only through the inbox.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from collector.agent.reader import LogReader
from collector.bundle import recover_partial_bundles
from collector.agent.worker import Worker
from collector.core.decide import (
    Arm,
    Armed,
    Capture,
    Close,
    CoreState,
    Count,
    Event,
    Incident,
    LineSeen,
    MarkArmedLate,
    Phase,
    Release,
    Rules,
    Skip,
    Stop,
    Tick,
    decide,
)
from collector.core.observers import AgentEvents, FanOut
from collector.core.states import IncidentState
from collector.detect.tracker import decode_key, encode_key
from collector.inventory import Host, Inventory
from collector.parsing import TemplateRegistry
from collector.playbook import Playbook
from collector.respond.responder import Responder
from collector.sessions import SessionError, SessionSource
from collector.state import EventRecord, IncidentRecord, StateStore
from collector.timeutil import utcnow

log = logging.getLogger(__name__)

EVENT_RETENTION_DAYS = 30  # events older than this are pruned (bundles keep the evidence)


def rules_of(playbook: Playbook) -> Rules:
    guards = playbook.guards
    return Rules(occurs=playbook.occurs, within=playbook.within, arm_window=playbook.arm_window,
                 max_window=playbook.max_window, cooldown_flow=playbook.cooldown.flow,
                 cooldown_pair=playbook.cooldown.pair, max_armed_routers=guards.max_armed_routers,
                 arm_unknown_sources=guards.arm_unknown_sources)


class RouterTurns:
    """Router work runs in the order the core asked for it, router by router.

    The loop takes a ticket for each router an action touches when it submits the action;
    the worker thread waits until each of its tickets is the oldest of its router. An arm
    and a join of one hub, or a hand-over and the heir's disarm, never overlap or reorder.
    Tickets are taken in one global order, so no two actions can wait on each other."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[str, list[int]] = {}
        self._next = 0

    def take(self, routers) -> tuple[int, tuple[str, ...]]:
        with self._cond:
            self._next += 1
            names = tuple(sorted(set(routers)))
            for name in names:
                self._queues.setdefault(name, []).append(self._next)
            return self._next, names

    def wait(self, ticket: tuple[int, tuple[str, ...]]) -> None:
        number, names = ticket
        with self._cond:
            self._cond.wait_for(lambda: all(self._queues[n][0] == number for n in names))

    def done(self, ticket: tuple[int, tuple[str, ...]]) -> None:
        number, names = ticket
        with self._cond:
            for name in names:
                self._queues[name].remove(number)
                if not self._queues[name]:
                    del self._queues[name]
            self._cond.notify_all()


def _routers_of(action) -> tuple[str, ...]:
    """The routers an Arm or a Release touches (a Capture's come from its incident)."""
    if isinstance(action, Arm):
        return tuple(r for r in (action.receiver, action.sender) if r)
    if isinstance(action, Release):
        return (action.router,)
    return ()


class _Printer:
    """Observer that turns problems into the `report` callback's lines (CLI, demo)."""

    def __init__(self, report):
        self.report = report

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def problem(self, router, message) -> None:
        self.report(f"{router}: {message}" if router else message)


class Agent:
    """One watch agent over one inventory and one playbook.

    Threads: the loop thread owns `self.core` (the decision state); poll threads and
    worker threads only put events in `self.inbox`. `self.pending` counts router work in
    flight, so `run_until_idle` knows when a cron pass is done. The state store is shared
    (it is thread-safe); the session source serialises each router.

    Invariant: every router that an Arm touched is released by a later Release of the
    same incident (or of the incident it was handed over to), because the core ends every
    incident through `_end`; a crash leaves the steps in the store, and the next start
    undoes them (`sweep_orphans`) or adopts the incident (`resume`)."""

    def __init__(self, inventory: Inventory, playbook: Playbook, store: StateStore, *, sessions: SessionSource,
                 registry: TemplateRegistry, bundle_root: Path, dry_run: bool = False, workers: int = 20,
                 report=None, observers: AgentEvents | None = None):
        self.inventory = inventory
        self.playbook = playbook
        self.store = store
        self.bundle_root = bundle_root
        self.dry_run = dry_run
        self.report = report or (lambda message: log.warning("%s", message))
        self.observers = FanOut(_Printer(self.report), *([observers] if observers else []))
        self.core = CoreState.fresh(rules_of(playbook))
        snapshot = store.load_tracker(playbook.name)
        if snapshot is not None:
            self.core.tracker.restore(snapshot)
        self.inbox: queue.Queue[Event] = queue.Queue()
        self._pool = ThreadPoolExecutor(max_workers=max(2, workers), thread_name_prefix="work")
        self._polls = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="poll")
        self._ends = ThreadPoolExecutor(max_workers=2 * max(2, workers), thread_name_prefix="end")
        self._pending = 0
        self._pending_lock = threading.Condition()
        self._turns = RouterTurns()
        self.reader = LogReader(inventory, playbook, store, sessions, registry, self.observers)
        self.responder = Responder(playbook=playbook, store=store, sessions=sessions, registry=registry)
        self.worker = Worker(inventory=inventory, playbook=playbook, store=store, responder=self.responder,
                             reader=self.reader, bundle_root=bundle_root, ends=self._ends, dry_run=dry_run,
                             report=self.report, observers=self.observers)
        self.bundles: list[Path] = []
        self.unreadable: dict[str, str] = {}  # router -> why its last read failed
        self.closed: dict[str, IncidentState] = {}  # incidents this run ended, and how

    # -- the loop ---------------------------------------------------------------------

    def process(self, event: Event) -> None:
        """Decide on one event and act on what it asks (loop thread only)."""
        for action in decide(self.core, event):
            self._act(action)
        if isinstance(event, (LineSeen, Tick)):
            self.observers.flows_tracked(len(self.core.tracker.open_windows()))
            if not self.dry_run:
                self.store.save_tracker(self.playbook.name, self.core.tracker.snapshot())

    def run_until_idle(self, timeout: float | None = None) -> None:
        """Process the inbox until it is empty and no router work is in flight."""
        while True:
            try:
                event = self.inbox.get(timeout=0.05)
            except queue.Empty:
                with self._pending_lock:
                    if self._pending == 0 and self.inbox.empty():
                        return
                continue
            self.process(event)

    def serve(self, stop: threading.Event) -> None:
        """The daemon's loop: until `stop` is set."""
        while not stop.is_set():
            try:
                event = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            self.process(event)

    def submit(self, event: Event) -> None:
        self.inbox.put(event)

    # -- acting -------------------------------------------------------------------------

    def _act(self, action) -> None:
        if isinstance(action, Count):
            self._record_line(action)
        elif isinstance(action, Skip):
            self._record_skip(action)
        elif isinstance(action, MarkArmedLate):
            if not self.dry_run:
                self.store.update_incident(action.incident_id, armed_late=True)
        elif isinstance(action, Arm):
            self._open(action)
            self._work(self.worker.arm, action)
        elif isinstance(action, Armed):
            if not self.dry_run:
                record = self.store.incident(action.incident_id)
                notes = [n for n in ([record.reason] if record and record.reason else []) + list(action.notes) if n]
                self.store.update_incident(action.incident_id, armed_at=action.at, reason="; ".join(notes))
        elif isinstance(action, Capture):
            self.store.update_incident(action.incident_id, state=IncidentState.CAPTURING)
            self._work(self.worker.capture, action)
        elif isinstance(action, Release):
            self._work(self.worker.release, action)
        elif isinstance(action, Close):
            self._work(self._close, action)

    def _work(self, fn, action) -> None:
        with self._pending_lock:
            self._pending += 1
        routers = _routers_of(action)
        if isinstance(action, Capture) and action.incident_id in self.core.incidents:
            routers = tuple(self.core.incidents[action.incident_id].routers)
        ticket = self._turns.take(routers)
        future = self._pool.submit(self._in_turn, ticket, fn, action)
        future.add_done_callback(lambda f, a=action: self._done(f, a))

    def _in_turn(self, ticket, fn, action):
        self._turns.wait(ticket)
        try:
            return fn(action)
        finally:
            self._turns.done(ticket)

    def _done(self, future: Future, action) -> None:
        try:
            for event in future.result() or ():
                self.inbox.put(event)
        except Exception as exc:  # the core waits for an answer: a crash in the worker is one too
            log.exception("router work %r failed", action)
            for event in _failure_answer(action, exc):
                self.inbox.put(event)
        finally:
            with self._pending_lock:
                self._pending -= 1

    def _open(self, action: Arm) -> None:
        routers = [action.receiver] + ([action.sender] if action.sender else [])
        incident = self.core.incidents[action.incident_id]
        self.store.create_incident(action.incident_id, encode_key(action.flow), self.playbook.name,
                                   IncidentState.ARMED, routers=routers, reason="; ".join(action.notes),
                                   at=incident.opened_at, armed_late=incident.repeated_before_arming)
        self.store.link_events(action.incident_id, encode_key(action.flow), incident.opened_at - self.playbook.within)
        self.observers.incident_opened(action.incident_id, action.receiver, action.flow.key(),
                                       state=IncidentState.ARMED)

    def _record_line(self, count: Count) -> None:
        received = utcnow()
        self.store.record_event(EventRecord(event_id=count.event_id, router=count.flow.router,
                                            key=encode_key(count.flow), source="poll", raw=count.raw,
                                            device_time=None, received_at=received, incident_id=count.incident_id))

    def _record_skip(self, skip: Skip) -> None:
        flow = skip.flow
        if skip.unknown_source:
            self.store.note_unknown_source(flow.router, str(flow.src), skip.reason, utcnow())
        if skip.record:
            incident_id = f"{utcnow():%Y%m%dT%H%M%S}-skip-{abs(hash((flow, skip.reason))) % 10**6:06d}"
            self.store.create_incident(incident_id, encode_key(flow), self.playbook.name, IncidentState.SKIPPED,
                                       routers=[flow.router], reason=skip.reason)
        self.observers.problem(flow.router, f"{flow.spi_hex} from {flow.src}: not arming: {skip.reason}")

    def _close(self, close: Close) -> list[Event]:
        """Seal the bundle (when there was a capture), then record the end (worker thread)."""
        trigger = tuple(e.raw for e in self.store.events(key=self._key_of(close.incident_id))
                        if e.incident_id == close.incident_id and e.source == "poll")
        try:
            context = self.worker.context(close.incident_id)
            releases, opened = list(context.releases), context.armed_at
        except KeyError:
            releases, opened = [], None
        bundle = self.worker.seal(close, trigger_lines=trigger, secrets=tuple(self.inventory.secret_values()),
                                  diagnose=_diagnose)
        since = (utcnow() - opened).total_seconds() if opened else 0.0
        self.observers.disarmed(close.incident_id, releases, close.state, since)
        if bundle is not None:
            complete = json.loads((bundle / "manifest.json").read_text()).get("complete", False)
            self.observers.captured(close.incident_id, bundle, complete=complete, seconds=since)
        reason = close.reason
        if close.state is IncidentState.CAPTURED and bundle is None:
            reason = f"{reason}; the bundle could not be written"
        self.store.update_incident(close.incident_id, state=close.state, reason=reason, bundle_path=bundle)
        self.closed[close.incident_id] = close.state
        if bundle is not None:
            self.bundles.append(bundle)
            self.report(f"captured incident {close.incident_id}: bundle {bundle}")
        else:
            self.report(f"incident {close.incident_id} ended {close.state.value}: {reason}")
        return []

    def _key_of(self, incident_id: str) -> str | None:
        record = self.store.incident(incident_id)
        return record.key if record else None

    # -- sources -------------------------------------------------------------------------

    def poll_all(self, hosts: list[Host] | None = None) -> int:
        """One log poll over the fleet (poll threads); returns how many new lines it found."""
        hosts = hosts if hosts is not None else list(self.inventory.hosts.values())
        futures = {self._polls.submit(self.reader.poll, h): h for h in hosts}
        found: list[LineSeen] = []
        for future, host in futures.items():
            try:
                found += future.result()[0]
                self.unreadable.pop(host.name, None)
            except SessionError as exc:
                self.unreadable[host.name] = exc.reason
                self.observers.problem(host.name, f"log poll failed: {exc.reason}")
        for line in found:
            self.submit(line)
        return len(found)

    def poll_qfp(self) -> None:
        """IOS-XE drop counters: growth means an immediate log read of that router."""
        for host in [h for h in self.inventory.hosts.values() if h.platform == "cisco_xe"]:
            try:
                grown = self.reader.qfp_growth(host)
                if grown is None:
                    continue
                lines, _n = self.reader.poll(host)
            except SessionError as exc:
                self.observers.problem(host.name, f"QFP poll failed: {exc.reason}")
                continue
            for line in lines:
                self.submit(line)
            recent = [e for e in self.store.events(router=host.name, since=utcnow() - self.playbook.within)
                      if e.source == "poll"]
            if not lines and not recent:  # the log is rate-limited to a line a minute per flow
                self.observers.problem(host.name, f"invalid-SPI drops in QFP counters ({grown}) with no log line "
                                       f"within {int(self.playbook.within.total_seconds() // 60)} min: this image "
                                       "may not log RECVD_PKT_INV_SPI (ASR1000 before XE 2.3.2, NAT-T before "
                                       "CSCsq59183)")

    def on_syslog_hint(self, hint) -> None:
        host = self.reader.syslog_hint(hint)
        if host is not None:
            self._polls.submit(self._confirm, host)

    def confirm_pending(self) -> None:
        for host in self.reader.due_confirmations():
            self._confirm(host)

    def _confirm(self, host: Host) -> None:
        try:
            lines, _n = self.reader.poll(host)
        except SessionError as exc:
            self.observers.problem(host.name, f"could not confirm a syslog line over SSH: {exc.reason}")
            return
        for line in lines:
            self.submit(line)

    def tick(self) -> None:
        self.submit(Tick(utcnow()))

    def prune(self) -> int:
        from datetime import timedelta
        return self.store.prune_events(utcnow() - timedelta(days=EVENT_RETENTION_DAYS))

    # -- start and stop ---------------------------------------------------------------------

    def resume(self) -> list[str]:
        """Adopt incidents an earlier run left open (cron: an incident spans runs), capture
        again what was being captured, and undo steps of incidents nobody holds any more."""
        said = []
        for record in self.store.incidents(states=[IncidentState.ARMED, IncidentState.CAPTURING]):
            incident = self._incident_from(record)
            if incident is None or record.armed_at is None:
                reason = ("agent stopped while arming; disarmed at start-up" if incident is not None
                          else "its routers are no longer in the inventory")
                self.store.update_incident(record.incident_id, state=IncidentState.FAILED, reason=reason)
                said.append(f"incident {record.incident_id}: {reason}")
                continue
            self.core.adopt(incident)
            if incident.phase is Phase.CAPTURING:  # the repeat was seen; its bundle was not sealed
                armed = self.store.armed_steps(incident_id=record.incident_id)
                staged = self.worker.staged_captures(record.incident_id)
                if armed or staged:  # capture what is still armed, keep what the stopped run finished
                    self.worker.context(record.incident_id).resumed = True
                    self._act(Capture(record.incident_id, armed_before_repeat=not record.armed_late))
                    finished = {name for name, s in staged.items() if s.finished}
                    if finished >= set(record.routers):
                        self.worker.discard_stopped_bundle(record.incident_id)
                        said.append(f"incident {record.incident_id}: stopped before its bundle was sealed; "
                                    "sealed at start-up from the capture it had kept (NOT complete)")
                    else:
                        said.append(f"incident {record.incident_id}: stopped during capture, captured again at "
                                    "start-up")
                else:
                    incident.phase = Phase.ARMED
        said += self.sweep_orphans()
        said += recover_partial_bundles(self.bundle_root) if self.bundle_root.is_dir() else []
        return said

    def reconcile(self) -> list[str]:
        """At a daemon's start: adopt, then end every adopted incident (disarmed now), and
        say per router what its disarm found."""
        said = self.resume()
        adopted = set(self.core.incidents)
        self.process(Stop(utcnow(), "agent restarted; disarmed at start-up", state=IncidentState.FAILED))
        self.run_until_idle()
        return said + self.verdicts(adopted)

    def verdicts(self, incidents: set[str]) -> list[str]:
        """`router: verdict` for each router released for one of `incidents`."""
        return [f"{router}: {verdict}" for incident, router, verdict in self.worker.released if incident in incidents]

    def _incident_from(self, record: IncidentRecord) -> Incident | None:
        try:
            flow = decode_key(record.key)
        except ValueError:
            return None
        if flow.router not in self.inventory.hosts:
            return None
        others = [r for r in record.routers if r != flow.router]
        phase = Phase.CAPTURING if record.state is IncidentState.CAPTURING else Phase.ARMED
        return Incident(record.incident_id, flow, flow.router, others[0] if others else None, record.created_at,
                        phase=phase, routers=set(record.routers), armed_at=record.armed_at, mark=0,
                        lines_before_arming=2 if record.armed_late else 1,
                        repeated_before_arming=record.armed_late)

    def sweep_orphans(self) -> list[str]:
        """Undo steps recorded for incidents that are not open (a crash, a disarm that could
        not reach its router). Steps of open incidents are left alone."""
        stale: dict[str, set[str]] = {}
        for step in self.store.armed_steps():  # read before the open set: an incident is open first
            stale.setdefault(step.router, set()).add(step.incident_id)
        open_ids = set(self.core.incidents)
        said = []
        for name, incident_ids in sorted(stale.items()):
            left = sorted(incident_ids - open_ids)
            if not left:
                continue
            host = self.inventory.hosts.get(name)
            if host is None:
                said.append(f"{name}: armed in state but not in the inventory; disarm it by hand")
                continue
            results = [self.responder.disarm(host, incident_id) for incident_id in left]
            said.append(f"{name}: {'; '.join(dict.fromkeys(r.summary() for r in results))}")
        return said

    def stop(self, reason: str = "agent stopped") -> None:
        """End every open incident (disarming its routers) and wait for it (loop thread)."""
        self.process(Stop(utcnow(), reason))
        self.run_until_idle()

    def close(self) -> None:
        self._polls.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        self._ends.shutdown(wait=True)


def _failure_answer(action, exc: BaseException) -> list[Event]:
    """What the core is told when router work raised: an answer all the same, so the
    incident moves on (and its routers are released) instead of waiting for ever."""
    from collector.core.decide import ArmDone, CaptureDone, ReleaseDone
    now = utcnow()
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(action, Arm):
        return [ArmDone(action.incident_id, now, frozenset(), internal_error=what)]
    if isinstance(action, Capture):
        return [CaptureDone(action.incident_id, now, complete=False,
                            problem=f"internal error during the capture ({what}), see the agent log")]
    if isinstance(action, Release):
        return [ReleaseDone(action.incident_id, action.router, now, clean=False,
                            summary="internal error while disarming; the dead-man applet and the next start remain")]
    return []


def _diagnose(result):
    from collector.diagnose.incident import diagnose_capture
    try:
        return diagnose_capture(result)
    except Exception:  # a report failure must not lose the capture
        log.exception("diagnosis failed for %s", result.incident_id)
        return None
