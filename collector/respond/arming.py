"""Arming a router through the step ledger (joining one already armed: `joining`): each step is
recorded `pending` in the state store BEFORE it is sent and `applied` after, so whatever
happens next (failure, SIGTERM, crash) the disarm finds every change to undo.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from collector.core.results import ArmResult, DisarmResult, LogSnapshot, RouterChange
from collector.core.states import StepStatus
from collector.core.steps import Step
from collector.detect.logread import log_as_of
from collector.inventory import Host
from collector.respond.base import ResponderBase, change_record
from collector.respond.facts import (
    DeviceProfile,
    PeerAddress,
    Preflight,
    PreflightRefused,
    read_pre_arm_log,
)
from collector.respond.plan import ArmPlan, PlanError, build_arm_plan, resizes_log_buffer
from collector.respond.sending import runs_sent_together
from collector.sessions import RouterSession, SessionError
from collector.timeutil import utcnow

VTY_KEEP_FREE = 1  # a router with this few free vty lines after arming gets its session closed


class ArmStopped(Exception):
    """A step failed while arming: the changes so far and why."""

    def __init__(self, changes: list[RouterChange], reason: str):
        super().__init__(reason)
        self.changes = changes
        self.reason = reason


class Arming(ResponderBase):
    """The Responder's arm, join and dry-run plan (a mixin: `Responder` is the class to use).

    Threads and locks: as `ResponderBase`; `_lock` is taken only to read or extend
    `_deadlines`. The caller must not arm or join one router from two threads at once.

    Invariants: every step is in the store as `pending` before its first command is sent;
    an arm or join that stops half-way undoes what it applied (through `disarm`, from
    `Disarming`) before it returns; a join re-enters the dead-man applet first, so its
    countdown and undo list cover the new steps before they exist on the router.
    """

    if TYPE_CHECKING:  # provided by `Disarming` in the composed `Responder`
        def disarm(self, host: Host, incident_id: str | None = None, *, verify: bool = True) -> DisarmResult: ...

    def _plan(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta, profile: DeviceProfile,
              checked: Preflight) -> ArmPlan:
        """The plan from the pre-flight, which read the peer's live IKE session if need be."""
        self._learn_ike_from(host, checked.also_read)
        facts, also = self._facts(host, peer, profile, checked.logging)
        return build_arm_plan(self.playbook, facts, peer, incident_id, window, already_on=checked.debug_state,
                              authorization_bypass=checked.authorization_bypass, with_deadman=checked.with_deadman,
                              also_ike=also)

    def plan_only(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta) -> ArmPlan:
        """The exact plan `arm` would run, from read-only commands (for --dry-run); guards
        report instead of refusing.

        Raises:
            SessionError: the router could not be read.
            PlanError: no safe plan can be built."""
        profile = self.profile(host)
        with self.sessions.session(host) as session:
            checked = self._preflight(session, self._own(host), enforce=False,
                                      also=self._ike_reads(host, profile, (peer,)))
            return self._plan(host, peer, incident_id, window, profile, checked)

    def arm(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta, *,
            log_later: bool = False, before_resize: Callable[[], None] | None = None) -> ArmResult:
        """Pre-flight, then every step of the plan, each recorded before it runs; the whole
        `show logging` as it stood before arming is returned as `pre_arm_log`.

        That log is read after the steps when they leave the buffer as it was (a 10 MB
        buffer takes seconds to read: the debugs are on that much sooner) and cut back to
        the pre-flight's message count; before them when a step resizes the buffer (which
        empties it) or the count cannot cut it (see `_log_read_first`). `log_later`: a log
        that can be read after the steps is not read here: `log_due_as_of` holds the count
        for `logs_as_they_were`, so the caller can mark the armed moment first. `before_resize`
        is called, between sessions, when a step is about to resize the buffer (which empties
        it): the caller's last chance to read what it has not read yet.

        A refused step (`% ...` or `Command authorization failed.`) or a lost session stops
        the arming and undoes what was applied: `armed` False with the reason. Never raises
        for a router problem; `refused` True means a safety rule said no and nothing was sent.

        Raises:
            StateStoreError: the state store could not record a step before it was sent,
                or could not be read; the caller stops (an armed router must not be forgotten).
        """
        own = self._own(host)
        checked: Preflight | None = None
        snapshot: LogSnapshot | None = None
        notes: tuple[str, ...] = ()
        try:
            profile = self.profile(host)
            with self.sessions.session(host) as session:
                # the peer's live IKE session, when the configuration does not tell its
                # version, is read in the same round trip as the pre-flight
                checked = self._preflight(session, own, enforce=True, also=self._ike_reads(host, profile, (peer,)))
                plan = self._plan(host, peer, incident_id, window, profile, checked)
                first = _log_read_first(plan, checked)
            if before_resize is not None and resizes_log_buffer(plan.steps, checked.logging.buffered_size):
                before_resize()
            with self.sessions.session(host) as session:
                if first:
                    snapshot = read_pre_arm_log(session, log_timeout(host))
                changes = self._apply(session, host, incident_id, list(enumerate(plan.steps)))
                armed_at = utcnow()
                if not first and not log_later:
                    snapshot, notes = log_before_arming(session, host, checked.logged)
        except (PreflightRefused, PlanError) as exc:
            return ArmResult(host.name, False, refused=True, error=f"not armed: {exc}", pre_arm_log=snapshot)
        except ArmStopped as exc:
            return self._arm_failed(host, incident_id, exc.reason, exc.changes, checked, snapshot)
        except SessionError as exc:
            return self._arm_failed(host, incident_id, exc.reason, [], checked, snapshot)
        if plan.deadman is not None:
            with self._lock:
                self._deadlines[host.name] = armed_at + timedelta(seconds=plan.deadman.countdown_seconds)
        if checked.vty_lines is not None and checked.vty_in_use is not None \
                and checked.vty_lines - checked.vty_in_use <= VTY_KEEP_FREE:
            # The applet's CLI actions need a free line when it fires: do not sit on ours.
            discard = getattr(self.sessions, "discard", None)
            if discard is not None:
                discard(host.name)
        return ArmResult(host.name, True, changes=tuple(changes), armed_at=armed_at, pre_arm_log=snapshot,
                         log_due_as_of=checked.logged if log_later and not first else None,
                         skipped=plan.skipped, stale_applets=checked.stale_applets, notes=checked.notes + notes)

    def logs_as_they_were(self, host: Host, counts: Sequence[int]) -> list[tuple[LogSnapshot | None, tuple[str, ...]]]:
        """The log as it stood before each arming of one router whose pre-flight counted
        `counts` messages (`ArmResult.log_due_as_of`): read once now, cut back to each count;
        a failed read is a note."""
        try:
            with self.sessions.session(host) as session:
                after = read_pre_arm_log(session, log_timeout(host))
        except SessionError as exc:
            return [_not_read(host, exc.reason)] * len(counts)
        cuts = {logged: _cut_back(host, after, logged) for logged in set(counts)}  # flows joined at once: one count
        return [cuts[logged] for logged in counts]

    def _arm_failed(self, host: Host, incident_id: str, reason: str, changes: list[RouterChange],
                    checked: Preflight | None, snapshot: LogSnapshot | None = None) -> ArmResult:
        """Undo what a failed arm applied; the result says both."""
        error = f"arming failed: {reason}"
        if self.store.armed_steps(host.name, incident_id):
            undo = self.disarm(host, incident_id, verify=False)
            changes = changes + list(undo.changes)
            error += "; what was applied is undone" if undo.error is None else f"; undo incomplete: {undo.error}"
        return ArmResult(host.name, False, error=error, changes=tuple(changes),
                         pre_arm_log=snapshot, stale_applets=checked.stale_applets if checked else ())

    def _apply(self, session: RouterSession, host: Host, incident_id: str,
               steps: list[tuple[int, Step]]) -> list[RouterChange]:
        """Run steps in order. Every one is recorded `pending` BEFORE the first is sent, in
        one synced write (a write per step, two syncs each, made a busy jump host's disk the
        slowest part of arming); the sent ones are marked `applied` after, those not sent
        are dropped from the record.

        Raises:
            ArmStopped: a step was refused or its session failed (it is marked failed:
                possibly half-applied, so its undo still runs).
            StateStoreError: the steps could not be recorded (nothing was sent)."""
        if not steps:
            return []
        self.store.begin_steps(incident_id, host.name, steps)
        sent: list[int] = []
        try:
            return self._send_recorded(session, host, incident_id, steps, sent)
        finally:
            self.store.steps_applied(incident_id, host.name, sent)
            # never sent (after the run that stopped the arming); a failed one is no longer pending
            unsent = [index for index, _step in steps if index not in sent]
            if unsent:
                self.store.forget_steps(incident_id, host.name, unsent)

    def _send_recorded(self, session: RouterSession, host: Host, incident_id: str, steps: list[tuple[int, Step]],
                       sent: list[int]) -> list[RouterChange]:
        """Send steps already recorded `pending`, in order, a run of them at a time
        (`runs_sent_together`); each one sent and accepted goes in `sent` (the caller marks
        them `applied`).

        Raises:
            ArmStopped: a step was refused or its session failed (it is marked failed:
                possibly half-applied, so its undo still runs); the runs after it are not
                sent. A step typed ahead after it in its run was sent: accepted, it is in
                `sent`, refused, marked failed too."""
        changes: list[RouterChange] = []
        for run in runs_sent_together(steps):
            stopped = self._record_run(host, incident_id, run, self._send_run(session, run), sent, changes)
            if stopped is not None:
                raise ArmStopped(changes, stopped)
        return changes

    def _record_run(self, host: Host, incident_id: str, run: list[tuple[int, Step]],
                    outcomes: list[tuple[str | None, str | None]], sent: list[int],
                    changes: list[RouterChange]) -> str | None:
        """Each sent step of `run` by its outcome (what the router said, why it failed):
        accepted into `sent`, failed marked so in the store (its undo still runs); a change
        record of each in `changes`. Returns the first failure, if any."""
        stopped: str | None = None
        for (index, step), (note, failure) in zip(run, outcomes):
            if failure is None:
                sent.append(index)
                changes.append(change_record(host, incident_id, index, step, StepStatus.APPLIED, note))
            else:
                self.store.set_step_status(incident_id, host.name, index, StepStatus.FAILED, failure)
                changes.append(change_record(host, incident_id, index, step, StepStatus.FAILED, failure))
                stopped = stopped or failure
        return stopped


