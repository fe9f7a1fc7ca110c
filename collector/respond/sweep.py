"""Put routers back without the state store: the router's own dead-man applets say how.

When the agent's memory is lost, corrupt, locked or somewhere else, `collector disarm
--all` still has one trustworthy record of what the tool changed on each router: the
`COLLECTOR_DEADMAN_*` applets it installed before arming. Their `cli command "..."`
actions ARE the restore commands (the logging as it was, the debugs and conditions to
switch off, the applet's own removal). The sweep reads them, accepts only commands of the
forms the tool itself writes as undo, runs them in the applet's order (its self-removal
last, so a sweep cut short leaves the countdown in place), and then checks the router:
logging must be what the applet says it was, and none of the tool's own debugs or
conditions (those its applets undo, or its recorded steps set) may be on. A debug or
condition nothing of the tool's names is taken as someone else's (an operator debugging
the router; the tool installs its applet before its first debug and removes it last): it
is left on, untouched, and listed as named by nothing of the tool's, not as a failure.

Device output is hostile until checked: every command is matched against a closed list of
forms with its values validated (addresses by `ipaddress`, levels by name, sizes by range)
before it is sent; anything else is refused and reported, never sent. Nothing here opens,
creates or writes a state store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal

from collector.respond.deadman import NAME_PREFIX
from collector.respond.debugstate import parse_debug_state
from collector.respond.facts import parse_logging_settings, refusal_in
from collector.respond.plan import LEVELS, condition_named_by
from collector.sessions import CommandRefused, SessionError

APPLETS_COMMAND = f"show running-config | section event manager applet {NAME_PREFIX}"
CHECK_COMMANDS = ("show logging", "show debugging", "show crypto debug-condition")

Mode = Literal["exec", "config"]

_HEADER = re.compile(rf"^event manager applet ({NAME_PREFIX}[A-Za-z0-9_]{{1,14}})(?: authorization bypass)?\s*$")
_EVENT = re.compile(r"^ event timer countdown time \d{1,7}(?: maxrun \d{1,4})?\s*$")
_ACTION = re.compile(r'^ action (\d{1,4}(?:\.\d{1,4})?) cli command "([^"$]*)"\s*$')
_LEVEL = "|".join(LEVELS) + "|[0-7]"
_DISCRIMINATOR = r"[A-Za-z][A-Za-z0-9_-]{0,7}"
_FORMS: tuple[tuple[str, Mode, re.Pattern[str]], ...] = (
    ("condition", "exec", re.compile(r"^no debug crypto condition peer (ipv4|ipv6) (\S+)$")),
    ("debug", "exec", re.compile(r"^no debug crypto (?!condition\b)[a-z0-9-]+(?: [a-z0-9-]+){0,2}$")),
    # the running-config line as it was (the responder restores it verbatim): size and level
    # may each be absent (IOS omits defaults), `xml` or a discriminator may be there
    ("buffered", "config", re.compile(
        rf"^logging buffered(?: xml| discriminator ({_DISCRIMINATOR}))?(?: (\d{{4,10}}))?(?: ({_LEVEL}))?"
        rf"(?: discriminator ({_DISCRIMINATOR}))?$")),
    ("console", "config", re.compile(rf"^logging console ({_LEVEL})$")),
    ("monitor", "config", re.compile(rf"^logging monitor ({_LEVEL})$")),
    ("no-logging", "config", re.compile(r"^no logging (buffered|console|monitor)$")),
    ("applet", "config", re.compile(rf"^no event manager applet ({NAME_PREFIX}[A-Za-z0-9_]{{1,14}})$")),
)
_MODE_SWITCH = {"enable": None, "configure terminal": "config", "end": "exec"}
# `show debugging` names of the debugs the tool itself turns on (debugstate.DebugState.debugs)
_OWN_DEBUG_NAMES = ("isakmp", "ipsec", "ikev2")


@dataclass(frozen=True, slots=True)
class RestoreCommand:
    """One accepted applet command: its text exactly as sent, its mode and what it sets."""

    command: str
    mode: Mode
    kind: str  # condition | debug | buffered | console | monitor | no-logging | applet


@dataclass(frozen=True, slots=True)
class Applet:
    """One of the tool's dead-man applets as read from the running configuration."""

    name: str
    commands: tuple[RestoreCommand, ...]  # accepted, in the applet's order
    refused: tuple[str, ...]  # lines or commands not of a known undo form: never sent


