"""What every part of the Responder shares: its constructor state, the router's facts
(profile, IKE version, pre-flight) and the primitives every change goes through (`_send`
one step's commands, `_send_run` a run of steps as sending.py groups them, `change_record`
its result).

`Owned` reads what the tool itself has on a router from the state store's recorded
steps: arming, capture and disarm all decide by it, never by reading the router's text.
"""

from __future__ import annotations

import threading
from datetime import datetime

from collector.core.results import RouterChange
from collector.core.states import StepStatus
from collector.core.steps import Step
from collector.inventory import Host
from collector.parsing import TemplateRegistry
from collector.playbook import Playbook
from collector.respond.facts import (
    DeviceProfile,
    PeerAddress,
    Preflight,
    ike_from_session,
    preflight,
    read_profile,
    run_checked,
    unless_refused,
)
from collector.respond.plan import LoggingSettings, RouterFacts, condition_named_by, debug_named_by
from collector.respond.sending import StepsStopped, configure_steps, said_note, typed_ahead_steps
from collector.respond.unrecorded import UnrecordedSteps
from collector.sessions import CommandRefused, RouterSession, SessionError, SessionSource
from collector.state import StateStore
from collector.timeutil import utcnow

NO_LOGGING = LoggingSettings()  # join and capture need the IKE version and platform, not logging
APPLET_HEADER = "event manager applet "
VERIFY_DEBUGS = "show debugging"
VERIFY_CONDITIONS = "show crypto debug-condition"
IKE_READ = "show crypto session remote "  # + the peer: its live IKE session shows the version


class Owned:
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
            if is_applet_step(armed.step):
                self.applets.add(armed.step.do[0].split()[3])


def is_applet_step(step: Step) -> bool:
    return bool(step.do) and step.do[0].startswith(APPLET_HEADER)


def change_record(host: Host, incident_id: str, index: int, step: Step, status: StepStatus,
                  note: str | None) -> RouterChange:
    return RouterChange(router=host.name, incident_id=incident_id, step=index, why=step.why, do=step.do,
                        undo=step.undo, status=status, at=utcnow(), note=note)