def log_timeout(host: Host) -> float:
    return max(host.options.read_timeout, 300.0)  # a 10 MB buffer over a slow link


def _log_read_first(plan: ArmPlan, checked: Preflight) -> bool:
    """Must the whole log be read before the steps? Yes when a step changes the buffer's
    size (IOS reallocates it, empty), when the header printed no count to cut a later read
    back with, and on a buffer behind a discriminator (whether IOS counts the messages it
    drops there is not known: the cut could take older lines for new ones)."""
    if not count_cuts_log(checked.logged, checked.logging.buffered_config):
        return True
    return resizes_log_buffer(plan.steps, checked.logging.buffered_size)


def count_cuts_log(logged: int | None, buffered_config: Iterable[str]) -> bool:
    """Can a log read after arming be cut back to the header's count `logged`? Not when
    the header printed none, nor on a buffer behind a discriminator (`logging buffered
    discriminator ...` among `buffered_config`): whether IOS counts the messages it drops
    there is not known, and the cut could take older lines for new ones."""
    return logged is not None and not any("discriminator" in line for line in buffered_config)


def _not_read(host: Host, reason: str) -> tuple[None, tuple[str, ...]]:
    return None, (f"{host.name}: the log as it stood before arming was not read ({reason})",)


def log_before_arming(session: RouterSession, host: Host,
                      logged: int | None) -> tuple[LogSnapshot | None, tuple[str, ...]]:
    """The whole log read just after arming, cut back to the pre-flight's count `logged`:
    the buffer as it stood before the first step. The router is armed by now, so a failed
    read is a note, not a failure."""
    try:
        after = read_pre_arm_log(session, log_timeout(host))
    except SessionError as exc:
        return _not_read(host, exc.reason)
    return _cut_back(host, after, logged)


def _cut_back(host: Host, after: LogSnapshot, logged: int | None) -> tuple[LogSnapshot, tuple[str, ...]]:
    """A log read after arming, cut back to the pre-flight's count `logged`."""
    before = log_as_of(after.text, logged) if logged is not None else None
    if before is None:
        # Kept whole: debug lines it holds then count as printed before arming, so the
        # bundle can only understate what arming caught, never claim a capture it lacks.
        return after, (f"{host.name}: the log read after arming could not be cut back to the pre-flight's "
                       f"count ({logged} messages logged); its copy also holds what was logged after arming",)
    return replace(after, text=before), ()

