"""Arm plans: the exact commands that arm one router, and their undo, before anything runs.

`build_arm_plan` turns a playbook, what we know about a router (`RouterFacts`) and the
other tunnel end into an `ArmPlan`: an ordered list of `Step`s, each a (do, undo) pair.
The agent persists every step in the state store before running it and disarms by
running the undo lists in reverse (`disarm_commands`), on every path.

Order of the steps (docs/domain.md §5):
  1. logging: log buffer size/level for the debugs; `no logging console` and
     `no logging monitor` only where they were on. Each undo restores exactly the
     recorded setting.
  2. the on-box dead-man applet (`collector.respond.deadman`): it replays every other
     undo if the agent never comes back. Its own undo removes it.
  3. the playbook's arm steps, with placeholders filled: the crypto debug condition
     first, then the crypto debugs.

Safety: placeholders are filled only from typed, validated values: the peer must be an
`ipaddress` object, trigger fields must already be parsed (`Trigger.match`), and each is
checked again here. No `clear ...` command can enter a plan (`RemediationRefused`);
`remediation_commands` is the only way to them, and only with remediate.enabled.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal, get_args

from collector.playbook import (
    FieldValue,
    LoggingLevel,
    Playbook,
    format_duration,
    is_clear_command,
    platform_tag,
    validate_field,
)
from collector.core.states import StepScope
from collector.errors import SafetyRefusal
from collector.core.steps import Mode, Step
from collector.respond.debugstate import DebugState
from collector.respond.deadman import DeadmanApplet, DeadmanError, applet_name, build_applet
from collector.textlines import has_control_character

PeerAddress = IPv4Address | IPv6Address

LEVELS: tuple[str, ...] = get_args(LoggingLevel)  # index = syslog severity number


class PlanError(SafetyRefusal, ValueError):
    """A plan cannot be built safely (bad value, unknown setting, missing placeholder)."""


class RemediationRefused(PlanError):
    """A state-changing `clear ...` command was asked for outside an enabled remediate."""


# `logging buffered [discriminator NAME | xml] [SIZE] [LEVEL]` exactly as IOS writes it in
# running-config: a line read from the device goes back into a command only when it
# matches this (docs/domain.md §2.11; real-routers.md: a discriminator would be lost by a
# reconstructed restore).
_LEVEL_WORDS = "|".join(get_args(LoggingLevel))
BUFFERED_CONFIG_LINE = re.compile(
    r"^(?:no )?logging buffered"
    r"(?: xml| discriminator [A-Za-z0-9_\-]{1,32})?"
    r"(?: (?:409[6-9]|[5-9]\d{3}|[1-9]\d{4,9}))?"
    r"(?: (?:" + _LEVEL_WORDS + r"|[0-7]))?$"
)
_DEBUG_COMMAND = re.compile(r"^debug crypto (isakmp|ikev2|ipsec)$")
_CONDITION_COMMAND = re.compile(r"^debug crypto condition peer (?:ipv4|ipv6) (\S+)$")


def debug_named_by(command: str) -> str | None:
    """The debug a `debug crypto isakmp|ikev2|ipsec` command turns on (its `show debugging`
    name), None for any other command.

    Raises:
        Nothing: any other command gives None.
    """
    match = _DEBUG_COMMAND.match(command.strip())
    return match.group(1) if match else None


def condition_named_by(command: str) -> str | None:
    """The peer address a `debug crypto condition peer ipv4|ipv6 X` command sets (normal
    form), None for any other command.

    Raises:
        Nothing: any other command, or an address that does not parse, gives None.
    """
    match = _CONDITION_COMMAND.match(command.strip())
    if not match:
        return None
    try:
        return str(ip_address(match.group(1)))
    except ValueError:
        return None


def check_buffered_config(line: str) -> str:
    """A `logging buffered ...` line from running-config, checked before it is reused as a
    restore command.

    Raises:
        PlanError: the line is not the IOS syntax this tool knows."""
    text = " ".join(line.split())
    if not BUFFERED_CONFIG_LINE.fullmatch(text):
        raise PlanError(f"running-config line {line!r} is not a `logging buffered` line this tool can restore")
    return text


# ---------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """Logging as recorded from `show logging` before arming. None = disabled / absent."""

    console_level: str | None = None
    monitor_level: str | None = None
    buffered_level: str | None = None
    buffered_size: int | None = None  # bytes, from `Log Buffer (N bytes):`
    # The `logging buffered ...` lines of running-config, verbatim (checked): the restore
    # re-enters them. Empty when the router runs the default or they were not read.
    buffered_config: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for line in self.buffered_config:
            check_buffered_config(line)
        # These values come from device output and go back into commands: check them.
        for name in ("console_level", "monitor_level", "buffered_level"):
            level = getattr(self, name)
            if level is not None and level not in LEVELS:
                raise PlanError(f"{name} {level!r} is not a logging level ({', '.join(LEVELS)})")
        size = self.buffered_size
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or not 4096 <= size <= 2_147_483_647
        ):
            raise PlanError(f"buffered_size {size!r} is outside 4096..2147483647")


@dataclass(frozen=True, slots=True)
class RouterFacts:
    """What the pre-flight learned about one router."""

    name: str  # inventory name
    platform: str  # inventory device_type, e.g. cisco_ios / cisco_xe (informational)
    os_family: Literal["ios", "iosxe"]  # from `show version`; decides platform conditions
    ike: Literal["isakmp", "ikev2"]  # IKE version of the tunnel to the peer
    logging: LoggingSettings
    dmvpn: bool | None = None  # has an mGRE tunnel (playbook `dmvpn:` conditions); None: unknown

    def __post_init__(self) -> None:
        if self.os_family not in ("ios", "iosxe"):
            raise PlanError(f"{self.name}: os_family {self.os_family!r} is not ios or iosxe")
        if self.ike not in ("isakmp", "ikev2"):
            raise PlanError(f"{self.name}: ike {self.ike!r} is not isakmp or ikev2")

    @property
    def platform_tag(self) -> str:
        """The tag playbook conditions use: cisco_xe for IOS-XE, cisco_ios otherwise."""
        return platform_tag(self.os_family)


# ---------------------------------------------------------------------- plan values


@dataclass(frozen=True, slots=True)
class ArmPlan:
    """Everything the agent will send to one router for one incident, decided up front."""

    router: str
    peer: PeerAddress | None
    incident_id: str
    window: timedelta
    facts: RouterFacts
    steps: tuple[Step, ...]  # run in order; empty when the playbook arms nothing here
    deadman: DeadmanApplet | None  # None when there is nothing to arm (or arming without it was allowed)
    capture: tuple[str, ...]  # on the repeat, before disarming
    verify: tuple[str, ...]  # after disarming
    skipped: tuple[str, ...] = ()  # arm steps not sent: their debug or condition was already on

    @property
    def is_empty(self) -> bool:
        return not self.steps


@dataclass(frozen=True, slots=True)
class DisarmBatch:
    """The undo of one step, in disarm order; `step_index` is the step's place in the plan."""

    step_index: int
    mode: Mode
    commands: tuple[str, ...]
    why: str


