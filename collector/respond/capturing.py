"""The capture: the playbook's show commands on one router of an incident, each output
recorded as it arrives, a dropped session reopened (bounded), and a check that the debugs
the incident armed are still on.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from collector.clocks import clock_from_records
from collector.command_results import CommandResult
from collector.core.states import StepStatus
from collector.evidence import RouterCapture
from collector.inventory import Host
from collector.respond.base import NO_LOGGING, VERIFY_DEBUGS, Owned, ResponderBase
from collector.respond.debugstate import parse_debug_state
from collector.respond.facts import PeerAddress, run_checked
from collector.respond.plan import PlanError, capture_commands
from collector.sessions import AuthenticationFailed, CommandRefused, HostKeyRejected, RouterSession, SessionError
from collector.timeutil import utcnow

log = logging.getLogger(__name__)

_DEBUG_CHECK = object()  # capture-list marker: ask whether the armed crypto debugs are still on
CAPTURE_RECONNECTS = 8  # session reopenings per router per capture (each command is tried twice at most)


class Capturing(ResponderBase):
    """The Responder's capture (a mixin: `Responder` is the class to use).

    Threads and locks: as `ResponderBase`; it takes no lock of its own. `on_plan` and
    `on_record` run on the calling thread, in order, before the next command is sent.

    Invariants: read-only (the playbook's capture commands and `show debugging`, nothing
    else); each command is tried at most twice and a router's sessions reopened at most
    `CAPTURE_RECONNECTS` times, so a capture always ends; a router problem ends in the
    capture's `error`, never in an exception.
    """

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
            facts, also = self._facts(host, peer, profile, NO_LOGGING)
            commands = capture_commands(self.playbook, facts, peer, also_ike=also)
        except (SessionError, PlanError) as exc:
            reason = exc.reason if isinstance(exc, SessionError) else str(exc)
            return RouterCapture(host.name, role, host.platform, str(peer), (), None, error=reason)
        if on_plan is not None:
            on_plan(commands)
        # The debugs this incident relies on: its own and those of the incident it joined.
        expected: set[str] = set()
        if incident_id is not None and self.store.armed_steps(host.name, incident_id):
            expected = Owned(a for a in self.store.armed_steps(host.name) if a.status == StepStatus.APPLIED).debugs
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
                            text = session.run(VERIFY_DEBUGS, check=False).text
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
