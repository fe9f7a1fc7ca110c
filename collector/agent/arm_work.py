"""Arming, as the worker does it: both ends of an incident at once, the receiver's log
marked once they are armed, the incident said armed, then each end's log as it stood
before arming read and staged (`Worker` is the class to use; this is its arm part).
"""

from __future__ import annotations

import logging
import time
from ipaddress import IPv4Address, IPv6Address, ip_address

from collector.agent.contexts import IncidentContext
from collector.agent.dispatch import ARMS_FIRST_S
from collector.bundle import check_bundle_room
from collector.core.decide import Arm, ArmDone, Event, LineSeen
from collector.core.results import ArmResult
from collector.detect.events import Flow
from collector.inventory import Host
from collector.respond.joining import JoinRequest
from collector.respond.plan import PlanError, render_dry_run
from collector.sessions import SessionError
from collector.timeutil import utcnow

log = logging.getLogger(__name__)

Address = IPv4Address | IPv6Address

# How long the read of a router's log as it stood before arming waits for the flows that
# joined it meanwhile (their own reads are then the same read). Joins take well under a
# second; one that fails reads nothing, and the wait ends here.
JOINS_LOG_WAIT_S = 2.0
# How long the first of the flows that start joining a router at once waits for the others
# before it joins them all in one session. They start together, when the arm ahead of them
# is said armed; the first alone made a batch of its own, the others a second one after it.
JOINS_BATCH_WAIT_S = 0.3