@dataclass(frozen=True, slots=True)
class ExpectedLogging:
    """Logging as the applets say it was before arming (None = the applet does not say;
    a size of None: the line named none, so the platform's default, not compared)."""

    buffered: tuple[int | None, str] | Literal["off"] | None = None
    console: str | None = None  # a level, "off", or None
    monitor: str | None = None


@dataclass
class SweepResult:
    """What the sweep did on one router, and whether the router is back as it was."""

    router: str
    applets: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # commands sent and accepted
    refused: list[str] = field(default_factory=list)  # applet text not of a known undo form: not sent
    not_restored: list[str] = field(default_factory=list)  # router refusals, logging that differs
    still_on: list[str] = field(default_factory=list)  # the tool's own debugs / conditions seen after the sweep
    not_ours: list[str] = field(default_factory=list)  # someone else's debugs / conditions: left on
    error: str | None = None  # the router could not be reached or the session failed

    @property
    def clean(self) -> bool:
        return self.error is None and not self.not_restored and not self.still_on

    def line(self) -> str:
        """One line for the operator: what was restored, and what was not."""
        if self.error is not None:
            done = f"; before that restored: {'; '.join(self.restored)}" if self.restored else ""
            return f"NOT clean: {self.error}{done}"
        head = "clean" if self.clean else "NOT clean"
        parts = [f"applets {', '.join(self.applets)}" if self.applets else f"no {NAME_PREFIX}* applet"]
        if self.restored:
            parts.append(f"restored: {'; '.join(self.restored)}")
        if self.not_restored:
            parts.append(f"could not restore: {'; '.join(self.not_restored)}")
        if self.refused:
            parts.append(f"not sent (not a known undo form): {'; '.join(self.refused)}")
        if self.still_on:
            parts.append(f"still on: {', '.join(self.still_on)}")
        if self.not_ours:
            parts.append(f"left on (no applet or record of the tool names them): {', '.join(self.not_ours)}")
        elif not self.still_on:
            parts.append("no crypto debug, no debug condition")
        return f"{head}: " + "; ".join(parts)


# ---------------------------------------------------------------------- reading applets


def accept_command(command: str, mode: Mode) -> RestoreCommand | None:
    """The command as a `RestoreCommand` if it is one of the known undo forms, valid in
    `mode`, with valid values; None otherwise (it must then not be sent)."""
    for kind, form_mode, pattern in _FORMS:
        match = pattern.fullmatch(command)
        if match is None:
            continue
        if form_mode != mode:
            return None
        if kind == "condition":
            family, text = match.groups()
            try:
                address = ip_address(text)
            except ValueError:
                return None
            wanted = IPv4Address if family == "ipv4" else IPv6Address
            if not isinstance(address, wanted) or str(address) != text.lower():
                return None
        if kind == "buffered" and match.group(2) and not 4096 <= int(match.group(2)) <= 2_147_483_647:
            return None
        return RestoreCommand(command, mode, kind)
    return None


def parse_applets(text: str) -> list[Applet]:
    """The tool's applets in `show running-config | section ...` output, strictly.

    Each `cli command` is taken in label order (EEM compares labels as strings) with the
    mode the applet's own `configure terminal` / `end` put it in. A line of an applet
    that is not its header, a countdown event or a `cli command` action is refused, and so
    is every command not of a known undo form."""
    applets: list[Applet] = []
    current: tuple[str, list[tuple[str, str]], list[str]] | None = None

    def finish() -> None:
        if current is not None:
            applets.append(_applet(*current))

    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        header = _HEADER.match(line)
        if header:
            finish()
            current = (header.group(1), [], [])
            continue
        if current is None:
            continue  # not inside one of our applets (the filter may pass other text)
        if not line.startswith(" "):
            finish()
            current = None
            continue
        action = _ACTION.match(line)
        if action:
            current[1].append((action.group(1), action.group(2)))
        elif not _EVENT.match(line):
            current[2].append(line.strip())
    finish()
    return applets