# ---------------------------------------------------------------------- values -> text


def check_peer(peer: object) -> PeerAddress:
    """The peer as it may appear in a command.

    Raises:
        PlanError: not an ipaddress object, scoped, unspecified or multicast."""
    if not isinstance(peer, (IPv4Address, IPv6Address)):
        raise PlanError(f"peer must be an ipaddress IPv4Address/IPv6Address, not {type(peer).__name__}")
    if isinstance(peer, IPv6Address) and peer.scope_id is not None:
        raise PlanError(f"peer {peer} has a scope id; scoped addresses are not accepted")
    if peer.is_unspecified or peer.is_multicast:
        raise PlanError(f"peer {peer} is not a unicast tunnel endpoint")
    if ip_address(str(peer)) != peer:  # the text form must mean the same address
        raise PlanError(f"peer {peer!r} does not round-trip through its text form")
    return peer


def _field_text(playbook: Playbook, name: str, value: object) -> str:
    """A trigger field's value as command text; typed values only, checked again."""
    trigger = playbook.trigger
    kind = trigger.field_types.get(name) if trigger is not None else None
    if kind is None:
        raise PlanError(f"{name!r} is not a field of playbook {playbook.name}'s trigger")
    if kind in ("ipv4", "ipv6", "ip"):
        address = check_peer(value)
        if (kind == "ipv4" and not isinstance(address, IPv4Address)) or (
            kind == "ipv6" and not isinstance(address, IPv6Address)
        ):
            raise PlanError(f"field {name}: {value} is not an {kind} address")
        return str(address)
    if kind in ("int", "hex32"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PlanError(f"field {name}: expected a non-negative int, got {value!r}")
        if kind == "hex32":
            if value > 0xFFFFFFFF:
                raise PlanError(f"field {name}: {value} does not fit 32 bits")
            return f"0x{value:08X}"
        return str(value)
    if not isinstance(value, str):
        raise PlanError(f"field {name}: expected an interface name, got {type(value).__name__}")
    try:
        return str(validate_field(kind, value))
    except ValueError as exc:
        raise PlanError(f"field {name}: {exc}") from None


def _values(
    playbook: Playbook,
    facts: RouterFacts,
    peer: PeerAddress | None,
    fields: Mapping[str, FieldValue] | None,
) -> dict[str, str]:
    values = {"ike": facts.ike}
    if peer is not None:
        peer = check_peer(peer)
        values["peer"] = str(peer)
        values["peer_family"] = "ipv4" if isinstance(peer, IPv4Address) else "ipv6"
    for name, value in (fields or {}).items():
        if name in ("ike", "peer", "peer_family"):
            raise PlanError(f"{name!r} is set by the planner, not by trigger fields")
        values[name] = _field_text(playbook, name, value)
    return values


def _check_ike(versions: tuple[str, ...]) -> None:
    for version in versions:
        if version not in ("isakmp", "ikev2"):
            raise PlanError(f"ike {version!r} is not isakmp or ikev2")


def _scope_of(*commands: Iterable[str]) -> StepScope:
    """A step whose commands name the peer serves one flow; every other step the router."""
    names = {name for group in commands for command in group
             for _text, name, _spec, _conv in string.Formatter().parse(command) if name}
    return StepScope.FLOW if "peer" in names else StepScope.ROUTER


def _render(command: str, values: Mapping[str, str]) -> str:
    try:
        text = command.format_map(values)
    except KeyError as exc:
        raise PlanError(f"{command!r} needs {{{exc.args[0]}}}, which is not known here") from None
    if is_clear_command(text):
        raise RemediationRefused(f"{text!r}: clear commands run only from an enabled remediate block")
    if has_control_character(text):
        raise PlanError(f"{text!r} contains a control character")
    return text


# ---------------------------------------------------------------------- building


def _more_verbose(a: str, b: str) -> str:
    return a if LEVELS.index(a) >= LEVELS.index(b) else b


_SIZE_STEP = re.compile(r"^logging buffered (\d+) [a-z]+$")  # the form `logging_steps` writes


def resizes_log_buffer(steps: Iterable[Step], size: int | None) -> bool:
    """Would these steps change the size of a buffer of `size` bytes (which empties it on
    IOS)? Any `logging buffered` command not of `logging_steps`' own form counts as one."""
    for step in steps:
        for command in step.do:
            if command.startswith(("logging buffered", "no logging buffered")):
                match = _SIZE_STEP.match(command)
                if match is None or int(match.group(1)) != size:
                    return True
    return False


def logging_steps(playbook: Playbook, recorded: LoggingSettings) -> tuple[Step, ...]:
    """Logging changes for arming, each undone to exactly what `recorded` says: the
    running-config `logging buffered` lines when known, else the header's size and level.
    Nothing changes when the buffer is already as large and as verbose as the policy.

    Raises:
        PlanError: the buffer size is unknown (the change could not be restored)."""
    steps: list[Step] = []
    policy = playbook.logging
    if recorded.buffered_level is None:
        target_size, target_level = policy.buffered_size, policy.buffered_level
        restore = ("no logging buffered",)
    else:
        if recorded.buffered_size is None:
            raise PlanError("log buffer size unknown: refusing a change that could not be restored")
        # Never shrink the buffer or log less than the router already does.
        target_size = max(recorded.buffered_size, policy.buffered_size)
        target_level = _more_verbose(recorded.buffered_level, policy.buffered_level)
        lines = [line for line in recorded.buffered_config if not line.startswith("no ")]
        plain = tuple(line for line in lines if not line.startswith("logging buffered xml"))
        xml = tuple(line for line in lines if line.startswith("logging buffered xml"))
        # The exact running-config lines (size, level, discriminator) when there are some;
        # a router on the default has none, so the header's values are re-entered. An
        # `xml` line is re-entered as it was, after.
        restore = (plain or (f"logging buffered {recorded.buffered_size} {recorded.buffered_level}",)) + xml
    if (recorded.buffered_level, recorded.buffered_size) != (target_level, target_size):
        steps.append(
            Step(
                do=(f"logging buffered {target_size} {target_level}",),
                undo=restore,
                mode="config",
                why="keep the debug output in a large enough log buffer",
            )
        )
    if recorded.console_level is not None:
        steps.append(
            Step(
                do=("no logging console",),
                undo=(f"logging console {recorded.console_level}",),
                mode="config",
                why="debug output on the console can freeze the router",
            )
        )
    if recorded.monitor_level is not None:
        steps.append(
            Step(
                do=("no logging monitor",),
                undo=(f"logging monitor {recorded.monitor_level}",),
                mode="config",
                why="no debug output to terminal sessions",
            )
        )
    return tuple(steps)


def build_arm_plan(
    playbook: Playbook,
    facts: RouterFacts,
    peer: PeerAddress | None,
    incident_id: str,
    window: timedelta | None = None,
    fields: Mapping[str, FieldValue] | None = None,
    *,
    already_on: DebugState | None = None,
    authorization_bypass: bool = False,
    with_deadman: bool = True,
    include_logging: bool = True,
    also_ike: tuple[str, ...] = (),
) -> ArmPlan:
    """The full plan for one router: logging -> dead-man applet -> playbook arm steps.

    `peer` is the other tunnel end as seen from this router (an ipaddress object).
    `window` defaults to the playbook's arm window and may not exceed max_window.
    `fields` are validated trigger fields, only meaningful on the router that logged.
    `already_on`: the router's debugs and conditions before arming; an arm step whose
    debug or condition is already on is left out (and so is its undo: the tool never
    switches off what it did not switch on). `authorization_bypass` goes on the applet
    header; `with_deadman=False` (only when the playbook allows arming without it) leaves
    the applet out. `include_logging=False` (a flow joining an armed router) leaves the
    logging steps out: the router's first incident made them. `also_ike`: IKE versions
    armed as well as `facts.ike` (when the version toward the peer is not known, both).

    Raises:
        PlanError: a value cannot be used safely, the window is out of range, or the
            applet cannot be built.
    """
    if not playbook.is_watch:
        raise PlanError(f"playbook {playbook.name} has no trigger: nothing to arm")
    window = playbook.arm_window if window is None else window
    if not timedelta(0) < window <= playbook.max_window:
        raise PlanError(
            f"window {format_duration(window)} is outside 1s..{format_duration(playbook.max_window)} (max_window)"
        )
    try:
        applet = applet_name(incident_id)
    except DeadmanError as exc:
        raise PlanError(str(exc)) from None
    values = _values(playbook, facts, peer, fields)
    _check_ike(also_ike)

    arm: list[Step] = []
    skipped: list[str] = []
    for spec in playbook.arm:
        for ike in (facts.ike, *also_ike):
            if not spec.applies_to(facts.platform_tag, ike):
                continue
            by_version = {**values, "ike": ike}
            step = Step(
                do=tuple(_render(c, by_version) for c in spec.do),
                undo=tuple(_render(c, by_version) for c in spec.undo),
                mode=spec.mode,
                why=spec.why or "playbook arm step",
                scope=_scope_of(spec.do, spec.undo),
            )
            if step in arm:
                continue
            already = already_set(step, already_on)
            if already:
                skipped.append(f"{' / '.join(step.do)}: {already} already on before arming; left as it is")
                continue
            arm.append(step)

    steps: tuple[Step, ...] = ()
    deadman: DeadmanApplet | None = None
    if arm:  # nothing to arm: no logging change and no applet either
        before = logging_steps(playbook, facts.logging) if include_logging else ()
        protected = list(before) + arm
        if not with_deadman:
            steps = (*before, *arm)
        else:
            countdown = math.ceil((window + playbook.guards.deadman_grace).total_seconds())
            try:
                # Only the tool's own undo, conditions included (never a condition reset:
                # someone else's condition may be set). Flows joining later re-enter the
                # applet with their own condition's undo (Responder.join).
                deadman = build_applet(applet, countdown, [(s.mode, s.undo) for s in reversed(protected)],
                                       authorization_bypass=authorization_bypass)
            except DeadmanError as exc:
                raise PlanError(str(exc)) from None
            install = Step(
                do=deadman.config_lines,
                undo=deadman.removal_commands,
                mode="config",
                why=f"dead-man switch: undo everything on the router after {format_duration(window + playbook.guards.deadman_grace)}",
            )
            steps = (*before, install, *arm)

    return ArmPlan(
        router=facts.name,
        peer=peer,
        incident_id=incident_id,
        window=window,
        facts=facts,
        steps=steps,
        deadman=deadman,
        capture=capture_commands(playbook, facts, peer, fields, also_ike),
        verify=verify_commands(playbook, facts),
        skipped=tuple(skipped),
    )


def already_set(step: Step, state: DebugState | None) -> str | None:
    """What of `step` is already on the router (`debug crypto ipsec`, `condition peer X`),
    or None when the step would change something.

    Raises:
        Nothing: an unknown debug state (None) gives None.
    """
    if state is None or step.mode != "exec":
        return None
    for command in step.do:
        debug = debug_named_by(command)
        if debug is not None and debug in state.debugs:
            return f"debug crypto {debug}"
        condition = condition_named_by(command)
        if condition is not None and condition in state.peer_conditions:
            return f"condition peer {condition}"
    return None


def disarm_commands(plan: ArmPlan, applied: Iterable[int] | None = None) -> tuple[DisarmBatch, ...]:
    """The undo of each step in reverse order. `applied` limits it to those step indexes
    (e.g. the steps the state store shows as pending/applied after a crash).

    Raises:
        Nothing: indexes in `applied` that the plan lacks are ignored.
    """
    wanted = None if applied is None else set(applied)
    return tuple(
        DisarmBatch(step_index=i, mode=step.mode, commands=step.undo, why=step.why)
        for i, step in reversed(list(enumerate(plan.steps)))
        if wanted is None or i in wanted
    )


def capture_commands(
    playbook: Playbook,
    facts: RouterFacts,
    peer: PeerAddress | None = None,
    fields: Mapping[str, FieldValue] | None = None,
    also_ike: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """The capture list for this router: conditions applied, placeholders filled; with
    `also_ike`, the commands of those IKE versions too.

    Raises:
        PlanError: a placeholder cannot be filled with a validated value."""
    values = _values(playbook, facts, peer, fields)
    _check_ike(also_ike)
    commands: list[str] = []
    for spec in playbook.capture:
        for ike in (facts.ike, *also_ike):
            if spec.applies_to(facts.platform_tag, ike, facts.dmvpn):
                command = _render(spec.command, {**values, "ike": ike})
                if command not in commands:
                    commands.append(command)
    return tuple(commands)


def verify_commands(playbook: Playbook, facts: RouterFacts | None = None) -> tuple[str, ...]:
    """Post-disarm checks (no placeholders); filtered by conditions when facts are known.

    Raises:
        Nothing.
    """
    return tuple(
        spec.command
        for spec in playbook.verify
        if facts is None or spec.applies_to(facts.platform_tag, facts.ike)
    )


def remediation_commands(
    playbook: Playbook,
    facts: RouterFacts,
    peer: PeerAddress | None = None,
    fields: Mapping[str, FieldValue] | None = None,
) -> tuple[str, ...]:
    """The remediate steps, rendered.

    Raises:
        RemediationRefused: remediate.enabled is not true.
        PlanError: a placeholder cannot be filled."""
    if not playbook.remediate.enabled:
        raise RemediationRefused(
            f"playbook {playbook.name}: remediate is not enabled; no clear command will run"
        )
    values = _values(playbook, facts, peer, fields)
    out = []
    for spec in playbook.remediate.steps:
        if spec.applies_to(facts.platform_tag, facts.ike):
            try:
                text = spec.command.format_map(values)
            except KeyError as exc:
                raise PlanError(f"{spec.command!r} needs {{{exc.args[0]}}}") from None
            out.append(text)
    return tuple(out)


# ---------------------------------------------------------------------- dry run


def render_dry_run(plans: Sequence[ArmPlan]) -> str:
    """Per router, the exact commands in the order they would run: arm (do + undo),
    capture, disarm, verify. Nothing here touches a router.

    Raises:
        Nothing.
    """
    out: list[str] = []
    for plan in plans:
        facts = plan.facts
        out.append(
            f"== {plan.router} ({facts.os_family}, {facts.ike}) peer {plan.peer or '-'} "
            f"incident {plan.incident_id} window {format_duration(plan.window)}"
        )
        out.extend(f"not sent (already on): {s}" for s in plan.skipped)
        if plan.is_empty:
            out.append("arm: nothing to arm on this router")
        else:
            out.append("arm, in order:")
            for i, step in enumerate(plan.steps, start=1):
                out.append(f"  step {i} [{step.mode}] {step.why}")
                out.extend(f"    do:   {c}" for c in step.do)
                out.extend(f"    undo: {c}" for c in step.undo)
        out.append("capture on the repeat:")
        out.extend(f"  {c}" for c in plan.capture or ("(none)",))
        if not plan.is_empty:
            out.append("disarm, in order:")
            for batch in disarm_commands(plan):
                out.extend(f"  [{batch.mode}] {c}  (undo of step {batch.step_index + 1})" for c in batch.commands)
        out.append("verify after disarm:")
        out.extend(f"  {c}" for c in plan.verify or ("(none)",))
        out.append("")
    return "\n".join(out)