class ResponderBase:
    """The state the Responder's parts (`Arming`, `Capturing`, `Disarming`) share, and the
    router facts they all read.

    Threads: called from the agent's worker threads, several routers at once, one call per
    router at a time (the agent serialises them). `_lock` guards the three caches below and
    nothing else; it is never held while a router is talked to. The state store is safe
    across threads on its own.

    Invariants: `_profiles` holds at most one profile per router (replaced on refresh);
    `_deadlines` is when each router's dead-man applet fires, as last set by this process
    (arming writes it, a join extends it, never shortens it); `_ike_seen` remembers an IKE
    version read live toward a peer so the capture arms and reads the same one.
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
        self.unrecorded = UnrecordedSteps()  # undone steps the store could not record yet (own lock)

    def profile(self, host: Host, *, refresh: bool = False) -> DeviceProfile:
        """The router's slow-changing facts (version, config, addresses), cached.

        Raises:
            SessionError: the router could not be read."""
        with self._lock:
            cached = self._profiles.get(host.name)
        if cached is None or refresh:
            with self.sessions.session(host) as session:
                with self._lock:  # read while this thread waited for the session (readied ahead of arming)
                    cached = None if refresh else self._profiles.get(host.name)
                if cached is not None:
                    return cached
                cached = read_profile(session, self.registry, platform=host.platform)
            with self._lock:
                self._profiles[host.name] = cached
            if cached.addresses:
                self.store.save_addresses(host.name, cached.addresses, utcnow())
        return cached

    def _facts(self, host: Host, peer: PeerAddress, profile: DeviceProfile,
               logging_settings: LoggingSettings) -> tuple[RouterFacts, tuple[str, ...]]:
        """The router's facts toward `peer`, and the IKE versions to arm as well (when
        the version is not known: both)."""
        ike, also = self._ike(host, peer, profile)
        return RouterFacts(name=host.name, platform=host.platform, os_family=profile.os_family,
                           ike=ike, logging=logging_settings, dmvpn=profile.dmvpn), also

    def _ike(self, host: Host, peer: PeerAddress, profile: DeviceProfile) -> tuple[str, tuple[str, ...]]:
        """The IKE version toward `peer`: from the configuration when it names the tunnel;
        otherwise (a DMVPN hub with both versions) from the live session to that peer, read
        beside other reads (`_ike_reads`) and remembered for the capture. When neither
        tells (a desynchronised tunnel often has no IKE SA), the configuration's guess plus
        the other version: both debugs, each conditioned on the peer, rather than a capture
        without the IKE trail."""
        if profile.knows_ike_toward(peer):
            return profile.ike_toward(peer), ()
        with self._lock:
            seen = self._ike_seen.get((host.name, str(peer)))
        if seen is not None:
            return seen, ()
        guess = profile.ike_toward(peer)
        return guess, ("ikev2",) if guess == "isakmp" else ("isakmp",)

    def _ike_reads(self, host: Host, profile: DeviceProfile, peers) -> list[str]:
        """The live session toward each of `peers` whose IKE version neither the
        configuration nor an earlier read tells: reads to type ahead with others, so they
        cost no round trip of their own (`_learn_ike_from` takes their results)."""
        with self._lock:
            unknown = dict.fromkeys(str(p) for p in peers if not profile.knows_ike_toward(p)
                                    and (host.name, str(p)) not in self._ike_seen)
        return [f"{IKE_READ}{peer}" for peer in unknown]

    def _learn_ike_from(self, host: Host, reads) -> None:
        """The IKE versions the live sessions read by `_ike_reads`' commands show."""
        for out in reads:
            peer = out.command.removeprefix(IKE_READ)
            seen = ike_from_session(out.text) if unless_refused(out) else None
            if seen is not None:
                with self._lock:
                    self._ike_seen[(host.name, peer)] = seen

    def _own(self, host: Host) -> Owned:
        return Owned(self.store.armed_steps(host.name))

    def _preflight(self, session: RouterSession, own: Owned, *, enforce: bool, also=()) -> Preflight:
        guards = self.playbook.guards
        return preflight(session, cpu_max_percent=guards.cpu_max_percent if enforce else 100,
                         cpu_measure=guards.cpu_measure,
                         refuse_foreign=guards.refuse_if_foreign_debugs and enforce,
                         own_debugs=frozenset(own.debugs), own_conditions=frozenset(own.conditions),
                         own_applets=frozenset(own.applets),
                         allow_without_deadman=guards.allow_arm_without_deadman,
                         enforce=enforce, also=also)

    def _read_conditions(self, session: RouterSession) -> str | None:
        try:
            return run_checked(session, VERIFY_CONDITIONS).text
        except CommandRefused:
            return None

    def _send(self, session: RouterSession, mode: str, commands: tuple[str, ...]) -> str | None:
        """Send one step's commands; what the router said beyond its prompt, if anything.

        Raises:
            CommandRefused: a `% ...` refusal, or AAA's `Command authorization failed.`
            SessionError: the session failed."""
        if not commands:
            return None
        if mode == "config":
            try:
                return configure_steps(session, [commands])[0]
            except StepsStopped as stop:
                raise stop.error from None
        return said_note([run_checked(session, command).text.strip() for command in commands])

    def _send_run(self, session: RouterSession, run: list[tuple[int, Step]]) -> list[tuple[str | None, str | None]]:
        """Send a run of steps (`runs_sent_together`): (what the router said, why it failed)
        for each step sent, in order. A run stops at its first failure, except a run typed
        ahead, where each step's own answer says (a lost session fails them all: any may
        have been applied)."""
        mode = run[0][1].mode
        try:
            if mode == "config":
                return [(note, None) for note in configure_steps(session, [step.do for _index, step in run])]
            if len(run) == 1:
                return [(self._send(session, mode, run[0][1].do), None)]
            return typed_ahead_steps(session, [step.do for _index, step in run])
        except StepsStopped as stop:
            return [(None, None)] * stop.done + [(None, stop.error.reason)]
        except SessionError as exc:
            return [(None, exc.reason)] * len(run)