class ArmWork:
    """The arm part of `Worker` (a mixin: its attributes are the worker's)."""

    def arm(self, action: Arm) -> list[Event]:
        context = self.contexts.start(IncidentContext(action.incident_id, action.flow, action.receiver,
                                                      action.sender, notes=list(action.notes)))
        receiver = self.inventory.hosts[action.receiver]
        sender = self.inventory.hosts.get(action.sender) if action.sender else None
        # (host, peer, role); the sender's peer (NAT-T) is looked up in its own end's thread,
        # beside the receiver's arming, not before it
        ends: list[tuple[Host, Address | None, str]] = [(receiver, action.flow.src, "receiver")]
        if sender is not None:
            ends.append((sender, None, "sender"))
        if self.dry_run:
            for _name in self.each_in_turn([host.name for host, _peer, _role in ends]):
                pass  # the dry run reads both ends: it waits for its turn on each
            return self._dry_run(action, [self._resolved(context, end) for end in ends])
        room = check_bundle_room(self.bundle_root)
        if room is not None:  # a capture that cannot be written is not worth a debugged router
            return [ArmDone(action.incident_id, utcnow(), frozenset(),
                            ((action.receiver, f"not armed: no room for the bundle: {room}"),), refused=True)]
        joins = dict(action.joins)
        by_name, arming, started = {end[0].name: end for end in ends}, {}, 0.0
        for name in self.each_in_turn(list(by_name)):  # each end as soon as its router is free
            started = started or time.monotonic()  # the arm's duration counts from its first end
            arming[name] = self.ends.submit(self._arm_one, action, by_name[name], joins.get(name))
        outcomes = [arming[name].result() for name in by_name]
        events: list[Event] = [line for _result, lines in outcomes for line in lines]
        results = [result for result, _lines in outcomes]
        self.observers.armed(action.incident_id, results, time.monotonic() - started)
        read_first = {r.router: r.pre_arm_log for r in results if r.pre_arm_log is not None}
        context.armed_ends = {r.router: r.armed_at for r in results if r.armed and r.armed_at is not None}
        armed = frozenset(r.router for r in results if r.armed)
        failed = tuple((r.router, r.error or "not armed") for r in results if not r.armed)
        refused = any(r.refused for r in results if r.router == receiver.name)
        mark, marked_lines = None, []
        if receiver.name in armed:
            try:  # every end is armed now: anything this read does not hold was logged after
                marked_lines, mark = self.marks.submit(receiver, action.incident_id)
            except SessionError as exc:
                failed += ((receiver.name, f"could not read its log after arming: {exc.reason}"),)
                armed -= {receiver.name}
        context.armed_at = utcnow()
        for router, reason in failed:
            context.notes.append(f"{router}: {reason}")
            if router != receiver.name:  # the incident goes on without this end's debugs (a refused receiver ends it)
                context.incomplete.append(f"{router}: not armed ({reason}): the bundle holds no debug output of it")
        self.contexts.save(context)  # what the incident is; the pre-arm logs follow
        answer = events + [ArmDone(action.incident_id, context.armed_at, armed, failed, refused, mark)] + marked_lines
        due = [(self.inventory.hosts[r.router], r.log_due_as_of) for r in results if r.log_due_as_of is not None]
        joining: dict[str, int] = {}
        if self.post is not None and due:
            # Armed: said now, before the logs are read and staged. An armed end holds this
            # action's turn on its router until they are: its Release, and so the incident's
            # Close, come after. Flows joining these routers need not wait for the staging.
            for event in answer:
                self.post(event)
            answer = []
            joining = self.share_turn()
            for router, count in joining.items():  # the flows that start joining now: one batch
                self.joins.expect(router, count, within=JOINS_BATCH_WAIT_S)
            # Evidence, not arming: the reads below wait for the flows still on their way to
            # armed (at most ARMS_FIRST_S). On a jump host's two cores, each armed flow's
            # whole-buffer reads took the cores from the flows armed after it in a burst.
            self.yield_to_arms(ARMS_FIRST_S)
        self._keep_pre_arm_logs(context, read_first, due, joining)
        return answer

    def _keep_pre_arm_logs(self, context: IncidentContext, read_first: dict, due: list,
                           joining: dict[str, int]) -> None:
        """Each end's log as it stood before arming: read before the steps (`read_first`),
        or now (`due`: host, pre-flight count), cut back to that count; staged with the context.
        Flows `joining` a router now read its log after their own steps: the read waits for
        them (a few seconds at most), and one read of a busy hub's buffer serves them all
        while they have its session to themselves."""
        late = list(self.ends.map(
            lambda end: (end[0].name, self.logs_before.submit(*end, expect=joining.get(end[0].name, 0),
                                                              within=JOINS_LOG_WAIT_S)), due))
        context.pre_arm = dict(read_first)
        for router, (snapshot, notes) in late:
            if snapshot is not None:
                context.pre_arm[router] = snapshot
            context.notes.extend(notes)
        self.contexts.save(context)

    def _mark_read(self, host: Host, incidents) -> list[tuple[list[LineSeen], int]]:
        """One read of a receiver's log for the incidents armed on it at once: its number is
        each one's mark, and its lines (held by the read: before every mark) go on once."""
        lines, number = self.reader.poll(host)
        return [(lines, number)] + [([], number)] * (len(incidents) - 1)

    def _resolved(self, context: IncidentContext, end: tuple[Host, Address | None, str]) -> tuple[Host, Address, str]:
        """The end with its peer: for the sender, the receiver's address as it knows it."""
        host, peer, role = end
        if peer is None:
            context.sender_peer = self._sender_peer(host, context.flow)
            peer = ip_address(context.sender_peer)
        return host, peer, role

    def _arm_one(self, action: Arm, end: tuple[Host, Address | None, str],
                 holder: str | None) -> tuple[ArmResult, list[LineSeen]]:
        host, peer, _role = self._resolved(self.contexts.get(action.incident_id), end)
        window = self.playbook.arm_window
        if holder is not None:
            return self.joins.submit(host, JoinRequest(peer, action.incident_id, holder)), []
        lines: list[LineSeen] = []

        def read_unread() -> None:  # a step is about to resize the buffer, which empties it
            try:
                lines.extend(self.reader.poll(host)[0])
            except SessionError as exc:
                log.warning("%s: log read before arming failed: %s", host.name, exc.reason)

        return self.responder.arm(host, peer, action.incident_id, window, log_later=True,
                                  before_resize=read_unread), lines

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
