"""The only code that changes a router: arm, capture, disarm, verify.

Every change follows the plan (`collector.respond.plan`): each step is written to the
state store as `pending` BEFORE it is sent, `applied` after; disarm replays the undo
lists recorded in the store (not an in-memory plan), so the same code disarms after a
normal capture, a timeout, SIGTERM, or a crash found at the next start.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from collector.inventory import Host
from collector.parsing import TemplateRegistry
from collector.playbook import Playbook
from collector.respond.evidence import CommandRecord, RouterCapture
from collector.respond.facts import DeviceProfile, PeerAddress, PreflightRefused, preflight, read_profile
from collector.respond.plan import (
    ArmPlan,
    LoggingSettings,
    PlanError,
    RouterFacts,
    Step,
    build_arm_plan,
    capture_commands,
    verify_commands,
)
from collector.sessions import AuthenticationFailed, CommandRefused, HostKeyRejected, SessionError, SessionPool
from collector.state import StateStore

log = logging.getLogger(__name__)

_CRYPTO_DEBUG_ON = re.compile(r"^\s*Crypto (ISAKMP|IKEv2|IPSEC) debugging is on", re.M | re.I)
_CONDITION_ON = re.compile(r"IKE peer IP address filters:\s*\n\s*(\S+)", re.I)
_SHOW_CLOCK = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?\s+\S+\s+\w{3}\s+(\w{3})\s+(\d{1,2})\s+(\d{4})")
_NO_LOGGING = LoggingSettings()  # capture needs the IKE version and platform, not logging
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}
_ARMS_CRYPTO_DEBUG = re.compile(r"^debug crypto (isakmp|ikev2|ipsec)\b", re.I)
_DEBUG_CHECK = object()  # capture-list marker: ask whether the armed crypto debugs are still on
CAPTURE_RECONNECTS = 8  # session reopenings per router per capture (each command is tried twice at most)
DISARM_ATTEMPTS = 3  # sessions tried per disarm before leaving it to the dead-man applet


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class ArmOutcome:
    router: str
    plan: ArmPlan | None
    armed: bool
    error: str | None = None


class Responder:
    def __init__(self, *, playbook: Playbook, store: StateStore, pool: SessionPool, registry: TemplateRegistry):
        self.playbook = playbook
        self.store = store
        self.pool = pool
        self.registry = registry
        self._profiles: dict[str, DeviceProfile] = {}

    # -- facts --------------------------------------------------------------------------

    def profile(self, host: Host, *, refresh: bool = False) -> DeviceProfile:
        cached = self._profiles.get(host.name)
        if cached is None or refresh:
            with self.pool.session(host) as session:
                cached = read_profile(session, self.registry, platform=host.platform)
            self._profiles[host.name] = cached
            if cached.addresses:
                self.store.save_addresses(host.name, cached.addresses, utcnow())
        return cached

    def plan_for(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta,
                 profile: DeviceProfile, logging_settings) -> ArmPlan:
        facts = RouterFacts(name=host.name, platform=host.platform, os_family=profile.os_family,
                            ike=profile.ike_toward(peer), logging=logging_settings)
        return build_arm_plan(self.playbook, facts, peer, incident_id, window)

    def plan_only(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta) -> ArmPlan:
        """The exact plan `arm` would run, from read-only commands (for --dry-run)."""
        guards = self.playbook.guards
        profile = self.profile(host)
        with self.pool.session(host) as session:
            checked = preflight(session, cpu_max_percent=100, cpu_measure=guards.cpu_measure, refuse_foreign=False)
        return self.plan_for(host, peer, incident_id, window, profile, checked.logging)

    # -- arm ------------------------------------------------------------------------------

    def arm(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta) -> ArmOutcome:
        """Pre-flight, then every step of the plan, each recorded before it runs."""
        guards = self.playbook.guards
        try:
            profile = self.profile(host)
            with self.pool.session(host) as session:
                checked = preflight(session, cpu_max_percent=guards.cpu_max_percent,
                                    cpu_measure=guards.cpu_measure, refuse_foreign=guards.refuse_if_foreign_debugs)
                plan = self.plan_for(host, peer, incident_id, window, profile, checked.logging)
                self._apply(session, host, incident_id, list(enumerate(plan.steps)))
            return ArmOutcome(host.name, plan, True)
        except PreflightRefused as exc:
            return ArmOutcome(host.name, None, False, f"not armed: {exc}")
        except PlanError as exc:
            return ArmOutcome(host.name, None, False, f"not armed: {exc}")
        except SessionError as exc:
            return ArmOutcome(host.name, None, False, f"arming failed: {exc.reason}")

    # -- capture --------------------------------------------------------------------------

    def capture(self, host: Host, peer: PeerAddress, role: str, incident_id: str | None = None) -> RouterCapture:
        """Run the playbook's capture list; a failed command is recorded, not fatal.

        A session lost in the middle of an output (router reload, flaky path) is reopened
        and the command tried once more; at most `CAPTURE_RECONNECTS` reopenings per
        router, so a router that drops every session cannot hold the incident forever.
        With `incident_id`, the router is also asked whether the crypto debugs this
        incident armed are still on: a reload or someone's `undebug all` loses the debug
        trail, and the capture must say so."""
        records: list[CommandRecord] = []
        offset = None
        problems: list[str] = []
        try:
            profile = self.profile(host)
            facts = RouterFacts(name=host.name, platform=host.platform, os_family=profile.os_family,
                                ike=profile.ike_toward(peer), logging=_NO_LOGGING)
            commands = capture_commands(self.playbook, facts, peer)
        except (SessionError, PlanError) as exc:
            reason = exc.reason if isinstance(exc, SessionError) else str(exc)
            return RouterCapture(host.name, role, host.platform, str(peer), (), None, error=reason)
        expects_debugs = incident_id is not None and any(
            _ARMS_CRYPTO_DEBUG.match(command)
            for armed in self.store.armed_steps(host.name, incident_id) if armed.status == "applied"
            for command in armed.step.do)
        pending = list(commands) + ([_DEBUG_CHECK] if expects_debugs else [])
        attempts: dict[int, int] = {}
        reconnects = 0
        position = 0
        while position < len(pending):
            opened = False
            try:
                with self.pool.session(host) as session:
                    opened = True
                    while position < len(pending):
                        command = pending[position]
                        attempts[position] = attempts.get(position, 0) + 1
                        if command is _DEBUG_CHECK:
                            text = session.run("show debugging", check=False).text
                            if not _CRYPTO_DEBUG_ON.search(text):
                                problems.append("the crypto debugs armed for this incident were no longer on at capture "
                                                "(router reloaded, or debugs cleared by someone): the debug trail is missing")
                        else:
                            records.append(self._run_recorded(session, host, command))
                            if command == "show clock" and records[-1].text:
                                offset = clock_offset(records[-1].text, records[-1].started, records[-1].ended)
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
                        records.append(CommandRecord(host.name, command, partial, None, None,
                                                     f"{exc.reason} (output cut short)" if partial else exc.reason,
                                                     utcnow(), utcnow()))
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
        return RouterCapture(host.name, role, host.platform, str(peer), tuple(records), offset, error=error)

    def _run_recorded(self, session, host: Host, command: str) -> CommandRecord:
        started = utcnow()
        try:
            out = session.run(command, read_timeout=max(host.options.read_timeout, 300.0))
        except CommandRefused as exc:
            return CommandRecord(host.name, command, exc.output, None, None, exc.reason, started, utcnow())
        parsed = self.registry.parse(host.platform, command, out.text)
        return CommandRecord(host.name, command, out.text, parsed.records if parsed.template else None,
                             parsed.template, None, out.started, out.ended)

    # -- disarm ---------------------------------------------------------------------------

    def _apply(self, session, host: Host, incident_id: str, steps: list[tuple[int, Step]]) -> None:
        """Run steps in order, each recorded as pending BEFORE it is sent, applied after."""
        for index, step in steps:
            self.store.begin_step(incident_id, host.name, index, step)
            try:
                if step.mode == "config":
                    session.configure(step.do)
                else:
                    for command in step.do:
                        session.run(command)
            except SessionError as exc:
                self.store.set_step_status(incident_id, host.name, index, "failed", exc.reason)
                raise
            self.store.set_step_status(incident_id, host.name, index, "applied")

    def join(self, host: Host, peer: PeerAddress, incident_id: str, window: timedelta) -> ArmOutcome:
        """Arm a router that another incident has already armed: only this flow's
        peer-specific steps (its `debug crypto condition peer`); the debugs, logging and the
        dead-man applet are already there and are handed over when that incident ends."""
        try:
            profile = self.profile(host)
            plan = self.plan_for(host, peer, incident_id, window, profile, LoggingSettings())
            own = [(i, s) for i, s in enumerate(plan.steps)
                   if s.mode == "exec" and any(str(peer) in c.split() for c in s.do)]
            with self.pool.session(host) as session:
                self._apply(session, host, incident_id, own)
            return ArmOutcome(host.name, plan, True)
        except PlanError as exc:
            return ArmOutcome(host.name, None, False, f"not armed: {exc}")
        except SessionError as exc:
            return ArmOutcome(host.name, None, False, f"arming failed: {exc.reason}")

    def disarm(self, host: Host, incident_id: str | None = None, *, verify: bool = True) -> tuple[list[dict], str]:
        """Undo every recorded step of this router (one incident, or all), newest first,
        then verify. Returns the actions taken and a one-line verification result.

        A session lost half-way is reopened (up to `DISARM_ATTEMPTS` sessions); steps
        already undone are marked in the store, so a retry only sends what is left.
        A refused password or a changed host key is not retried."""
        actions: list[dict] = []
        steps = self.store.armed_steps(host.name, incident_id)
        if not steps:
            return actions, "nothing armed"
        for attempt in range(1, DISARM_ATTEMPTS + 1):
            try:
                return actions, self._disarm_once(host, incident_id, actions, verify)
            except SessionError as exc:
                for armed in self.store.armed_steps(host.name, incident_id):
                    self.store.note_step_error(armed.incident_id, host.name, armed.index, exc.reason)
                final = attempt == DISARM_ATTEMPTS or isinstance(exc, (AuthenticationFailed, HostKeyRejected))
                if final:
                    return actions, f"disarm incomplete: {exc.reason} (the on-box dead-man applet will finish it)"
                log.warning("%s: disarm attempt %d failed (%s); trying again", host.name, attempt, exc.reason)
        raise AssertionError("unreachable")

    def _disarm_once(self, host: Host, incident_id: str | None, actions: list[dict], verify: bool = True) -> str:
        steps = self.store.armed_steps(host.name, incident_id)
        steps.sort(key=lambda s: (s.incident_id, s.index), reverse=True)
        with self.pool.session(host) as session:
            for armed in steps:
                started = utcnow()
                try:
                    if armed.step.mode == "config":
                        session.configure(armed.step.undo)
                    else:
                        for command in armed.step.undo:
                            session.run(command)
                    self.store.set_step_status(armed.incident_id, host.name, armed.index, "undone")
                    status = "undone"
                except CommandRefused as exc:
                    # e.g. the applet is already gone because it fired: nothing left to undo
                    self.store.set_step_status(armed.incident_id, host.name, armed.index, "undone", exc.reason)
                    status = f"undone (router said: {exc.reason})"
                actions.append({"router": host.name, "incident": armed.incident_id, "step": armed.index,
                                "why": armed.step.why, "do": list(armed.step.do), "undo": list(armed.step.undo),
                                "status": status, "at": started.isoformat()})
            return self._verify(session, host) if verify else "own steps undone; debugs kept for another incident"

    def _verify(self, session, host: Host) -> str:
        leftovers = []
        for command in verify_commands(self.playbook):
            text = session.run(command, check=False).text
            leftovers += [f"{m.group(1)} debug" for m in _CRYPTO_DEBUG_ON.finditer(text)]
            leftovers += [f"condition peer {m.group(1)}" for m in _CONDITION_ON.finditer(text)]
        if leftovers:
            return "NOT clean: " + ", ".join(leftovers)
        return "clean: no crypto debug, no debug condition"

    def emergency_disarm(self, host: Host) -> tuple[list[dict], str]:
        """`collector disarm`: the recorded undo steps, then a blunt sweep."""
        actions, verdict = self.disarm(host)
        try:
            with self.pool.session(host) as session:
                for command in ("undebug all", "debug crypto condition reset"):
                    session.run(command, check=False)
                    actions.append({"router": host.name, "do": [command], "status": "sent"})
                config = session.run("show running-config | include ^event manager applet COLLECTOR_DEADMAN_", check=False).text
                names = re.findall(r"^event manager applet (COLLECTOR_DEADMAN_[A-Za-z0-9_]+)", config, re.M)
                if names:
                    session.configure([f"no event manager applet {n}" for n in names])
                    actions.append({"router": host.name, "do": [f"no event manager applet {n}" for n in names], "status": "sent"})
                verdict = self._verify(session, host)
        except SessionError as exc:
            verdict = f"sweep failed: {exc.reason}"
        return actions, verdict



def clock_offset(show_clock: str, before: datetime, after: datetime) -> float | None:
    """Router clock minus agent clock (seconds), from `show clock` and when it was asked.

    The router's time zone is not known for sure, so the offset is reported as seen; the
    timeline uses it only to line up two routers against each other."""
    match = _SHOW_CLOCK.search(show_clock)
    if not match:
        return None
    hh, mm, ss, ms, mon, day, year = match.groups()
    if mon not in _MONTHS:
        return None
    try:
        device = datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss),
                          int((ms or "0").ljust(3, "0")) * 1000, tzinfo=timezone.utc)
    except ValueError:
        return None
    midpoint = before + (after - before) / 2
    return round((device - midpoint).total_seconds(), 3)