def _applet(name: str, actions: list[tuple[str, str]], refused: list[str]) -> Applet:
    accepted: list[RestoreCommand] = []
    mode: Mode = "exec"
    for _label, command in sorted(actions, key=lambda a: a[0]):
        if command in _MODE_SWITCH:
            mode = _MODE_SWITCH[command] or mode
            continue
        found = accept_command(command, mode)
        if found is None:
            refused.append(command)
        else:
            accepted.append(found)
    return Applet(name, tuple(accepted), tuple(refused))


def expected_logging(applets: Iterable[Applet]) -> tuple[ExpectedLogging, list[str]]:
    """What logging should be once the applets' commands ran, and any disagreement
    between applets (two applets restoring the same thing to different values)."""
    values: dict[str, object] = {}
    conflicts: list[str] = []
    for applet in applets:
        for c in applet.commands:
            key, value = _logging_value(c)
            if key is None:
                continue
            if key in values and values[key] != value:
                conflicts.append(f"applets disagree on logging {key} ({_show(values[key])} / {_show(value)})")
            values[key] = value
    return ExpectedLogging(**values), conflicts  # type: ignore[arg-type]


def _logging_value(c: RestoreCommand) -> tuple[str | None, object]:
    words = c.command.split()
    if c.kind == "buffered":
        match = _FORMS[2][2].fullmatch(c.command)
        assert match is not None
        size = int(match.group(2)) if match.group(2) else None
        return "buffered", (size, _level_name(match.group(3) or "debugging"))  # IOS omits the default level
    if c.kind in ("console", "monitor"):
        return c.kind, _level_name(words[-1])
    if c.kind == "no-logging":
        return words[-1], "off"
    return None, None


def _level_name(level: str) -> str:
    return LEVELS[int(level)] if level.isdigit() else level


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return f"{value[0]} {value[1]}" if value[0] is not None else f"default size {value[1]}"
    return str(value)


# ---------------------------------------------------------------------- checking the router


def logging_mismatches(show_logging: str, expected: ExpectedLogging) -> list[str]:
    """Where the router's logging differs from what the applets say it was."""
    have = parse_logging_settings(show_logging)
    found: list[str] = []
    if expected.buffered is not None:
        now = "off" if have.buffered_level is None else (have.buffered_size, have.buffered_level)
        want = expected.buffered
        if want != "off" and now != "off" and want[0] is None:
            now = (None, now[1])  # the applet's line named no size: only the level is known
        if now != want:
            found.append(f"logging buffered is {_show(now)}, the applet says it was {_show(expected.buffered)}")
    for facility in ("console", "monitor"):
        want = getattr(expected, facility)
        if want is None:
            continue
        now = getattr(have, f"{facility}_level") or "off"
        if now != want:
            found.append(f"logging {facility} is {now}, the applet says it was {want}")
    return found


@dataclass(frozen=True, slots=True)
class Ownership:
    """The debugs (by `show debugging` name) and peer conditions the tool itself set."""

    debugs: frozenset[str] = frozenset()
    conditions: frozenset[str] = frozenset()

    def __or__(self, other: Ownership) -> Ownership:
        return Ownership(self.debugs | other.debugs, self.conditions | other.conditions)


def owned_by_applets(applets: Iterable[Applet]) -> Ownership:
    """What the applets' undo commands switch off: the tool turned those on."""
    debugs: set[str] = set()
    conditions: set[str] = set()
    for applet in applets:
        for c in applet.commands:
            if c.kind == "debug":
                name = c.command.split(" ", 3)[3]  # `no debug crypto NAME`
                debugs.add(name if name.split()[0] in _OWN_DEBUG_NAMES else f"crypto {name}")
            elif c.kind == "condition":
                peer = condition_named_by(c.command[3:])
                if peer is not None:
                    conditions.add(peer)
    return Ownership(frozenset(debugs), frozenset(conditions))


