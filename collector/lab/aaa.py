"""AAA command authorization: the router's `aaa authorization ...` lines and a simulated TACACS+ server.

With `aaa authorization commands LEVEL default group tacacs+`, IOS sends every command of
that privilege level, its keywords spelled out in full, to the TACACS+ server before
running it; a refusal prints `Command authorization failed.` (no `%`) and the command
does nothing (docs/real-routers.md "Sessions and prompts"). Configuration-mode lines
are sent too when `aaa authorization config-commands` is configured (the lab's
simplification of IOS's default: see docs/real-routers.md).

The server's decisions come from a `TacacsPolicy`, set per router through the lab's
`tacacs` fault (faults file or control API, see parse_policy for the format). With no
policy the server permits every command of every user; a user the policy does not
name is refused, as a TACACS+ server refuses an unknown user. EEM sessions with no
`event manager session cli username` ask with no user at all and are refused too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The refusal as IOS prints it; the blank line after it is reconstructed (like `% Incomplete command.`).
AUTHORIZATION_FAILED = "Command authorization failed.\n\n"

ANY_USER = "*"


@dataclass
class AaaConfig:
    """The command-authorization part of the running configuration."""

    commands: dict[int, str] = field(default_factory=dict)  # level -> methods of the default list: "group tacacs+ none"
    config_commands: bool = False

    def copy(self) -> AaaConfig:
        return AaaConfig(dict(self.commands), self.config_commands)

    def config_lines(self) -> list[str]:
        lines = [f"aaa authorization commands {level} default {m}" for level, m in sorted(self.commands.items())]
        if self.config_commands:
            lines.append("aaa authorization config-commands")
        return lines

    def asks_server(self, level: int) -> bool:
        """True when commands of `level` go to the TACACS+ server (`group tacacs+` first in the list)."""
        methods = self.commands.get(level, "").split()
        return methods[:2] == ["group", "tacacs+"]

    def authorizes_config(self) -> bool:
        return self.config_commands and self.asks_server(15)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.lower().split())


@dataclass(frozen=True)
class UserRules:
    """What one user may run: `deny` prefixes win; then `permit` (absent = every command)."""

    permit: tuple[tuple[str, ...], ...] | None
    deny: tuple[tuple[str, ...], ...] = ()

    def permits(self, command: tuple[str, ...]) -> bool:
        if any(_prefix_of(p, command) for p in self.deny):
            return False
        return self.permit is None or any(_prefix_of(p, command) for p in self.permit)


def _prefix_of(pattern: tuple[str, ...], command: tuple[str, ...]) -> bool:
    """Word-wise prefix; the pattern word `*` matches any one word."""
    if len(pattern) > len(command):
        return False
    return all(p in ("*", c) for p, c in zip(pattern, command, strict=False))


@dataclass(frozen=True)
class TacacsPolicy:
    users: Mapping[str, UserRules]

    def permits(self, user: str | None, command: str) -> bool:
        if not user:
            return False
        rules = self.users.get(user) or self.users.get(ANY_USER)
        return rules is not None and rules.permits(_words(command))


class BadPolicy(ValueError):
    pass


def parse_policy(value: Any) -> TacacsPolicy | None:
    """`{USER: {"permit": [PREFIX, ...], "deny": [PREFIX, ...]}, "*": {...}}` -> policy; None -> none.

    A PREFIX is the start of a command with its keywords in full (`debug crypto condition`),
    `*` standing for any one word. Raises BadPolicy with one line saying what is wrong.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BadPolicy(f"tacacs policy must map user -> {{permit: [...], deny: [...]}}, not {value!r}")
    users: dict[str, UserRules] = {}
    for user, rules in value.items():
        if not isinstance(rules, Mapping) or set(rules) - {"permit", "deny"}:
            raise BadPolicy(f"tacacs policy for {user!r} must have only permit and/or deny lists, not {rules!r}")
        lists: dict[str, tuple[tuple[str, ...], ...]] = {}
        for key in ("permit", "deny"):
            items = rules.get(key)
            if items is None:
                continue
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise BadPolicy(f"tacacs policy {user!r} {key} must be a list of command prefixes, not {items!r}")
            lists[key] = tuple(_words(i) for i in items)
        users[str(user)] = UserRules(lists.get("permit"), lists.get("deny", ()))
    return TacacsPolicy(users)
