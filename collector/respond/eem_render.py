"""On-box applets for sites where no agent may log in (Cisco 116005, done by EEM alone).

`render_applets` turns the playbook and one flow (receiver, sender, the address each knows
the other by, optionally the SPI) into EEM applets for both routers. Nothing here talks to
a router: the operator pastes the text. Per router, in the order it is pasted:

    <NAME>_END  event timer countdown: after --disarm-after, (sender: capture into the
                flash file, then) undo everything and remove the three applets
    <NAME>_CAP  receiver only, event syslog on the flow's RECVD_PKT_INV_SPI line with the
                playbook's occurs/within: capture into the flash file, undo, remove all
    <NAME>_ARM  event timer countdown, seconds after pasting: logging for the debugs,
                then the playbook's peer-conditional debugs (armed ahead, as 116005 asks:
                only debugs already running when the fault repeats show its cause)

END comes first so that no ARM can exist without the countdown that undoes it. The arm
steps, their undo and the capture list come from `collector.respond.plan` (the agent's
own planner) and the CLI actions from `collector.respond.deadman`; this module only adds
the events, the flash file and the caveats.

Every value placed in a command is typed (ipaddress objects, ints) or matched against a
strict pattern here; `EemRenderError` (one line) otherwise.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Address

from collector.errors import UserInputError
from collector.playbook import Playbook, format_duration, platform_tag
from collector.respond.deadman import DeadmanError, MAX_COUNTDOWN_SECONDS, applet_lines, cli_sequence
from collector.respond.debugstate import DebugState
from collector.respond.plan import LoggingSettings, PlanError, RouterFacts, build_arm_plan

__all__ = [
    "ARM_DELAY_SECONDS",
    "EemOptions",
    "EemRenderError",
    "EemRouter",
    "RenderedRouter",
    "render_applets",
    "syslog_pattern",
]

ARM_DELAY_SECONDS = 5  # ARM fires this long after it is configured (END and CAP are in by then)
ARM_MAXRUN, RUN_MAXRUN = 60, 600  # EEM's default maxrun of 20 s is too short for `show logging` to flash
INV_SPI_MNEMONIC = "%CRYPTO-4-RECVD_PKT_INV_SPI"
# Commands whose output holds the router's keys: a flash file leaves the box unredacted.
SECRET_OUTPUTS = ("show running-config", "show startup-config")

_ROUTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")  # also part of the flash file name
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_FILESYSTEM = re.compile(r"^[a-z][a-z0-9-]{0,15}:$")


class EemRenderError(UserInputError):
    """The applets cannot be rendered from what was given; the message is one line."""


@dataclass(frozen=True, slots=True)
class EemRouter:
    """One tunnel end as the renderer needs it."""

    name: str  # inventory name
    platform: str  # cisco_ios | cisco_xe (inventory)
    peer: IPv4Address  # the other end, as this router knows it
    logging: LoggingSettings | None  # as read on the router before pasting; None: leave logging alone
    already_on: DebugState | None = None  # its debugs and conditions before pasting; None: not given


@dataclass(frozen=True, slots=True)
class EemOptions:
    disarm_after: timedelta = timedelta(hours=24)
    spi: int | None = None  # only this SPI triggers the capture; None: any SPI of the flow
    ike: tuple[str, ...] = ("isakmp", "ikev2")  # IKE debugs armed (both when the version is not known)
    authorization_bypass: bool = False  # `authorization bypass` on the applets (EEM 3.1 and later)
    cli_username: str | None = None  # render `event manager session cli username NAME`
    filesystem: str = "flash:"


@dataclass(frozen=True, slots=True)
class RenderedRouter:
    name: str
    role: str  # "receiver" | "sender"
    config_lines: tuple[str, ...]  # configuration mode, in order
    notes: tuple[str, ...]  # caveats and what to check, one sentence or two each
    flash_file: str
    applets: tuple[str, ...]

    def text(self) -> str:
        """The notes as `!` comments, then the config: a file that can be pasted as it is."""
        out = [f"! collector eem render: {self.name} ({self.role}); paste in configuration mode"]
        out += [f"! - {note}" for note in self.notes]
        out += ["!", *self.config_lines, "end"]
        return "\n".join(out) + "\n"


def syslog_pattern(source: IPv4Address, spi: int | None = None) -> str:
    """The flow's RECVD_PKT_INV_SPI line as an IOS regular expression: from `source`
    (srcaddr, not a longer address that starts with it), with `spi` when given."""
    if not isinstance(source, IPv4Address):
        raise EemRenderError(f"{source!r}: the syslog pattern takes an IPv4 address")
    pattern = INV_SPI_MNEMONIC + ".*"
    if spi is not None:
        if isinstance(spi, bool) or not isinstance(spi, int) or not 0 <= spi <= 0xFFFFFFFF:
            raise EemRenderError(f"SPI {spi!r} is not a 32-bit number")
        pattern += f"spi=0x{spi:08X}.*"  # IOS prints 8 upper-case hex digits
    return pattern + "srcaddr=" + str(source).replace(".", r"\.") + "([^0-9]|$)"


def _check_router(router: EemRouter) -> None:
    if not isinstance(router.name, str) or not _ROUTER_NAME.fullmatch(router.name):
        raise EemRenderError(
            f"router name {router.name!r}: letters, digits, '_', '.', '-' (at most 41) are needed "
            "to name its flash file"
        )
    if router.platform not in ("cisco_ios", "cisco_xe"):
        raise EemRenderError(f"{router.name}: platform {router.platform!r} is not cisco_ios or cisco_xe")
    if not isinstance(router.peer, IPv4Address):
        raise EemRenderError(f"{router.name}: peer {router.peer!r} is not an IPv4 address "
                             "(the IPv6 form of the invalid-SPI line is not known)")


def _check_options(playbook: Playbook, options: EemOptions) -> None:
    if playbook.trigger is None or playbook.trigger.parser != "invalid-spi":
        raise EemRenderError(f"playbook {playbook.name}: eem render needs a playbook with trigger "
                             "`parser: invalid-spi` (the applet's syslog pattern is that message)")
    seconds = options.disarm_after.total_seconds()
    if not playbook.within.total_seconds() <= seconds <= MAX_COUNTDOWN_SECONDS:
        raise EemRenderError(
            f"disarm after {format_duration(options.disarm_after)}: give {format_duration(playbook.within)} "
            f"(the playbook's within) to {MAX_COUNTDOWN_SECONDS // 86400} days"
        )
    if not options.ike or any(v not in ("isakmp", "ikev2") for v in options.ike):
        raise EemRenderError(f"ike {options.ike!r}: isakmp, ikev2 or both")
    if options.cli_username is not None and not _USERNAME.fullmatch(options.cli_username):
        raise EemRenderError(f"cli username {options.cli_username!r}: letters, digits, '_', '.', '@', '-' only")
    if not _FILESYSTEM.fullmatch(options.filesystem):
        raise EemRenderError(f"file system {options.filesystem!r}: write it like flash: or bootflash:")


def _tag(receiver: EemRouter, sender: EemRouter, spi: int | None) -> str:
    """8 hex digits naming the flow: applets of two flows never share a name (re-entering
    an existing applet name edits that applet)."""
    key = f"{receiver.name}|{sender.name}|{receiver.peer}|{sender.peer}|{spi}"
    return hashlib.sha1(key.encode()).hexdigest()[:8].upper()


def _capture(commands: Sequence[str], flash_file: str) -> tuple[list[str], list[str]]:
    """The capture list as `... | append FILE`, and notes on what was changed."""
    out: list[str] = []
    notes: list[str] = []
    for command in commands:
        if any(command.startswith(secret) for secret in SECRET_OUTPUTS):
            notes.append(f"`{command}` is left out: its output holds the router's keys and the flash file "
                         "leaves the box unredacted")
            continue
        base = command.split("|", 1)[0].rstrip()
        if base != command:
            # classic IOS takes one output modifier per command, and `append` is it
            notes.append(f"`{command}` is captured as `{base}` (one output modifier per command on IOS)")
        line = f"{base} | append {flash_file}"
        if line not in out:
            out.append(line)
    return out, notes


def _plan(playbook: Playbook, router: EemRouter, options: EemOptions, tag: str):
    facts = RouterFacts(
        name=router.name,
        platform=router.platform,
        os_family="iosxe" if router.platform == "cisco_xe" else "ios",
        ike=options.ike[0],  # type: ignore[arg-type]
        logging=router.logging or LoggingSettings(),
    )
    try:
        return build_arm_plan(playbook, facts, router.peer, f"eem-{tag}", with_deadman=False,
                              include_logging=router.logging is not None, also_ike=tuple(options.ike[1:]),
                              already_on=router.already_on)
    except PlanError as exc:
        raise EemRenderError(f"{router.name}: {exc}") from None


def _render_router(
    playbook: Playbook, router: EemRouter, role: str, options: EemOptions, tag: str, pattern: str | None
) -> RenderedRouter:
    plan = _plan(playbook, router, options, tag)
    if plan.is_empty:
        raise EemRenderError(f"{router.name}: the playbook arms nothing on {platform_tag(plan.facts.os_family)}")
    flash_file = f"{options.filesystem}collector-eem-{router.name}.txt"
    names = {part: f"COLLECTOR_EEM_{tag}_{part}" for part in ("END", "CAP", "ARM")}
    own = [names["END"], names["ARM"]] + ([names["CAP"]] if pattern else [])
    capture, capture_notes = _capture(plan.capture, flash_file)

    def removal(me: str) -> tuple[str, tuple[str, ...]]:
        # the others first, the running applet last
        return ("config", tuple(f"no event manager applet {n}" for n in [*(o for o in own if o != me), me]))

    undo = [(step.mode, step.undo) for step in reversed(plan.steps)]
    arm = [(step.mode, step.do) for step in plan.steps]
    bypass = options.authorization_bypass
    countdown = math.ceil(options.disarm_after.total_seconds())
    lines: list[str] = []
    if options.cli_username:
        lines.append(f"event manager session cli username {options.cli_username}")
    try:
        end_blocks = ([("exec", tuple(capture))] if role == "sender" else []) + [*undo, removal(names["END"])]
        lines += applet_lines(names["END"], f"timer countdown time {countdown} maxrun {RUN_MAXRUN}",
                              cli_sequence(end_blocks), authorization_bypass=bypass)
        lines.append("exit")  # to global config, or the next header is read as an event line
        if pattern:
            period = math.ceil(playbook.within.total_seconds())
            event = f'syslog occurs {playbook.occurs} pattern "{pattern}"'
            event += f" period {period}" if playbook.occurs > 1 else ""
            lines += applet_lines(names["CAP"], f"{event} maxrun {RUN_MAXRUN}",
                                  cli_sequence([("exec", tuple(capture)), *undo, removal(names["CAP"])]),
                                  authorization_bypass=bypass)
            lines.append("exit")
        lines += applet_lines(names["ARM"], f"timer countdown time {ARM_DELAY_SECONDS} maxrun {ARM_MAXRUN}",
                              cli_sequence(arm), authorization_bypass=bypass)
        lines.append("exit")
    except DeadmanError as exc:
        raise EemRenderError(f"{router.name}: {exc}") from None
    notes = _notes(playbook, router, role, options, plan, names, flash_file, pattern, countdown)
    for line in [*lines, *notes, *capture_notes]:
        # `?` typed or pasted at the IOS prompt opens the help instead of entering the character
        if "?" in line:
            raise EemRenderError(f"{router.name}: {line.strip()[:80]!r} contains '?', which IOS cannot take pasted")
    return RenderedRouter(router.name, role, tuple(lines), tuple(notes + capture_notes), flash_file,
                          tuple(names[p] for p in ("END", "CAP", "ARM") if names[p] in own))


def _notes(playbook, router, role, options, plan, names, flash_file, pattern, countdown) -> list[str]:
    window = format_duration(timedelta(seconds=countdown))
    debugs = "; ".join(c for step in plan.steps for c in step.do if c.startswith("debug"))
    notes = [f"{names['ARM']} arms {ARM_DELAY_SECONDS}s after it is configured: {debugs}."]
    if countdown > playbook.max_window.total_seconds():
        notes.append(f"The debugs stay armed up to {window}, longer than the playbook's max_window "
                     f"({format_duration(playbook.max_window)}), which bounds the agent's arming after a first "
                     "line: armed ahead, they wait for the fault (116005).")
    if role == "receiver":
        notes.append(
            f"{names['CAP']} fires when {playbook.occurs} invalid-SPI lines from {router.peer} arrive within "
            f"{format_duration(playbook.within)} (IOS regular expression {pattern}; `show event manager policy "
            f"registered` must show it whole): it appends the captures to {flash_file}, then disarms and removes "
            f"the applets. {names['END']} disarms after {window} if it never fires."
        )
    else:
        notes.append(
            f"The sender logs nothing to trigger on: {names['END']} appends the captures (its log buffer with the "
            f"debugs since arming) to {flash_file} after {window}, then disarms and removes the applets; the "
            "buffer must be large enough to still hold the debugs of the fault by then."
        )
    if router.logging is None:
        notes.append("Logging is left as it is: the debugs reach the flash file only if buffer logging is at "
                     "level debugging, and print on the console if console logging is at level debugging.")
    else:
        changes = [f"{c} (restored: {'; '.join(step.undo)})" for step in plan.steps if step.mode == "config"
                   for c in step.do]
        notes.append("Logging while armed: " + ("; ".join(changes) if changes else "unchanged") + "."
                     + (" A new buffer size empties the log buffer when ARM runs." if any(
                         c.startswith("logging buffered") for step in plan.steps for c in step.do) else ""))
    if len(options.ike) > 1:
        notes.append("Both IKE versions' debugs are armed (the tunnel's version was not given); a release "
                     "without IKEv2 rejects the ikev2 ones.")
    if router.already_on is None:
        notes.append(
            f"Before pasting: `show debugging` and `show crypto debug-condition` must show no crypto debug and no "
            f"condition for {router.peer}; the disarm switches these off even if someone else had set them "
            "(render again with the router's `show debugging` saved in a --*-debugs file to leave them out)."
        )
    else:
        if plan.skipped:
            notes.append("Left out of the arming and of the disarm: " + "; ".join(plan.skipped) + ".")
        if router.already_on.debugs and not router.already_on.peer_conditions:
            notes.append("A crypto debug was on without a condition: while armed, the applets' peer condition "
                         "limits its output to this flow's peer.")
    if options.authorization_bypass:
        notes.append("AAA: the applets carry `authorization bypass` (EEM 3.1 and later; `show event manager "
                     "version`): their commands are not sent for command authorization.")
    elif options.cli_username:
        notes.append(
            f"AAA: `event manager session cli username {options.cli_username}` applies to every applet on the "
            "router and is left in place by the disarm; under command authorization that user must be allowed "
            "every command of these applets."
        )
    else:
        notes.append(
            "AAA: under command authorization (`aaa authorization commands ...`) the applets' commands are "
            "authorized like a user's: `event manager session cli username USER` must name a user allowed every "
            "command of these applets, or render again with --authorization-bypass (EEM 3.1 and later); "
            "otherwise each command fails with `Command authorization failed.`, the disarm's included."
        )
    notes.append(
        "vty: each applet run holds one vty line for its CLI actions; with none free (`show users`) the first "
        "action fails (%HA_EM-3-FMPD_CLI_CONNECT) and nothing after it runs, the disarm included."
    )
    verify = ", ".join(f"`{spec.command}`" for spec in playbook.verify)
    notes.append(
        f"After the disarm: {verify or '`show debugging`'} show none of these debugs; `show running-config | "
        f"include COLLECTOR_EEM_` shows no applet; copy {flash_file} off the box, then delete it."
    )
    return notes


def render_applets(
    playbook: Playbook, receiver: EemRouter, sender: EemRouter, options: EemOptions = EemOptions()
) -> tuple[RenderedRouter, RenderedRouter]:
    """The applets for the receiver (logs the flow's invalid-SPI lines; `receiver.peer` is
    the sender's address in them, srcaddr) and the sender (`sender.peer` is the receiver as
    the sender knows it).

    Raises:
        EemRenderError: a value that cannot be used safely, or a playbook this cannot render."""
    _check_options(playbook, options)
    for router in (receiver, sender):
        _check_router(router)
    if receiver.name == sender.name:
        raise EemRenderError(f"receiver and sender are both {receiver.name}")
    tag = _tag(receiver, sender, options.spi)
    pattern = syslog_pattern(receiver.peer, options.spi)
    return (
        _render_router(playbook, receiver, "receiver", options, tag, pattern),
        _render_router(playbook, sender, "sender", options, tag, None),
    )