def debugs_on(show_debugging: str, show_conditions: str, ours: Ownership) -> tuple[list[str], list[str]]:
    """(the tool's own debugs and conditions still on, everyone else's that are on).

    Conditions are recognised by the peer address anywhere in `show crypto
    debug-condition` (no public capture of its wording exists)."""
    state = parse_debug_state(show_debugging, show_conditions)
    own = [f"debug crypto {name}" for name in sorted(state.debugs & ours.debugs)]
    own += [f"condition peer {peer}" for peer in sorted(state.peer_conditions & ours.conditions)]
    if ours.debugs and _refused(show_debugging):
        own.append("`show debugging` refused: debugs not verified")
    if ours.conditions and _refused(show_conditions):
        own.append("`show crypto debug-condition` refused: conditions not verified")
    others = [f"debug {name}" for name in sorted(state.debugs - ours.debugs)]
    others += [f"condition peer {peer}" for peer in sorted(state.peer_conditions - ours.conditions)]
    return own, others


def _refused(text: str) -> bool:
    return refusal_in(text) is not None or text.lstrip().startswith("%")


# ---------------------------------------------------------------------- the sweep


def applets_on(session) -> list[Applet]:
    """The tool's dead-man applets on a router, read only (nothing is changed): a restart
    that lost its store can learn from them which routers the tool left armed.

    Raises:
        SessionError: the router could not be read."""
    return parse_applets(session.run(APPLETS_COMMAND, check=False).text)


def sweep_router(session, router: str, recorded: Ownership = Ownership()) -> SweepResult:
    """Restore one router from its own applets through an open session (`RouterSession`).
    `recorded`: what the state store says the tool set there (its undo already ran), so
    that the check counts it as the tool's too.

    Never raises for the router's sake: a session failure ends in `SweepResult.error`."""
    result = SweepResult(router)
    try:
        applets = applets_on(session)
        result.applets = [a.name for a in applets]
        for applet in applets:
            result.refused += [f"{line!r} in {applet.name}" for line in applet.refused]
            # a logging command that was refused leaves logging unknown: never call that clean
            result.not_restored += [f"logging: the applet's {line!r} was not sent, so what it was is unknown"
                                    for line in applet.refused if "logging" in line.split()[:2]]
            _restore(session, applet, result)
        expected, conflicts = expected_logging(applets)
        result.not_restored += conflicts
        result.not_restored += logging_mismatches(session.run("show logging", check=False).text, expected)
        result.still_on, result.not_ours = debugs_on(session.run("show debugging", check=False).text,
                                                     session.run("show crypto debug-condition", check=False).text,
                                                     owned_by_applets(applets) | recorded)
    except SessionError as exc:
        result.error = exc.reason
    return result


def _restore(session, applet: Applet, result: SweepResult) -> None:
    """Send the applet's accepted commands in its order, its removal last (added when the
    applet lacks it). A command the router refuses is reported; the others still run."""
    commands = [c for c in applet.commands if c.kind != "applet"]
    commands.append(RestoreCommand(f"no event manager applet {applet.name}", "config", "applet"))
    for c in commands:
        try:
            if c.mode == "config":
                session.configure([c.command])
            else:
                session.run(c.command)
        except SessionError as exc:
            if not isinstance(exc, CommandRefused):
                raise
            result.not_restored.append(f"router refused {c.command!r}: {exc.reason}")
            continue
        result.restored.append(c.command)


def sweep_host(source, host, recorded: Ownership = Ownership()) -> SweepResult:
    """`sweep_router` on one host through a `SessionSource`. A router that cannot be
    reached is a result with `error`, not a raise."""
    try:
        with source.session(host) as session:
            return sweep_router(session, host.name, recorded)
    except SessionError as exc:
        return SweepResult(host.name, error=exc.reason)


def sweep_routers(source, hosts: Sequence, *, workers: int = 20) -> list[SweepResult]:
    """`sweep_host` on every host, a few at a time, in the hosts' order."""
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts))), thread_name_prefix="sweep") as pool:
        return list(pool.map(lambda host: sweep_host(source, host), hosts))
