"""The only code that changes a router: arm, join, capture, disarm, hand over, verify.

Every change follows the plan (`collector.respond.plan`): each step is written to the
state store as `pending` BEFORE it is sent, `applied` after; disarm replays the undo
lists recorded in the store (not an in-memory plan), so the same code disarms after a
normal capture, a timeout, SIGTERM, or a crash found at the next start.

Whose is what: the tool switches off only what it switched on. Pre-flight reads the
router's debugs and crypto conditions; an arm step whose debug or condition is already on
is not sent (so it has no undo), and the disarm verification counts only the tool's own
debugs and conditions as leftovers (others are reported as `foreign`, untouched).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from ipaddress import IPv6Address, ip_address

from collector.command_results import CommandResult
from collector.core.results import ArmResult, DisarmResult, LogSnapshot, RouterChange
from collector.core.states import StepScope, StepStatus
from collector.core.steps import Step
from collector.respond.debugstate import parse_debug_state
from collector.inventory import Host
from collector.parsing import TemplateRegistry
from collector.playbook import Playbook
from collector.respond.deadman import (
    DeadmanError,
    applet_actions,
    applet_names,
    build_applet,
    removal_commands,
)
from collector.clocks import clock_from_records
from collector.evidence import RouterCapture
from collector.respond.facts import (
    CONFIG_LINES_COMMAND,
    DeviceProfile,
    PeerAddress,
    Preflight,
    PreflightRefused,
    ike_from_session,
    preflight,
    read_profile,
    refusal_in,
    run_checked,
)
from collector.respond.plan import (
    BUFFERED_CONFIG_LINE,
    LEVELS,
    ArmPlan,
    LoggingSettings,
    PlanError,
    RouterFacts,
    build_arm_plan,
    capture_commands,
    condition_named_by,
    debug_named_by,
)
from collector.sessions import (
    AuthenticationFailed,
    CommandRefused,
    HostKeyRejected,
    RouterSession,
    SessionError,
    SessionSource,
)
from collector.state import StateStore

log = logging.getLogger(__name__)

_NO_LOGGING = LoggingSettings()  # capture needs the IKE version and platform, not logging
_DEBUG_CHECK = object()  # capture-list marker: ask whether the armed crypto debugs are still on
_APPLET_HEADER = "event manager applet "
# What an orphan applet may replay at `collector disarm`: the tool's own undo commands only.
_REPLAYABLE_CONFIG = re.compile(r"^(?:no logging (?:console|monitor|buffered)|logging (?:console|monitor) (?:"
                                + "|".join(LEVELS) + r"))$")
_CURRENT_PEER = re.compile(r"^\s*current_peer (\S+)", re.M)
_CURRENT_SPI = re.compile(r"^\s*current outbound spi: 0x([0-9A-Fa-f]+)", re.M)
_VERIFY_DEBUGS = "show debugging"
_VERIFY_CONDITIONS = "show crypto debug-condition"
CAPTURE_RECONNECTS = 8  # session reopenings per router per capture (each command is tried twice at most)
DISARM_ATTEMPTS = 3  # sessions tried per disarm before leaving it to the dead-man applet


VTY_KEEP_FREE = 1  # a router with this few free vty lines after arming gets its session closed


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _ArmStopped(Exception):
    """A step failed while arming: the changes so far and why."""

    def __init__(self, changes: list[RouterChange], reason: str):
        super().__init__(reason)
        self.changes = changes
        self.reason = reason


class _Own:
    """What the tool itself has on one router, from the state store's recorded steps."""

    def __init__(self, steps) -> None:
        self.debugs: set[str] = set()
        self.conditions: set[str] = set()
        self.applets: set[str] = set()
        for armed in steps:
            for command in armed.step.do:
                name = debug_named_by(command)
                if name:
                    self.debugs.add(name)
                peer = condition_named_by(command)
                if peer:
                    self.conditions.add(peer)
            if armed.step.do and armed.step.do[0].startswith(_APPLET_HEADER):
                self.applets.add(armed.step.do[0].split()[3])


