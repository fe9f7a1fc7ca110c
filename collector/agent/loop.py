"""The agent: read, decide, act, in one loop that owns the decision state.

    readers (reader.py: polls, syslog confirmations, QFP) ──► inbox ──► decide() ──► actions
    router work (dispatch.py, worker.py)                  ──► inbox        │
                                                                           ├─ record: records.py
                                                                           └─ router work: dispatch.py

Only the loop thread touches the decision state: `Agent.process`, one event at a time
(`run_until_idle` for a cron pass and the tests, `serve` for the daemon), and, before the
loop runs, start-up's adoption of what an earlier run left open (startup.py). Every other
thread only puts events in the inbox. Actions are recorded before the router work they
describe is started (an incident exists in the store before its first arm step), and
router work reports back only through the inbox.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from collector.agent.confirming import SyslogConfirmations
from collector.agent.dispatch import RouterWork, joined_routers, routers_of
from collector.agent.reader import LogReader
from collector.agent.records import IncidentRecorder
from collector.agent.startup import StartUp
from collector.agent.tracker_writes import TrackerWrites
from collector.agent.worker import Worker
from collector.core.decide import (
    Arm,
    Armed,
    Capture,
    Close,
    CoreState,
    Count,
    Event,
    LineSeen,
    MarkArmedLate,
    Release,
    Rules,
    Skip,
    Stop,
    Tick,
    decide,
)
from collector.core.observers import AgentEvents, FanOut
from collector.core.states import IncidentState
from collector.errors import StateStoreError
from collector.inventory import Host, Inventory
from collector.parsing import TemplateRegistry
from collector.playbook import Playbook
from collector.respond.responder import Responder
from collector.sessions import SessionError, SessionSource
from collector.state import StateStore
from collector.timeutil import utcnow

log = logging.getLogger(__name__)

EVENT_RETENTION_DAYS = 30  # events older than this are pruned (bundles keep the evidence)


def rules_of(playbook: Playbook) -> Rules:
    guards = playbook.guards
    return Rules(occurs=playbook.occurs, within=playbook.within, arm_window=playbook.arm_window,
                 max_window=playbook.max_window, cooldown_flow=playbook.cooldown.flow,
                 cooldown_pair=playbook.cooldown.pair, max_armed_routers=guards.max_armed_routers,
                 arm_unknown_sources=guards.arm_unknown_sources)


UNKNOWN_SOURCE_QUIET = timedelta(minutes=10)  # at most one printed line from unknown sources per this


class _Printer:
    """Observer that turns problems into the `report` callback's lines (CLI, demo).

    Lines from unknown sources are printed at most once per UNKNOWN_SOURCE_QUIET, with a
    count of those held back: internet scanners hit every public address, and a large
    fleet would otherwise print thousands of them (`collector incidents` lists them all).
    A poll failure a router repeats word for word (a full disk, at every poll) is printed
    again only after the same quiet time, with how often it came meanwhile."""

    def __init__(self, report):
        self.report = report
        self._unknown_printed_at: datetime | None = None
        self._unknown_held: list[str] = []  # routers of the lines held back since the last print
        self._problems: dict[tuple[str, str], tuple[datetime, int]] = {}  # (router, text) -> printed at, held since

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def problem(self, router, message) -> None:
        self.report(f"{router}: {message}" if router else message)

    def poll_failed(self, router, message) -> None:
        now, key = utcnow(), (router, message)
        printed = self._problems.get(key)
        if printed is not None and now - printed[0] < UNKNOWN_SOURCE_QUIET:
            self._problems[key] = (printed[0], printed[1] + 1)
            return
        again = f" (said {printed[1]} more times since {printed[0]:%H:%M:%S} UTC)" if printed and printed[1] else ""
        if len(self._problems) > 10_000:  # texts with counts in them differ each time: keep only the recent
            self._problems = {k: v for k, v in self._problems.items() if now - v[0] < UNKNOWN_SOURCE_QUIET}
        self._problems[key] = (now, 0)
        self.report(f"{router}: {message}{again}")

    def unknown_source(self, router, message) -> None:
        now = utcnow()
        last = self._unknown_printed_at
        if last is not None and now - last < UNKNOWN_SOURCE_QUIET:
            self._unknown_held.append(router)
            return
        held, self._unknown_held, self._unknown_printed_at = self._unknown_held, [], now
        if last is None:
            after = (f" (lines from unknown sources are printed at most once every "
                     f"{int(UNKNOWN_SOURCE_QUIET.total_seconds() // 60)} minutes; `collector incidents` lists them all)")
        elif held:
            after = (f" (and {len(held)} more from unknown sources on {len(set(held))} router(s) since "
                     f"{last:%H:%M:%S} UTC, not printed)")
        else:
            after = ""
        self.report(f"{router}: {message}{after}")

    def armed(self, incident_id, results, seconds) -> None:
        # The tool has just changed production routers: the operator hears of it at once,
        # not only when a bundle is sealed (a `--once` run may end with routers armed).
        armed = [r.router for r in results if r.armed]
        if armed:
            self.report(f"incident {incident_id}: debugs armed on {', '.join(armed)}; waiting for a repeat")



def keeps_session(agent: "Agent", router: str) -> bool:
    """The session pool's keep-open rule: routers held for an incident, and those that
    may be armed any moment (`collector.agent.warm`)."""
    return agent.holds(router) or agent.reader.wants.wanted(router)

class Agent(SyslogConfirmations):
    """One watch agent over one inventory and one playbook: the loop that decides and acts.

    Parts: `reader` (logs into events), `work` (router work in turn), `worker` (the router
    work), `recorder` (the store's side of each action), `startup` (what an earlier run
    left); syslog lines are confirmed over SSH by its `SyslogConfirmations` part.
    Scale-out replaces `reader`, `responder` and `worker` after the agent is built
    (`attach_remote`), so they are looked up at each use.

    Threads: the loop thread (`run_until_idle`, `serve`, and the start-up and stop calls
    that drive them) owns `self.core`, the decision state, and is the only caller of
    `decide`. Poll and confirm threads (`_polls`, `_confirms`, `_confirms_later`) and the work
    threads of `work` (both ends of an incident in parallel through `_ends`) only put events
    in `self.inbox`; readying threads (`_readies`) only open sessions and read facts.
    `work.idle()` tells `run_until_idle` when a cron pass is done. The state store is thread-safe; the
    session source serialises each router. `bundles` and `closed` are appended to by work
    threads and read once the loop is idle.

    Invariant: every router that an Arm touched is released by a later Release of the
    same incident (or of the incident it was handed over to), because the core ends every
    incident through `_end`; a crash leaves the steps in the store, and the next start
    undoes them (`sweep_orphans`) or adopts the incident (`resume`). Router work that
    raises is answered all the same (`_failure_answer`), so no incident waits for ever."""

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
        self._polls = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="poll")
        self.start_confirmations(workers)
        self._ends = ThreadPoolExecutor(max_workers=2 * max(2, workers), thread_name_prefix="end")
        self.work = RouterWork(self.inbox, workers=max(2, workers))
        self.reader = LogReader(inventory, playbook, store, sessions, registry, self.observers)
        self.responder = Responder(playbook=playbook, store=store, sessions=sessions, registry=registry)
        self.worker = Worker(inventory=inventory, playbook=playbook, store=store, responder=self.responder,
                             reader=self.reader, bundle_root=bundle_root, ends=self._ends, dry_run=dry_run,
                             report=self.report, observers=self.observers, post=self.inbox.put,
                             share_turn=self.work.share_turn, each_in_turn=self.work.each_in_turn,
                             yield_to_arms=self.work.yield_to_arms)
        self.recorder = IncidentRecorder(store=store, playbook=playbook, observers=self.observers, dry_run=dry_run)
        self.startup = StartUp(self)
        self.bundles: list[Path] = []
        self.unreadable: dict[str, str] = {}  # router -> why its last read failed
        self.closed: dict[str, IncidentState] = {}  # incidents this run ended, and how
        self.tracker_writes = TrackerWrites(lambda since: None if dry_run else
                                            store.save_tracker(playbook.name, self.core.tracker.snapshot(), since))

    # -- the loop ---------------------------------------------------------------------

    def process(self, event: Event) -> None:
        """Decide on one event and act on what it asks (loop thread only)."""
        for action in decide(self.core, event):
            self.act(action)
        if isinstance(event, (LineSeen, Tick)):
            self.observers.flows_tracked(self.core.tracker.open_count())
            self.tracker_writes.changed()

    def run_until_idle(self, timeout: float | None = None) -> None:
        """Process the inbox until it is empty and no router work is in flight."""
        while True:
            if self.inbox.empty():  # nothing left to process: the lines counted meanwhile are written
                self.recorder.flush()
            try:
                event = self.inbox.get(timeout=0.05)
            except queue.Empty:
                self.tracker_writes.flush()
                if self.work.idle():
                    return
                continue
            self.process(event)

    def serve(self, stop: threading.Event) -> None:
        """The daemon's loop: until `stop` is set."""
        while not stop.is_set():
            if self.inbox.empty():  # as in run_until_idle
                self.recorder.flush()
            try:
                event = self.inbox.get(timeout=0.2)
            except queue.Empty:
                self.tracker_writes.flush()
                continue
            self.process(event)
        self.recorder.flush()
        self.tracker_writes.flush()

    def submit(self, event: Event) -> None:
        self.inbox.put(event)

    # -- acting -------------------------------------------------------------------------

    def act(self, action) -> None:
        """Record one action of the core and start the router work it asks for (loop thread)."""
        if isinstance(action, Count):
            self.recorder.line(action)
        elif isinstance(action, Skip):
            self.recorder.skip(action)
        elif isinstance(action, MarkArmedLate):
            self.recorder.armed_late(action)
        elif isinstance(action, Arm):
            if self.recorder.opened(action, self.core.incidents[action.incident_id]):
                self._work(self.worker.arm, action)
            else:  # an incident the store cannot record could not record its steps either
                self.submit(self.recorder.not_opened(action))
        elif isinstance(action, Armed):
            self.recorder.armed(action)
        elif isinstance(action, Capture):
            self.recorder.capturing(action)
            self._work(self.worker.capture, action)
        elif isinstance(action, Release):
            self._work(self.worker.release, action)
        elif isinstance(action, Close):
            self._work(self._close, action)

    def _work(self, fn, action) -> None:
        routers = routers_of(action)
        if isinstance(action, Capture) and action.incident_id in self.core.incidents:
            routers = tuple(self.core.incidents[action.incident_id].routers)
        self.work.submit(fn, action, routers, joined_routers(action))

    def _close(self, close: Close) -> list[Event]:
        """Seal the bundle (when there was a capture), then record the end (worker thread)."""
        trigger = self.recorder.trigger_lines(close.incident_id)
        try:
            context = self.worker.context(close.incident_id)
            releases, opened = list(context.releases), context.armed_at
        except KeyError:
            releases, opened = [], None
        bundle = self.worker.seal(close, trigger_lines=trigger, secrets=tuple(self.inventory.secret_values()),
                                  diagnose=_diagnose)
        since = (utcnow() - opened).total_seconds() if opened else 0.0
        reason = self.recorder.ended(close, bundle, releases, since)
        self.closed[close.incident_id] = close.state
        if bundle is not None:
            self.bundles.append(bundle)
            self.report(f"captured incident {close.incident_id}: bundle {bundle}")
        else:
            self.report(f"incident {close.incident_id} ended {close.state.value}: {reason}")
        return []

    # -- sources -------------------------------------------------------------------------

    def poll_all(self, hosts: list[Host] | None = None) -> int:
        """One log poll over the fleet (poll threads); returns how many new lines it found."""
        hosts = hosts if hosts is not None else list(self.inventory.hosts.values())
        futures = {self._polls.submit(self._poll_after_arms, h): h for h in hosts}
        found: list[LineSeen] = []
        for future, host in futures.items():
            try:
                found += future.result()[0]
                self.unreadable.pop(host.name, None)
            except (SessionError, StateStoreError) as exc:  # a store refusing writes: said, read again next poll
                reason = exc.reason if isinstance(exc, SessionError) else f"the state store refused it: {exc}"
                self.unreadable[host.name] = reason
                self.observers.poll_failed(host.name, f"log poll failed: {reason}")
        for line in found:
            self.submit(line)
        return len(found)

    def _poll_after_arms(self, host: Host) -> tuple[list[LineSeen], int]:
        """A poll's read of one router, once no arming is under way (at most ARMS_FIRST_S
        later): on 2 cores, 20 poll threads reading whole buffers slowed the armings that
        met a backstop poll (median 1.75 s from the line to armed, 0.99 s when idle)."""
        return self.work.after_arms(self.reader.poll, host)

    def poll_qfp(self) -> None:
        """IOS-XE drop counters: growth means an immediate log read of that router."""
        for host in [h for h in self.inventory.hosts.values() if h.platform == "cisco_xe"]:
            try:
                grown = self.reader.qfp_growth(host)
                if grown is None:
                    continue
                lines, _n = self.reader.poll(host)
            except SessionError as exc:
                self.observers.poll_failed(host.name, f"QFP poll failed: {exc.reason}")
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

    def tick(self) -> None:
        self.submit(Tick(utcnow()))

    def prune(self) -> int:
        return self.store.prune_events(utcnow() - timedelta(days=EVENT_RETENTION_DAYS))

    # -- start and stop ---------------------------------------------------------------------

    def resume(self) -> list[str]:
        """Adopt incidents an earlier run left open (cron: an incident spans runs), capture
        again what was being captured, and undo steps of incidents nobody holds any more."""
        return self.startup.resume()

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
        return self.startup.verdicts(incidents)

    def sweep_orphans(self) -> list[str]:
        """Undo steps recorded for incidents that are not open (a crash, a disarm that could
        not reach its router). Steps of open incidents are left alone."""
        return self.startup.sweep_orphans()

    def stop(self, reason: str = "agent stopped") -> None:
        """End every open incident (disarming its routers) and wait for it (loop thread)."""
        self.process(Stop(utcnow(), reason))
        self.run_until_idle()

    def holds(self, router: str) -> bool:
        """`router` is armed or being armed for an open incident (any thread: reads a copy)."""
        return any(router in incident.routers for incident in list(self.core.incidents.values()))

    def close(self) -> None:
        self.write_hint_events()
        self.recorder.flush()
        self.tracker_writes.flush()
        self.startup.write_held(self.report)
        self._polls.shutdown(wait=True)
        self.finish_confirmations()
        self.work.shutdown()
        self._ends.shutdown(wait=True)


def _diagnose(result):
    """report.md, report.json and report.html of a capture, from one diagnosis (never raises)."""
    from collector.diagnose.report_html import capture_reports
    return capture_reports(result)
