"""Disarm, hand over, verify and the emergency sweep: every recorded step's undo, newest
first, replayed from the state store (not from an in-memory plan), so the same code ends a
normal capture, a timeout, SIGTERM, or a crash found at the next start.

Whose is what: the verification counts only the tool's own debugs and conditions as
leftovers; anyone else's are reported as `foreign` and left on.
"""

from __future__ import annotations

import logging
import re
from ipaddress import IPv6Address, ip_address

from collector.core.results import DisarmResult, RouterChange
from collector.core.states import StepScope, StepStatus
from collector.core.steps import Step
from collector.inventory import Host
from collector.respond.base import APPLET_HEADER, VERIFY_DEBUGS, Owned, ResponderBase, change_record
from collector.respond.deadman import applet_actions, applet_names, removal_commands
from collector.respond.debugstate import parse_debug_state
from collector.respond.facts import CONFIG_LINES_COMMAND, refusal_in, run_checked
from collector.errors import StateStoreError
from collector.respond.plan import BUFFERED_CONFIG_LINE, LEVELS, condition_named_by, debug_named_by
from collector.respond.sweep import Ownership, SweepResult, sweep_router
from collector.respond.unrecorded import note_step_error
from collector.sessions import (AuthenticationFailed, CommandRefused, CommandTimeout, HostKeyRejected, RouterSession,
                                SessionError)
from collector.state import ArmedStep

log = logging.getLogger(__name__)

# What an orphan applet may replay at `collector disarm`: the tool's own undo commands only.
_REPLAYABLE_CONFIG = re.compile(r"^(?:no logging (?:console|monitor|buffered)|logging (?:console|monitor) (?:"
                                + "|".join(LEVELS) + r"))$")
DISARM_ATTEMPTS = 3  # sessions tried per disarm before leaving it to the dead-man applet
SWEEP_TIMEOUT_MIN = 60.0  # seconds a command of the sweep after a timed-out undo may take, at least


