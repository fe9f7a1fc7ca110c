"""The on-box dead-man switch: an EEM countdown applet that disarms the router by itself.

If the agent dies, loses its SSH path or is killed while a router is armed, nothing on
the jump host can run the undo steps. So before any debug is switched on, the agent
installs an applet whose countdown fires a little after the arm window should have
ended; it replays the same undo commands the agent would have run, then deletes itself.
A normal disarm removes the applet first (`removal_commands`).

Text shape (docs/domain.md §1.4, §5; `maxrun` on a timer event and self-removal from a
running applet are unverified, check on a real router):

    event manager applet COLLECTOR_DEADMAN_1A2B3C4D
     event timer countdown time 900 maxrun 120
     action 001 cli command "enable"
     action 002 cli command "no debug crypto ipsec"
     action 003 cli command "configure terminal"
     action 004 cli command "logging console debugging"
     action 005 cli command "end"
     action 006 cli command "configure terminal"
     action 007 cli command "no event manager applet COLLECTOR_DEADMAN_1A2B3C4D"
     action 008 cli command "end"

Labels are zero-padded because EEM orders actions by comparing labels as strings.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from collector.textlines import has_control_character

Mode = Literal["exec", "config"]

NAME_PREFIX = "COLLECTOR_DEADMAN_"
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_NAME_ROOM = 32 - len(NAME_PREFIX)  # characters left for the incident part
_LABEL_WIDTH = 3
MAX_ACTIONS = 10**_LABEL_WIDTH - 1
MAX_COUNTDOWN_SECONDS = 7 * 24 * 3600  # a dead-man should be minutes, never weeks
DEFAULT_MAXRUN_SECONDS = 120  # EEM's default maxrun of 20 s is too short for a long undo list


class DeadmanError(ValueError):
    """The applet cannot be built safely (bad name, quote in a command, too long...)."""


@dataclass(frozen=True, slots=True)
class DeadmanApplet:
    """An applet ready to paste in configuration mode, and how to take it out again."""

    name: str
    countdown_seconds: int
    config_lines: tuple[str, ...]  # send in config mode, in order

    @property
    def action_count(self) -> int:
        return sum(1 for line in self.config_lines if line.startswith(" action "))

    @property
    def removal_commands(self) -> tuple[str, ...]:
        return removal_commands(self.name)


def applet_name(incident_id: str) -> str:
    """One applet name per incident: `COLLECTOR_DEADMAN_<id>`.

    The id's letters and digits (upper case) when they fit the 14 characters left after
    the prefix; otherwise their last 8 plus 6 hex digits of a hash of the whole id, so two
    incidents never share an applet (an `event manager applet NAME` with an existing NAME
    edits that applet: a shared name would let one arm rewrite another's dead-man).

    Raises:
        DeadmanError: the id has no letter or digit."""
    short = re.sub(r"[^A-Za-z0-9]", "", incident_id).upper()
    if not short:
        raise DeadmanError(f"incident id {incident_id!r} has no letters or digits to name an applet")
    if len(short) > _NAME_ROOM:
        digest = hashlib.sha1(incident_id.encode()).hexdigest()[:6].upper()
        short = short[-(_NAME_ROOM - 6):] + digest
    return validate_name(NAME_PREFIX + short)


def applet_names(running_config: str) -> tuple[str, ...]:
    """Names of the tool's applets (prefix `COLLECTOR_DEADMAN_`) in running-config text."""
    found = re.findall(r"^event manager applet (" + NAME_PREFIX + r"[A-Za-z0-9_]+)\b", running_config or "", re.M)
    return tuple(dict.fromkeys(name for name in found if _NAME_RE.fullmatch(name)))


def applet_actions(running_config: str, name: str) -> tuple[str, ...]:
    """The `cli command "..."` strings of applet `name`, in label order, from running-config
    text (`show running-config | section event manager applet`)."""
    validate_name(name)
    actions: list[tuple[str, str]] = []
    inside = False
    for line in (running_config or "").splitlines():
        if line.startswith("event manager applet "):
            inside = line.split()[3:4] == [name]
            continue
        if inside and line and not line[0].isspace():
            inside = False
        if inside:
            match = re.match(r'^\s*action (\S+) cli command "([^"]*)"', line)
            if match:
                actions.append((match.group(1), match.group(2)))
    return tuple(command for _label, command in sorted(actions))


def validate_name(name: str) -> str:
    """Raises:
        DeadmanError: not a letter followed by up to 31 letters, digits or '_'."""
    if not _NAME_RE.fullmatch(name):
        raise DeadmanError(
            f"applet name {name!r} must be a letter followed by up to 31 letters, digits or '_'"
        )
    return name


def validate_command(command: str) -> str:
    """A command that can sit inside `cli command "..."` without changing meaning.

    Raises:
        DeadmanError: empty, or a quote, '$' or control character in it."""
    if not command.strip():
        raise DeadmanError("empty command in the dead-man applet")
    if '"' in command:
        raise DeadmanError(f"command {command!r} contains a double quote, which ends the EEM string")
    if "$" in command:
        raise DeadmanError(f"command {command!r} contains '$', which EEM expands as a variable")
    if has_control_character(command):
        raise DeadmanError(f"command {command!r} contains a control character")
    return command


def build_applet(
    name: str,
    countdown_seconds: int,
    undo: Sequence[tuple[Mode, Sequence[str]]],
    *,
    maxrun_seconds: int = DEFAULT_MAXRUN_SECONDS,
    authorization_bypass: bool = False,
    replaces_actions: int = 0,
) -> DeadmanApplet:
    """Build the applet that runs `undo` (already in disarm order) and removes itself.

    `undo` is a list of (mode, commands): exec commands run as they are; consecutive
    config commands share one `configure terminal` ... `end` block.
    `authorization_bypass` adds the keyword needed where AAA command authorization is on.
    `replaces_actions`: how many actions the applet of the same name already on the router
    has; re-entering an applet edits it and keeps actions not re-entered, so the labels
    beyond the new list are deleted (`no action NNN`).

    Raises:
        DeadmanError: a bad name, countdown, maxrun or command, or too many actions.
    """
    validate_name(name)
    if not 1 <= countdown_seconds <= MAX_COUNTDOWN_SECONDS:
        raise DeadmanError(
            f"countdown of {countdown_seconds}s is outside 1..{MAX_COUNTDOWN_SECONDS}s"
        )
    if not 1 <= maxrun_seconds <= 3600:
        raise DeadmanError(f"maxrun of {maxrun_seconds}s is outside 1..3600s")
    # the self-removal is a block of its own, after the undo's last `end`
    commands = cli_sequence(undo) + ["configure terminal", f"no event manager applet {name}", "end"]
    lines = applet_lines(name, f"timer countdown time {countdown_seconds} maxrun {maxrun_seconds}", commands,
                         authorization_bypass=authorization_bypass, replaces_actions=replaces_actions)
    return DeadmanApplet(name=name, countdown_seconds=countdown_seconds, config_lines=lines)


def cli_sequence(blocks: Sequence[tuple[Mode, Sequence[str]]]) -> list[str]:
    """The `cli command` strings an applet runs for `blocks` of (mode, commands), in order.

    The applet's CLI session starts in user EXEC, so `enable` comes first; consecutive
    config commands share one `configure terminal` ... `end` block.

    Raises:
        DeadmanError: an unknown mode or a command that cannot sit in an EEM string."""
    commands: list[str] = ["enable"]
    in_config = False
    for mode, lines in blocks:
        if mode not in ("exec", "config"):
            raise DeadmanError(f"unknown mode {mode!r}")
        for line in lines:
            validate_command(line)
            if mode == "config" and not in_config:
                commands.append("configure terminal")
                in_config = True
            elif mode == "exec" and in_config:
                commands.append("end")
                in_config = False
            commands.append(line)
    if in_config:
        commands.append("end")
    return commands


def applet_lines(
    name: str,
    event: str,
    commands: Sequence[str],
    *,
    authorization_bypass: bool = False,
    replaces_actions: int = 0,
) -> tuple[str, ...]:
    """Config-mode lines of applet `name`: the header, ` event {event}`, then one
    zero-padded `cli command` action per command (options as in `build_applet`).

    Raises:
        DeadmanError: a bad name or command, or too many actions."""
    validate_name(name)
    if len(commands) > MAX_ACTIONS:
        raise DeadmanError(f"applet {name} would need {len(commands)} actions (max {MAX_ACTIONS})")
    header = f"event manager applet {name}" + (" authorization bypass" if authorization_bypass else "")
    lines = [header, f" event {event}"]
    lines += [
        f' action {index:0{_LABEL_WIDTH}d} cli command "{validate_command(command)}"'
        for index, command in enumerate(commands, start=1)
    ]
    lines += [f" no action {index:0{_LABEL_WIDTH}d}" for index in range(len(commands) + 1, replaces_actions + 1)]
    return tuple(lines)


def removal_commands(name: str) -> tuple[str, ...]:
    """Config-mode lines that delete the applet (a normal disarm does this first).

    Raises:
        DeadmanError: a bad name."""
    return (f"no event manager applet {validate_name(name)}",)
