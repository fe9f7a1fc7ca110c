"""Acting: the router work the decision core asks for, carried out and answered as events.

`Worker.arm`, `capture` and `release` each take one action, talk to routers through the
responder (the only code that changes a router), and return the events that report what
happened: `ArmDone`, `CaptureDone`, `ReleaseDone`, and any `LineSeen` read on the way
(arming reads the log first, because arming may empty it). The worker never calls the
decision code; the agent's loop feeds what it returns.

What an incident needs across actions (and across cron runs: arm in one process, capture
in the next) is kept in a staging folder beside the bundles (contexts.py: the incident's
ends, notes and pre-arm logs; staging.py: each capture output and disarm result as it
arrives). A run killed during a capture or before its bundle was sealed leaves them
there; the next run keeps every router's finished capture, captures again only the
others, and the bundle (sealing.py) is marked incomplete, saying what the kill cost.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address
from pathlib import Path

from collector.agent.arm_work import ArmWork
from collector.agent.contexts import IncidentContext, IncidentContexts
from collector.agent.batches import RouterBatches
from collector.agent.reader import LogReader
from collector.agent.sealing import BundleSealer
from collector.agent.staging import CaptureStage, StagedCapture
from collector.core.decide import Capture, CaptureDone, Close, Event, Release, ReleaseDone
from collector.core.observers import AgentEvents, NullEvents
from collector.core.results import DisarmResult
from collector.evidence import RouterCapture
from collector.inventory import Host, Inventory
from collector.playbook import Playbook
from collector.respond.responder import Responder
from collector.state import StateStore
from collector.timeutil import utcnow

log = logging.getLogger(__name__)


class Worker(ArmWork):
    """Carries out Arm, Capture and Release on routers, and answers each with events.

    Threads: each action runs in one of the agent's worker threads; both ends of an
    incident are worked on in parallel through `ends`. Only one action of an incident
    runs at a time (the core asks for the next only after the previous one answered), so
    an incident's context (`contexts`) has one user at a time and needs no lock. The
    agent's `RouterTurns` keeps two actions from working on one router at once.
    `released` is appended to from several threads (list.append is atomic) and read by
    the loop thread once the work is done.

    Invariants: the worker never calls the decision code: whatever it learns (lines read
    while arming, a failed end, a disarm's verdict) is returned as events for the loop.
    Routers are changed only through the responder. Each step's outcome is staged on disk
    as it arrives (not in a dry run), so a killed run's successor can finish the incident.
    Sealing the bundle (`seal`) is the `BundleSealer`'s; it touches no router."""

    def __init__(self, *, inventory: Inventory, playbook: Playbook, store: StateStore, responder: Responder,
                 reader: LogReader, bundle_root: Path, ends: ThreadPoolExecutor, dry_run: bool = False,
                 report=lambda message: None, observers: AgentEvents | None = None, post=None,
                 share_turn=dict, each_in_turn=iter, yield_to_arms=lambda timeout: True):
        self.inventory = inventory
        self.playbook = playbook
        self.store = store
        self.responder = responder
        self.reader = reader
        self.bundle_root = bundle_root
        self.ends = ends
        # incidents joining one router, and reading its log to mark them armed, at once
        self.joins = RouterBatches(lambda host, requests: self.responder.join_many(host, requests, playbook.arm_window,
                                                                                   log_later=True))
        self.marks = RouterBatches(self._mark_read)
        # the logs as they stood before arming, of incidents armed on one router at once: one read
        self.logs_before = RouterBatches(lambda host, counts: self.responder.logs_as_they_were(host, counts))
        self.dry_run = dry_run
        self.report = report
        self.observers = observers or NullEvents()
        self.post = post  # puts an event in the loop's inbox now (None: events are returned)
        self.share_turn = share_turn  # lets joins of the routers of the work in hand start beside its rest
        self.each_in_turn = each_in_turn  # an Arm's routers, each once it is the Arm's turn on it
        self.yield_to_arms = yield_to_arms  # until no other Arm is on its way to armed (`RouterWork.yield_to_arms`)
        self.contexts = IncidentContexts(inventory=inventory, store=store, bundle_root=bundle_root, dry_run=dry_run)
        self.sealer = BundleSealer(self.contexts, bundle_root)
        self.released: list[tuple[str, str, str]] = []  # (incident, router, verdict), for what the agent says

    # -- capture -------------------------------------------------------------------------

    def capture(self, action: Capture) -> list[Event]:
        context = self.context(action.incident_id)
        stage = self.contexts.stage(action.incident_id)
        before = stage.captures() if context.resumed else {}  # what a stopped run left on disk
        still_armed = {s.router for s in self.store.armed_steps(incident_id=action.incident_id)}
        ends = [(context.receiver, context.flow.src, "receiver")]
        if context.sender:
            ends.append((context.sender, ip_address(context.sender_peer or str(context.flow.dst)), "sender"))
        kept = [name for name, _peer, _role in ends if name in before and before[name].finished]

        def one(end) -> tuple[RouterCapture, bool]:  # (the capture, all of it is in the staging folder)
            name, peer, role = end
            if name in kept:  # finished before the stop, while its debugs were on: better than a new one
                return before[name].capture, True
            host = self.inventory.hosts.get(name)
            if host is None:
                return RouterCapture(name, role, "unknown", peer, (), None, error="not in the inventory any more"), False
            return self._capture_one(stage, host, peer, role, action.incident_id, before.get(name),
                                     armed=name in still_armed, context=context)

        context.captures = tuple(self.contexts.keep_on_disk(context, capture) if staged else capture
                                 for capture, staged in self.ends.map(one, ends))
        context.captured_at = utcnow()
        context.armed_before_repeat = action.armed_before_repeat
        if context.resumed:
            again = [name for name, _peer, _role in ends if name not in kept]
            if again:
                context.notes.append("the agent was stopped during this capture; it was captured again at the next "
                                     f"start ({', '.join(again)})"
                                     + (f"; the capture of {', '.join(kept)} had finished and is kept" if kept else ""))
            else:
                context.notes.append("the agent was stopped after this capture, before its bundle was sealed; the "
                                     "next start sealed it from the capture the stopped run had kept on disk")
            context.incomplete.insert(0, "the agent was stopped (killed, crashed or timed out) during this incident; "
                                         "the next start finished it")
            staged_at = self.contexts.staged_captured_at(action.incident_id)
            if not again and staged_at is not None:
                context.captured_at = staged_at  # the stopped run's bundle name: its unfinished folder is replaced
        self.contexts.save(context)
        problems = [f"{c.router}: {c.error}" for c in context.captures if c.error]
        return [CaptureDone(action.incident_id, context.captured_at, complete=not problems and not context.incomplete,
                            problem="; ".join(problems + context.incomplete) or None)]

    def _capture_one(self, stage: CaptureStage, host: Host, peer, role: str, incident_id: str,
                     earlier: StagedCapture | None, *, armed: bool,
                     context: IncidentContext) -> tuple[RouterCapture, bool]:
        """Capture one end, staging each output as it arrives; returns the capture and
        whether the staging folder holds all of it. After a stop, an end whose new capture
        fails keeps what the stopped run had got of it, and says what is missing."""
        stage.clear(host.name)
        staged: list[object] = []
        written = [True]

        def on_plan(commands) -> None:
            stage.plan(host.name, role, host.platform, str(peer), commands)

        def on_record(record) -> None:
            staged.append(record)
            written[0] = stage.record(record) and written[0]

        fresh = self.responder.capture(host, peer, role, incident_id, on_plan=on_plan, on_record=on_record)
        for record in fresh.commands[len(staged):]:  # a capture that did not report as it went (a site)
            written[0] = stage.record(record) and written[0]
        written[0] = stage.done(fresh) and written[0]
        if context.resumed and not armed:
            context.incomplete.append(f"{host.name}: captured again after its debugs had been removed: the debug "
                                      "trail after the stop is missing")
        if fresh.error and earlier is not None and earlier.capture.commands:
            missing = f"; not run before the stop: {', '.join(earlier.not_run)}" if earlier.not_run else ""
            context.incomplete.append(f"{host.name}: capturing it again failed ({fresh.error}); the bundle holds "
                                      f"what the stopped run had captured of it{missing}")
            return earlier.capture, False  # the new capture replaced it in the staging folder
        return fresh, written[0]

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
        if not self.dry_run:
            self.contexts.stage(action.incident_id).release(result)
        self.released.append((action.incident_id, action.router, result.summary()))
        return [ReleaseDone(action.incident_id, action.router, utcnow(), clean=result.clean or result.nothing_armed,
                            summary=result.summary())]

    # -- the incident's bundle and context (for the agent) -------------------------------------

    def seal(self, close: Close, *, trigger_lines: tuple[str, ...], secrets: tuple[str, ...],
             diagnose) -> Path | None:
        """Write the incident's bundle (a capture happened), then drop its staging folder."""
        return self.sealer.seal(close, trigger_lines=trigger_lines, secrets=secrets, diagnose=diagnose)

    def context(self, incident_id: str) -> IncidentContext:
        """The incident's context, from memory or from its staging folder (an earlier run)."""
        return self.contexts.get(incident_id)

    def forget(self, incident_id: str) -> None:
        self.contexts.forget(incident_id)

    def staged_captures(self, incident_id: str) -> dict[str, StagedCapture]:
        """What a stopped run captured of this incident, per router (nothing: {})."""
        return self.contexts.staged_captures(incident_id)

    def discard_stopped_bundle(self, incident_id: str) -> list[Path]:
        """Remove the unfinished bundle folder a stopped run left for this incident."""
        return self.contexts.discard_stopped_bundle(incident_id)