class Disarming(ResponderBase):
    """The Responder's disarm, hand-over and emergency disarm (a mixin: `Responder` is the
    class to use).

    Threads and locks: as `ResponderBase`; it takes no lock of its own. A disarm must not
    run on a router at the same time as an arm or join of it (the agent serialises them).

    Invariants: undo is driven by the store's recorded steps only; a step leaves the store
    only once its undo went through (or was refused as having nothing to undo), so a retry
    or the next start sends only what is left; nothing the tool did not switch on is sent
    an undo; text read from an orphan applet goes back to the router only rebuilt from
    parsed values or fully matched against the tool's own undo lines.
    """

    def disarm(self, host: Host, incident_id: str | None = None, *, verify: bool = True) -> DisarmResult:
        """Undo every recorded step of this router (one incident, or all), newest first,
        then verify that none of the tool's own debugs or conditions is left (those another
        incident still holds are not leftovers; someone else's are listed in `foreign`).

        A session lost half-way is reopened (up to `DISARM_ATTEMPTS` sessions); steps
        already undone are marked in the store, so a retry only sends what is left. An
        undo that times out is not sent again: the router is put back by the emergency
        sweep from its own dead-man applet (`_sweep_after_timeout`), unless another
        incident still holds steps there. A refused password or a changed host key is not
        retried. An undone step the store cannot record is held in memory and written
        later (`UnrecordedSteps`); the other undos go on. Never raises for a router
        problem: `error` says why it could not finish (the dead-man applet will).

        Raises:
            StateStoreError: the store could not be read.
        """
        self.unrecorded.write(self.store)  # what an earlier disarm could not record, first
        steps = self._steps(host, incident_id)
        if not steps:
            return DisarmResult(host.name, clean=True, nothing_armed=True)
        changes: list[RouterChange] = []
        for attempt in range(1, DISARM_ATTEMPTS + 1):
            try:
                with self.sessions.session(host) as session:
                    self._undo(session, host, incident_id, changes)
                    if not verify:
                        return DisarmResult(host.name, clean=not self._not_undone(host, incident_id),
                                            changes=tuple(changes), notes=self.unrecorded.note_for(host.name))
                    own = Owned(steps)
                    # other incidents' steps keep theirs on: not leftovers, not foreign either
                    held = Owned(a for a in self._steps(host, None)
                                 if incident_id is not None and a.incident_id != incident_id)
                    leftovers, foreign = self._verify(session, own.debugs - held.debugs,
                                                      own.conditions - held.conditions,
                                                      also_ours=(held.debugs, held.conditions))
                failed = self._not_undone(host, incident_id)
                return DisarmResult(host.name, clean=not leftovers and not failed,
                                    leftovers=tuple(leftovers) + failed, changes=tuple(changes), foreign=foreign,
                                    notes=self.unrecorded.note_for(host.name))
            except SessionError as exc:
                for armed in self._steps(host, incident_id):
                    note_step_error(self.store, armed, exc.reason)
                if isinstance(exc, CommandTimeout) and not self._held_by_others(host, incident_id):
                    return self._sweep_after_timeout(host, exc, changes)
                final = attempt == DISARM_ATTEMPTS or isinstance(exc, (AuthenticationFailed, HostKeyRejected))
                if final:
                    return DisarmResult(host.name, clean=False, changes=tuple(changes),
                                        error=f"{exc.reason} (the on-box dead-man applet will finish it)",
                                        notes=self.unrecorded.note_for(host.name))
                log.warning("%s: disarm attempt %d failed (%s); trying again", host.name, attempt, exc.reason)
        raise AssertionError("unreachable")

    def _steps(self, host: Host, incident_id: str | None) -> list[ArmedStep]:
        """The store's steps still to undo, less those undone but not recorded yet."""
        return self.unrecorded.without_held(self.store.armed_steps(host.name, incident_id))

    def _held_by_others(self, host: Host, incident_id: str | None) -> bool:
        return incident_id is not None and any(a.incident_id != incident_id for a in self._steps(host, None))

    def _not_undone(self, host: Host, incident_id: str | None) -> tuple[str, ...]:
        return tuple(f"step {a.index} of {a.incident_id} not undone: {a.error}"
                     for a in self._steps(host, incident_id))

    def _undo(self, session: RouterSession, host: Host, incident_id: str | None, changes: list[RouterChange]) -> None:
        """Each recorded step's undo, newest first.

        A `%` refusal of an undo counts as done (e.g. the applet already fired and deleted
        itself). An AAA denial of the undo of an APPLIED step does not: the change is still
        on, the step stays recorded with the error. The undo of a step whose do was refused
        may be refused too; that step changed nothing. A step the store cannot mark undone
        does not stop the others (held, see `UnrecordedSteps`).

        Raises:
            SessionError: the session failed (the caller retries)."""
        steps = self._steps(host, incident_id)
        steps.sort(key=lambda s: (s.incident_id, s.index), reverse=True)
        for armed in steps:
            status, note = StepStatus.UNDONE, None
            try:
                said = self._send(session, armed.step.mode, armed.step.undo)
                if said and armed.step.mode == "exec":
                    note = said
            except CommandRefused as exc:
                denied = refusal_in(exc.output or "") is not None
                if denied and armed.status == StepStatus.APPLIED:
                    note_step_error(self.store, armed, exc.reason)
                    changes.append(change_record(host, armed.incident_id, armed.index, armed.step, armed.status,
                                                 exc.reason))
                    continue
                note = f"router said: {exc.reason}"
            self.unrecorded.record_undone(self.store, armed, note)
            changes.append(change_record(host, armed.incident_id, armed.index, armed.step, status, note))

    def _sweep_after_timeout(self, host: Host, timeout: CommandTimeout, changes: list[RouterChange]) -> DisarmResult:
        """An undo timed out (the session read until its prompt came back, or was closed):
        the command may or may not have run, so it is not sent again blindly. The router
        is put back by the emergency sweep from its own dead-man applet (only the tool's
        own undo forms, checked; its removal last), with a longer timeout, then checked.
        The recorded steps count as undone only when that check shows them gone (debugs
        and conditions off, logging as the applet says, the applet removed)."""
        remaining = self._steps(host, None)
        own = Owned(remaining)
        patient = max(2 * host.options.read_timeout, SWEEP_TIMEOUT_MIN)
        try:
            with self.sessions.session(host) as session:
                swept = sweep_router(_Patient(session, patient), host.name,
                                     Ownership(frozenset(own.debugs), frozenset(own.conditions)))
        except SessionError as exc:
            swept = SweepResult(host.name, error=exc.reason)
        said = f"an undo timed out ({timeout.reason}); emergency sweep from its dead-man applet: {swept.line()}"
        logging_left = any(c.startswith(("logging ", "no logging ")) for a in remaining for c in a.step.undo)
        if swept.clean and (swept.applets or not logging_left):
            for armed in remaining:
                self.unrecorded.record_undone(self.store, armed, "put back by the emergency sweep after an undo timed out")
                changes.append(change_record(host, armed.incident_id, armed.index, armed.step, StepStatus.UNDONE,
                                             "put back by the emergency sweep after an undo timed out"))
            return DisarmResult(host.name, clean=True, changes=tuple(changes), foreign=tuple(swept.not_ours),
                                notes=(said,) + self.unrecorded.note_for(host.name))
        return DisarmResult(host.name, clean=False, changes=tuple(changes),
                            leftovers=tuple(swept.still_on + swept.not_restored),
                            error=f"{said} (the on-box dead-man applet will finish it)",
                            notes=self.unrecorded.note_for(host.name))

    def _verify(self, session: RouterSession, own_debugs: set[str], own_conditions: set[str],
                also_ours: tuple[set[str], set[str]] = (set(), set())) -> tuple[list[str], tuple[str, ...]]:
        """(the tool's own debugs/conditions still on, everyone else's that are on).
        `also_ours` are the tool's too but expected on (other incidents hold them).

        Conditions are recognised by the peer address anywhere in `show crypto
        debug-condition` (no public capture of its wording exists); if that command is
        refused while the tool had set conditions, they count as not verified."""
        debugging = session.run(VERIFY_DEBUGS, check=False).text
        conditions = self._read_conditions(session)
        state = parse_debug_state(debugging, conditions)
        leftovers = [f"debug crypto {name}" for name in sorted(own_debugs & state.debugs)]
        leftovers += [f"condition peer {peer}" for peer in sorted(own_conditions & state.peer_conditions)]
        if refusal_in(debugging):
            leftovers.append("`show debugging` refused: debugs not verified")
        if conditions is None and own_conditions:
            leftovers.append("`show crypto debug-condition` refused: conditions not verified")
        foreign = tuple([f"debug {name}" for name in sorted(state.debugs - own_debugs - also_ours[0])]
                        + [f"condition peer {peer}"
                           for peer in sorted(state.peer_conditions - own_conditions - also_ours[1])])
        return leftovers, foreign

    def hand_over(self, host: Host, incident_id: str, heir_incident_id: str) -> DisarmResult:
        """End one flow on a router another incident still needs: undo this incident's
        FLOW-scoped steps (its condition), give its ROUTER-scoped ones (debugs, logging,
        the applet) to `heir_incident_id`, and verify that this flow's own condition is gone.
        Never raises for a router problem (see `disarm`).

        Raises:
            StateStoreError: as `disarm`.
        """
        steps = self._steps(host, incident_id)
        own_flow = [a.index for a in steps if a.step.scope == StepScope.FLOW]
        try:
            self.store.transfer_steps(host.name, incident_id, heir_incident_id, keep=own_flow)
        except StateStoreError as exc:  # undoing now, unrecorded, would leave the heir without its debugs' record
            return DisarmResult(host.name, clean=False, handed_over_to=heir_incident_id,
                                error=f"the hand-over to incident {heir_incident_id} could not be recorded ({exc}); "
                                      "nothing was undone here: this incident's steps stay recorded for the "
                                      "disarm retry or the next start")
        result = self.disarm(host, incident_id, verify=True)
        return DisarmResult(host.name, clean=result.clean and not result.error, leftovers=result.leftovers,
                            changes=result.changes, handed_over_to=heir_incident_id,
                            nothing_armed=result.nothing_armed, error=result.error, foreign=result.foreign,
                            notes=result.notes)

    def emergency_disarm(self, host: Host) -> DisarmResult:
        """`collector disarm`: every recorded undo step, then the tool's dead-man applets
        still on the router (left by a run whose state was lost): the undo commands each
        one holds are replayed (only the tool's own kinds of command, checked) and the
        applet removed. No `undebug all`, no condition reset: someone else's debugs stay.
        Never raises for a router problem.

        Raises:
            StateStoreError: the recorded steps could not be read from the store.
        """
        recorded = self._steps(host, None)
        first = self.disarm(host, verify=False) if recorded else DisarmResult(host.name, clean=True, nothing_armed=True)
        changes = list(first.changes)
        own = Owned(recorded)
        try:
            with self.sessions.session(host) as session:
                config = session.run(CONFIG_LINES_COMMAND, check=False).text
                for name in applet_names(config):
                    section = session.run(f"show running-config | section {APPLET_HEADER}{name}", check=False).text
                    changes += self._replay_orphan(session, host, name, applet_actions(section, name), own)
                leftovers, foreign = self._verify(session, own.debugs, own.conditions)
        except SessionError as exc:
            return DisarmResult(host.name, clean=False, changes=tuple(changes), error=f"sweep failed: {exc.reason}")
        left = tuple(leftovers) + self._not_undone(host, None)
        return DisarmResult(host.name, clean=not left and first.error is None, leftovers=left,
                            changes=tuple(changes), error=first.error, foreign=foreign,
                            nothing_armed=first.nothing_armed and not changes)

    def _replay_orphan(self, session: RouterSession, host: Host, name: str, actions: tuple[str, ...],
                       own: Owned) -> list[RouterChange]:
        """Run what an orphan applet would run when it fires, then remove it."""
        exec_lines: list[str] = []
        config_lines: list[str] = []
        for command in actions:
            # Device text goes back only rebuilt from parsed values (a name, an address).
            undone = command[3:] if command.startswith("no ") else ""
            debug, peer = debug_named_by(undone), condition_named_by(undone)
            if debug is not None:
                exec_lines.append(f"no debug crypto {debug}")
                own.debugs.add(debug)
            elif peer is not None:
                family = "ipv6" if isinstance(ip_address(peer), IPv6Address) else "ipv4"
                exec_lines.append(f"no debug crypto condition peer {family} {peer}")
                own.conditions.add(peer)
            elif _REPLAYABLE_CONFIG.fullmatch(command) or BUFFERED_CONFIG_LINE.fullmatch(command):
                config_lines.append(command)
        step = Step(do=(), undo=tuple(exec_lines) + tuple(config_lines) + removal_commands(name), mode="config",
                    why=f"orphan dead-man applet {name}: its undo replayed, then removed")
        note = None
        for command in exec_lines:
            try:
                run_checked(session, command)
            except CommandRefused as exc:
                note = exc.reason
        try:
            self._send(session, "config", tuple(config_lines) + removal_commands(name))
        except CommandRefused as exc:
            note = exc.reason
        return [change_record(host, "-", 0, step, StepStatus.UNDONE, note)]


class _Patient:
    """A session whose commands wait longer for the prompt (after one timed out)."""

    def __init__(self, session: RouterSession, timeout: float):
        self._session, self._timeout = session, timeout
        self.host = session.host

    def run(self, command: str, *, read_timeout: float | None = None, check: bool = True):
        return self._session.run(command, read_timeout=read_timeout or self._timeout, check=check)

    def run_many(self, commands, *, read_timeout: float | None = None):
        return self._session.run_many(commands, read_timeout=read_timeout or self._timeout)

    def configure(self, lines, *, read_timeout: float | None = None):
        return self._session.configure(lines, read_timeout=read_timeout or self._timeout)