def _is_applet_step(step: Step) -> bool:
    return bool(step.do) and step.do[0].startswith(_APPLET_HEADER)


class Responder:
    """Acts on routers for the agent: arm, join, capture, disarm, hand over, emergency.

    Threads: the agent calls it from worker threads; calls for different routers may run
    at once, calls for ONE router must not (the agent serialises them per router). The
    profile cache and the dead-man deadlines are guarded by one lock; the state store is
    safe across threads.

    Invariants: a step is recorded `pending` before it is sent; an arm that fails half-way
    undoes what it applied before it returns; nothing the tool did not switch on is ever
    switched off; results are values (`ArmResult`, `DisarmResult`), never sentences to parse.
    """

    def __init__(self, *, playbook: Playbook, store: StateStore, sessions: SessionSource, registry: TemplateRegistry):
        self.playbook = playbook
        self.store = store
        self.sessions = sessions
        self.registry = registry
        self._profiles: dict[str, DeviceProfile] = {}
        self._deadlines: dict[str, datetime] = {}  # router -> when its dead-man applet fires
        self._ike_seen: dict[tuple[str, str], str] = {}  # (router, peer) -> IKE version read live
        self._lock = threading.Lock()

    # -- facts --------------------------------------------------------------------------

    def profile(self, host: Host, *, refresh: bool = False) -> DeviceProfile:
        """The router's slow-changing facts (version, config, addresses), cached.

        Raises:
            SessionError: the router could not be read."""
        with self._lock:
            cached = self._profiles.get(host.name)
        if cached is None or refresh:
            with self.sessions.session(host) as session:
                cached = read_profile(session, self.registry, platform=host.platform)
            with self._lock:
                self._profiles[host.name] = cached
            if cached.addresses:
                self.store.save_addresses(host.name, cached.addresses, utcnow())
        return cached

    def _facts(self, host: Host, peer: PeerAddress, profile: DeviceProfile, logging_settings: LoggingSettings,
               session: RouterSession | None = None) -> tuple[RouterFacts, tuple[str, ...]]:
        """The router's facts toward `peer`, and the IKE versions to arm as well (when
        the version is not known: both)."""
        ike, also = self._ike(host, peer, profile, session)
        return RouterFacts(name=host.name, platform=host.platform, os_family=profile.os_family,
                           ike=ike, logging=logging_settings), also

    def _ike(self, host: Host, peer: PeerAddress, profile: DeviceProfile,
             session: RouterSession | None) -> tuple[str, tuple[str, ...]]:
        """The IKE version toward `peer`: from the configuration when it names the tunnel;
        otherwise (a DMVPN hub with both versions) from the live session to that peer,
        remembered for the capture. When neither tells (a desynchronised tunnel often has
        no IKE SA), the configuration's guess plus the other version: both debugs, each
        conditioned on the peer, rather than a capture without the IKE trail."""
        if profile.knows_ike_toward(peer):
            return profile.ike_toward(peer), ()
        key = (host.name, str(peer))
        with self._lock:
            seen = self._ike_seen.get(key)
        if seen is None and session is not None:
            try:
                seen = ike_from_session(run_checked(session, f"show crypto session remote {peer}").text)
            except CommandRefused:
                seen = None
            if seen is not None:
                with self._lock:
                    self._ike_seen[key] = seen
        if seen is not None:
            return seen, ()
        guess = profile.ike_toward(peer)
        return guess, ("ikev2",) if guess == "isakmp" else ("isakmp",)

    def _own(self, host: Host) -> _Own:
        return _Own(self.store.armed_steps(host.name))

    def _preflight(self, session: RouterSession, own: _Own, *, read_log: bool, enforce: bool) -> Preflight:
        guards = self.playbook.guards
        return preflight(session, cpu_max_percent=guards.cpu_max_percent if enforce else 100,
                         cpu_measure=guards.cpu_measure,
                         refuse_foreign=guards.refuse_if_foreign_debugs and enforce,
                         own_debugs=frozenset(own.debugs), own_conditions=frozenset(own.conditions),
                         own_applets=frozenset(own.applets),
                         allow_without_deadman=guards.allow_arm_without_deadman,
                         read_log=read_log, enforce=enforce)

    def _plan(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta, profile: DeviceProfile,
              checked: Preflight, session: RouterSession) -> ArmPlan:
        facts, also = self._facts(host, peer, profile, checked.logging, session)
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
            checked = self._preflight(session, self._own(host), read_log=False, enforce=False)
            return self._plan(host, peer, incident_id, window, profile, checked, session)

    # -- arm ------------------------------------------------------------------------------

    def arm(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta) -> ArmResult:
        """Pre-flight, the whole `show logging` (arming may empty the buffer: it is returned
        as `pre_arm_log`), then every step of the plan, each recorded before it runs.

        A refused step (`% ...` or `Command authorization failed.`) or a lost session stops
        the arming and undoes what was applied: `armed` False with the reason. Never raises
        for a router problem; `refused` True means a safety rule said no and nothing was sent.

        Raises:
            StateStoreError: the state store could not record a step before it was sent,
                or could not be read; the caller stops (an armed router must not be forgotten).
        """
        own = self._own(host)
        checked: Preflight | None = None
        try:
            profile = self.profile(host)
            with self.sessions.session(host) as session:
                checked = self._preflight(session, own, read_log=True, enforce=True)
                plan = self._plan(host, peer, incident_id, window, profile, checked, session)
                changes = self._apply(session, host, incident_id, list(enumerate(plan.steps)))
        except (PreflightRefused, PlanError) as exc:
            return ArmResult(host.name, False, refused=True, error=f"not armed: {exc}",
                             pre_arm_log=checked.log if checked else None)
        except _ArmStopped as exc:
            return self._arm_failed(host, incident_id, exc.reason, exc.changes, checked)
        except SessionError as exc:
            return self._arm_failed(host, incident_id, exc.reason, [], checked)
        if plan.deadman is not None:
            with self._lock:
                self._deadlines[host.name] = utcnow() + timedelta(seconds=plan.deadman.countdown_seconds)
        if checked.vty_lines is not None and checked.vty_in_use is not None \
                and checked.vty_lines - checked.vty_in_use <= VTY_KEEP_FREE:
            # The applet's CLI actions need a free line when it fires: do not sit on ours.
            discard = getattr(self.sessions, "discard", None)
            if discard is not None:
                discard(host.name)
        return ArmResult(host.name, True, changes=tuple(changes), armed_at=utcnow(), pre_arm_log=checked.log,
                         skipped=plan.skipped, stale_applets=checked.stale_applets, notes=checked.notes)

    def _arm_failed(self, host: Host, incident_id: str, reason: str, changes: list[RouterChange],
                    checked: Preflight | None) -> ArmResult:
        """Undo what a failed arm applied; the result says both."""
        error = f"arming failed: {reason}"
        if self.store.armed_steps(host.name, incident_id):
            undo = self.disarm(host, incident_id, verify=False)
            changes = changes + list(undo.changes)
            error += "; what was applied is undone" if undo.error is None else f"; undo incomplete: {undo.error}"
        return ArmResult(host.name, False, error=error, changes=tuple(changes),
                         pre_arm_log=checked.log if checked else None,
                         stale_applets=checked.stale_applets if checked else ())

    def _apply(self, session: RouterSession, host: Host, incident_id: str,
               steps: list[tuple[int, Step]]) -> list[RouterChange]:
        """Run steps in order, each recorded as pending BEFORE it is sent, applied after.

        Raises:
            _ArmStopped: a step was refused or its session failed (it is marked failed:
                possibly half-applied, so its undo still runs)."""
        changes: list[RouterChange] = []
        for index, step in steps:
            self.store.begin_step(incident_id, host.name, index, step)
            try:
                note = self._send(session, step.mode, step.do)
            except SessionError as exc:
                self.store.set_step_status(incident_id, host.name, index, StepStatus.FAILED, exc.reason)
                changes.append(_change(host, incident_id, index, step, StepStatus.FAILED, exc.reason))
                raise _ArmStopped(changes, exc.reason) from None
            self.store.set_step_status(incident_id, host.name, index, StepStatus.APPLIED)
            changes.append(_change(host, incident_id, index, step, StepStatus.APPLIED, note))
        return changes

    def _send(self, session: RouterSession, mode: str, commands: tuple[str, ...]) -> str | None:
        """Send one step's commands; what the router said beyond its prompt, if anything.

        Raises:
            CommandRefused: a `% ...` refusal, or AAA's `Command authorization failed.`
            SessionError: the session failed."""
        if not commands:
            return None
        if mode == "config":
            outputs = session.configure(commands)
            for out in outputs:
                refused = refusal_in(out.text)
                if refused:
                    raise CommandRefused(session.host.name, f"router refused {out.command!r}: {refused}", output=out.text)
            said = [o.text.strip() for o in outputs if o.text.strip()]
        else:
            said = [run_checked(session, command).text.strip() for command in commands]
            said = [text for text in said if text]
        return "; ".join(said)[:500] or None

    # -- join -----------------------------------------------------------------------------

    def join(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta, *,
             holder_incident_id: str) -> ArmResult:
        """Arm a router that incident `holder_incident_id` already armed, for one more flow.

        Sends only what this flow lacks: its `debug crypto condition peer` and the IKE
        debug of its tunnel when the router was armed for the other IKE version (ikev2 on
        a hub armed for isakmp, and the reverse). First the dead-man applet is re-entered
        with a countdown that covers this flow's window and with the undo of the new steps
        (re-entering `event manager applet NAME` edits it and re-registers the countdown).
        The log is read first (`pre_arm_log`): debug lines already there were printed for
        the other flow, before this one was armed.
        When nothing of the holder's is recorded on the router, it arms fully (`arm`) and
        says so in `notes` (`joined` False). The caller must not run an arm and a join of
        one router at the same time.
        Failure undoes this flow's steps; never raises for a router problem.

        Raises:
            StateStoreError: as `arm`.
        """
        if not self.store.armed_steps(host.name, holder_incident_id):
            # Nothing of the holder's is recorded here (its arm failed, was refused, or has
            # not started): joining would arm debugs without the logging change and the
            # dead-man applet. Arm fully instead.
            result = self.arm(host, peer, incident_id, window)
            note = f"{host.name} was not armed by incident {holder_incident_id}: armed for this flow on its own"
            return ArmResult(result.router, result.armed, joined=False, refused=result.refused, error=result.error,
                             changes=result.changes, armed_at=result.armed_at, pre_arm_log=result.pre_arm_log,
                             skipped=result.skipped, stale_applets=result.stale_applets,
                             notes=result.notes + (note,))
        grace = self.playbook.guards.deadman_grace
        snapshot = None
        try:
            profile = self.profile(host)
            with self.sessions.session(host) as session:
                log_out = run_checked(session, "show logging", read_timeout=max(host.options.read_timeout, 300.0))
                snapshot = LogSnapshot(host.name, log_out.text, log_out.ended)
                debugging = run_checked(session, _VERIFY_DEBUGS).text
                conditions = self._read_conditions(session)
                state = parse_debug_state(debugging, conditions)
                facts, also = self._facts(host, peer, profile, _NO_LOGGING, session)
                plan = build_arm_plan(self.playbook, facts, peer, incident_id, window, already_on=state,
                                      with_deadman=False, include_logging=False, also_ike=also)
                steps = list(plan.steps)
                applet = self._reentered_applet(host, steps, window + grace) if steps else None
                if applet is not None:
                    steps.insert(0, applet)
                changes = self._apply(session, host, incident_id, list(enumerate(steps)))
        except PlanError as exc:
            return ArmResult(host.name, False, joined=True, refused=True, error=f"not armed: {exc}",
                             pre_arm_log=snapshot)
        except _ArmStopped as exc:
            failed = self._arm_failed(host, incident_id, exc.reason, exc.changes, None)
            return ArmResult(host.name, False, joined=True, error=failed.error, changes=failed.changes,
                             pre_arm_log=snapshot)
        except SessionError as exc:
            failed = self._arm_failed(host, incident_id, exc.reason, [], None)
            return ArmResult(host.name, False, joined=True, error=failed.error, changes=failed.changes,
                             pre_arm_log=snapshot)
        notes = () if applet is not None or not plan.steps else (
            f"no dead-man applet of incident {holder_incident_id} recorded on {host.name}: countdown not extended",)
        return ArmResult(host.name, True, joined=True, changes=tuple(changes), armed_at=utcnow(),
                         skipped=plan.skipped, notes=notes, pre_arm_log=snapshot)

    def _reentered_applet(self, host: Host, new_steps: list[Step], cover: timedelta) -> Step | None:
        """The step that re-enters the router's dead-man applet: a countdown lasting until
        the later of its current deadline and now + `cover`, and the undo of `new_steps`
        first, then that of every step recorded on the router. None when no applet is
        recorded (armed without one). Its undo is empty: removing the applet is the
        original install step's undo.

        Raises:
            PlanError: the applet cannot be built."""
        recorded = self.store.armed_steps(host.name)
        applets = [a for a in recorded if _is_applet_step(a.step)]
        if not applets:
            return None
        latest = max(applets, key=lambda a: a.updated_at)
        header = latest.step.do[0]
        name = header.split()[3]
        previous_actions = sum(1 for line in latest.step.do if line.startswith(" action "))
        others = sorted((a for a in recorded if not _is_applet_step(a.step) and a.step.undo),
                        key=lambda a: (a.incident_id, a.index), reverse=True)
        undo = [(s.mode, s.undo) for s in reversed(new_steps)] + [(a.step.mode, a.step.undo) for a in others]
        now = utcnow()
        with self._lock:
            deadline = max(self._deadlines.get(host.name, now), now + cover)
            self._deadlines[host.name] = deadline
        countdown = math.ceil((deadline - now).total_seconds())
        try:
            applet = build_applet(name, countdown, undo, authorization_bypass=header.endswith("authorization bypass"),
                                  replaces_actions=previous_actions)
        except DeadmanError as exc:
            raise PlanError(str(exc)) from None
        return Step(do=applet.config_lines, undo=(), mode="config", scope=StepScope.ROUTER,
                    why=f"dead-man switch re-entered: fires in {countdown}s, also undoes this flow's steps")

    # -- capture --------------------------------------------------------------------------

    def capture(self, host: Host, peer: PeerAddress, role: str, incident_id: str | None = None, *,
                on_plan=None, on_record=None) -> RouterCapture:
        """Run the playbook's capture list; a failed command is recorded, not fatal.

        A session lost in the middle of an output (router reload, flaky path) is reopened
        and the command tried once more; at most `CAPTURE_RECONNECTS` reopenings per
        router, so a router that drops every session cannot hold the incident forever.
        For the sender under NAT-T, `peer` is the address it uses itself
        (`find_sender_peer`): its conditions and queries name that address.
        With `incident_id`, the router is also asked whether the crypto debugs this
        incident armed are still on: a reload or someone's `undebug all` loses the debug
        trail, and the capture must say so. Never raises for a router problem.
        `on_plan(commands)` and `on_record(record)`, when given, are told the command list
        and each output as it arrives (the agent keeps them on disk: a kill loses less).

        Raises:
            StateStoreError: the incident's armed steps could not be read from the store.
        """
        records: list[CommandResult] = []
        problems: list[str] = []
        try:
            profile = self.profile(host)
            facts, also = self._facts(host, peer, profile, _NO_LOGGING)
            commands = capture_commands(self.playbook, facts, peer, also_ike=also)
        except (SessionError, PlanError) as exc:
            reason = exc.reason if isinstance(exc, SessionError) else str(exc)
            return RouterCapture(host.name, role, host.platform, str(peer), (), None, error=reason)
        if on_plan is not None:
            on_plan(commands)
        # The debugs this incident relies on: its own and those of the incident it joined.
        expected: set[str] = set()
        if incident_id is not None and self.store.armed_steps(host.name, incident_id):
            expected = _Own(a for a in self.store.armed_steps(host.name) if a.status == StepStatus.APPLIED).debugs
        expects_debugs = bool(expected)
        pending = list(commands) + ([_DEBUG_CHECK] if expects_debugs else [])
        attempts: dict[int, int] = {}
        reconnects = 0
        position = 0
        while position < len(pending):
            opened = False
            try:
                with self.sessions.session(host) as session:
                    opened = True
                    while position < len(pending):
                        command = pending[position]
                        attempts[position] = attempts.get(position, 0) + 1
                        if command is _DEBUG_CHECK:
                            text = session.run(_VERIFY_DEBUGS, check=False).text
                            missing = expected - parse_debug_state(text).debugs
                            if missing:
                                problems.append(f"the crypto debugs armed for this incident ({', '.join(sorted(missing))}) "
                                                "were no longer on at capture "
                                                "(router reloaded, or debugs cleared by someone): the debug trail is missing")
                        else:
                            records.append(self._run_recorded(session, host, command))
                            if on_record is not None:
                                on_record(records[-1])
                        position += 1
            except (AuthenticationFailed, HostKeyRejected) as exc:
                problems.append(exc.reason)
                break
            except SessionError as exc:
                if not opened:  # could not even connect (the pool already retried with backoff)
                    problems.append(exc.reason)
                    break
                command = pending[position]
                label = "show debugging" if command is _DEBUG_CHECK else command
                if attempts[position] >= 2 or reconnects >= CAPTURE_RECONNECTS:
                    problems.append(f"{label!r} failed: {exc.reason}")
                    if command is not _DEBUG_CHECK:
                        partial = exc.output.replace("\r\n", "\n").replace("\r", "") if exc.output else None
                        records.append(CommandResult(host.name, command, partial, utcnow(), utcnow(),
                                                     error=f"{exc.reason} (output cut short)" if partial else exc.reason))
                        if on_record is not None:
                            on_record(records[-1])
                    position += 1
                if reconnects >= CAPTURE_RECONNECTS:
                    if position < len(pending):
                        problems.append(f"gave up after {reconnects} reconnects; not run: "
                                        + ", ".join(repr("show debugging" if c is _DEBUG_CHECK else c)
                                                    for c in pending[position:]))
                    break
                reconnects += 1
                log.warning("%s: %s; reconnecting (%d of %d)", host.name, exc.reason, reconnects, CAPTURE_RECONNECTS)
        error = "; ".join(problems) if problems else None
        # zone-aware once the running configuration is in (`clock timezone`, `service timestamps`)
        clock = clock_from_records((r.command, r.text, r.started, r.ended) for r in records)
        offset = None if clock is None else clock.skew_seconds
        return RouterCapture(host.name, role, host.platform, str(peer), tuple(records), offset, error=error)

    def _run_recorded(self, session: RouterSession, host: Host, command: str) -> CommandResult:
        started = utcnow()
        try:
            out = run_checked(session, command, read_timeout=max(host.options.read_timeout, 300.0))
        except CommandRefused as exc:
            return CommandResult(host.name, command, exc.output, started, utcnow(), error=exc.reason)
        if command.startswith("show logging"):
            # A 10 MB buffer parses into 100,000 records: the bundle's timeline.jsonl already
            # holds them, one per line, with where each came from. Keep the raw text only.
            return out
        parsed = self.registry.parse(host.platform, command, out.text)
        return replace(out, parsed=parsed.records if parsed.template else None, template=parsed.template)

    # -- disarm ---------------------------------------------------------------------------

    def disarm(self, host: Host, incident_id: str | None = None, *, verify: bool = True) -> DisarmResult:
        """Undo every recorded step of this router (one incident, or all), newest first,
        then verify that none of the tool's own debugs or conditions is left (those another
        incident still holds are not leftovers; someone else's are listed in `foreign`).

        A session lost half-way is reopened (up to `DISARM_ATTEMPTS` sessions); steps
        already undone are marked in the store, so a retry only sends what is left. A
        refused password or a changed host key is not retried. Never raises for a router
        problem: `error` says why it could not finish (the dead-man applet will).

        Raises:
            StateStoreError: the store could not be read, or an undone step could not be
                marked in it (the next disarm starts again from what is recorded).
        """
        steps = self.store.armed_steps(host.name, incident_id)
        if not steps:
            return DisarmResult(host.name, clean=True, nothing_armed=True)
        changes: list[RouterChange] = []
        for attempt in range(1, DISARM_ATTEMPTS + 1):
            try:
                with self.sessions.session(host) as session:
                    self._undo(session, host, incident_id, changes)
                    if not verify:
                        return DisarmResult(host.name, clean=not self._not_undone(host, incident_id),
                                            changes=tuple(changes))
                    own = _Own(steps)
                    # other incidents' steps keep theirs on: not leftovers, not foreign either
                    held = _Own(a for a in self.store.armed_steps(host.name)
                                if incident_id is not None and a.incident_id != incident_id)
                    leftovers, foreign = self._verify(session, own.debugs - held.debugs,
                                                      own.conditions - held.conditions,
                                                      also_ours=(held.debugs, held.conditions))
                failed = self._not_undone(host, incident_id)
                return DisarmResult(host.name, clean=not leftovers and not failed,
                                    leftovers=tuple(leftovers) + failed, changes=tuple(changes), foreign=foreign)
            except SessionError as exc:
                for armed in self.store.armed_steps(host.name, incident_id):
                    self.store.note_step_error(armed.incident_id, host.name, armed.index, exc.reason)
                final = attempt == DISARM_ATTEMPTS or isinstance(exc, (AuthenticationFailed, HostKeyRejected))
                if final:
                    return DisarmResult(host.name, clean=False, changes=tuple(changes),
                                        error=f"{exc.reason} (the on-box dead-man applet will finish it)")
                log.warning("%s: disarm attempt %d failed (%s); trying again", host.name, attempt, exc.reason)
        raise AssertionError("unreachable")

    def _not_undone(self, host: Host, incident_id: str | None) -> tuple[str, ...]:
        return tuple(f"step {a.index} of {a.incident_id} not undone: {a.error}"
                     for a in self.store.armed_steps(host.name, incident_id))

    def _undo(self, session: RouterSession, host: Host, incident_id: str | None, changes: list[RouterChange]) -> None:
        """Each recorded step's undo, newest first.

        A `%` refusal of an undo counts as done (e.g. the applet already fired and deleted
        itself). An AAA denial of the undo of an APPLIED step does not: the change is still
        on, the step stays recorded with the error. The undo of a step whose do was refused
        may be refused too; that step changed nothing.

        Raises:
            SessionError: the session failed (the caller retries)."""
        steps = self.store.armed_steps(host.name, incident_id)
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
                    self.store.note_step_error(armed.incident_id, host.name, armed.index, exc.reason)
                    changes.append(_change(host, armed.incident_id, armed.index, armed.step, armed.status, exc.reason))
                    continue
                note = f"router said: {exc.reason}"
            self.store.set_step_status(armed.incident_id, host.name, armed.index, status, note)
            changes.append(_change(host, armed.incident_id, armed.index, armed.step, status, note))

    def _read_conditions(self, session: RouterSession) -> str | None:
        try:
            return run_checked(session, _VERIFY_CONDITIONS).text
        except CommandRefused:
            return None

    def _verify(self, session: RouterSession, own_debugs: set[str], own_conditions: set[str],
                also_ours: tuple[set[str], set[str]] = (set(), set())) -> tuple[list[str], tuple[str, ...]]:
        """(the tool's own debugs/conditions still on, everyone else's that are on).
        `also_ours` are the tool's too but expected on (other incidents hold them).

        Conditions are recognised by the peer address anywhere in `show crypto
        debug-condition` (no public capture of its wording exists); if that command is
        refused while the tool had set conditions, they count as not verified."""
        debugging = session.run(_VERIFY_DEBUGS, check=False).text
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
            StateStoreError: as `disarm`, or the steps could not be handed over.
        """
        steps = self.store.armed_steps(host.name, incident_id)
        own_flow = [a.index for a in steps if a.step.scope == StepScope.FLOW]
        self.store.transfer_steps(host.name, incident_id, heir_incident_id, keep=own_flow)
        result = self.disarm(host, incident_id, verify=True)
        return DisarmResult(host.name, clean=result.clean and not result.error, leftovers=result.leftovers,
                            changes=result.changes, handed_over_to=heir_incident_id,
                            nothing_armed=result.nothing_armed, error=result.error, foreign=result.foreign)

    def emergency_disarm(self, host: Host) -> DisarmResult:
        """`collector disarm`: every recorded undo step, then the tool's dead-man applets
        still on the router (left by a run whose state was lost): the undo commands each
        one holds are replayed (only the tool's own kinds of command, checked) and the
        applet removed. No `undebug all`, no condition reset: someone else's debugs stay.
        Never raises for a router problem.

        Raises:
            StateStoreError: the recorded steps could not be read, or an undone step
                could not be marked, in the store.
        """
        recorded = self.store.armed_steps(host.name)
        first = self.disarm(host, verify=False) if recorded else DisarmResult(host.name, clean=True, nothing_armed=True)
        changes = list(first.changes)
        own = _Own(recorded)
        try:
            with self.sessions.session(host) as session:
                config = session.run(CONFIG_LINES_COMMAND, check=False).text
                for name in applet_names(config):
                    section = session.run(f"show running-config | section {_APPLET_HEADER}{name}", check=False).text
                    changes += self._replay_orphan(session, host, name, applet_actions(section, name), own)
                leftovers, foreign = self._verify(session, own.debugs, own.conditions)
        except SessionError as exc:
            return DisarmResult(host.name, clean=False, changes=tuple(changes), error=f"sweep failed: {exc.reason}")
        left = tuple(leftovers) + self._not_undone(host, None)
        return DisarmResult(host.name, clean=not left and first.error is None, leftovers=left,
                            changes=tuple(changes), error=first.error, foreign=foreign,
                            nothing_armed=first.nothing_armed and not changes)

    def _replay_orphan(self, session: RouterSession, host: Host, name: str, actions: tuple[str, ...],
                       own: _Own) -> list[RouterChange]:
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
        return [_change(host, "-", 0, step, StepStatus.UNDONE, note)]

    # -- NAT-T ----------------------------------------------------------------------------

    def find_sender_peer(self, host: Host, spi_hex: str) -> PeerAddress | None:
        """The peer address the sender (`host`) itself uses for the flow whose SPI the
        receiver logged: the `current_peer` of the SA whose current outbound SPI is
        `spi_hex`. Under NAT-T the receiver logs its inside address as destaddr, which the
        sender does not know; this is the address to condition, query and advise by.
        None when no SA has that SPI.

        Raises:
            ValueError: `spi_hex` is not a 32-bit hex number.
            SessionError: the sender could not be read."""
        spi = int(spi_hex, 16)
        if not 0 <= spi <= 0xFFFFFFFF:
            raise ValueError(f"SPI {spi_hex!r} does not fit 32 bits")
        with self.sessions.session(host) as session:
            text = run_checked(session, "show crypto ipsec sa", read_timeout=max(host.options.read_timeout, 120.0)).text
        return peer_of_outbound_spi(text, spi)


def _change(host: Host, incident_id: str, index: int, step: Step, status: StepStatus,
            note: str | None) -> RouterChange:
    return RouterChange(router=host.name, incident_id=incident_id, step=index, why=step.why, do=step.do,
                        undo=step.undo, status=status, at=utcnow(), note=note)


def peer_of_outbound_spi(show_crypto_ipsec_sa: str, spi: int) -> PeerAddress | None:
    """The `current_peer` of the SA block whose `current outbound spi` is `spi` (docs/domain.md
    §2.5); the address is parsed, never passed on as text.

    Raises:
        Nothing: no matching block, or a peer that is not an address, gives None.
    """
    peer_text = None
    for line in show_crypto_ipsec_sa.splitlines():
        peer = _CURRENT_PEER.match(line)
        if peer:
            peer_text = peer.group(1)
            continue
        current = _CURRENT_SPI.match(line)
        if current and peer_text and int(current.group(1), 16) == spi:
            try:
                return ip_address(peer_text)
            except ValueError:
                return None
    return None


