"""Which debugs and crypto debug conditions are on, from `show debugging` and
`show crypto debug-condition` (minimal version; helper H3 writes the full one).

Real forms (docs/domain.md §2.9, real-routers.md): `Crypto ISAKMP debugging is on`,
`Crypto IPSEC debugging is on`, `IKEv2 default debugging is on`, `IKEv2 error debugging is
on`, under a `Cryptographic subsystems:` / `Cryptographic Subsystem:` heading. Debug names
are lower case: "isakmp", "ikev2" (the default debug), "ikev2 error", "ipsec", and for
every other debug its own words ("ip packet").

`show crypto debug-condition` has no public capture, so conditions are read without
relying on its wording: every IP address anywhere in its output is a peer condition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import ip_address

_ON = re.compile(r"^\s*(.+?)\s+debugging is on\b", re.I)
_CRYPTO = re.compile(r"^Crypto (ISAKMP|IPSEC|IPsec|IKEv2)$", re.I)
_IKEV2 = re.compile(r"^IKEv2(?: (\w+))?$", re.I)
_HEADINGS = re.compile(r"^\s*(Cryptographic subsystems?:|.*:\s*$)", re.I)
_TOKEN = re.compile(r"[0-9A-Fa-f:.]{2,}")


@dataclass(frozen=True, slots=True)
class DebugState:
    debugs: frozenset[str]  # lower-case names: isakmp, ikev2, ikev2 error, ipsec, ...
    conditions: frozenset[str]  # peer addresses (normalised text) with a crypto condition
    unknown_lines: tuple[str, ...]  # non-empty lines that are neither a debug nor a heading


def _debug_name(label: str) -> str | None:
    label = label.strip()
    if re.match(r"^Crypto conditional\b", label, re.I):
        return None  # the condition summary line, not a debug of its own
    crypto = _CRYPTO.match(label)
    if crypto:
        return crypto.group(1).lower()
    ikev2 = _IKEV2.match(label)
    if ikev2:
        kind = (ikev2.group(1) or "default").lower()
        return "ikev2" if kind == "default" else f"ikev2 {kind}"
    return " ".join(label.lower().split())


def addresses_in(text: str) -> frozenset[str]:
    """Every token of `text` that is an IPv4 or IPv6 address, in normal form."""
    found = set()
    for token in _TOKEN.findall(text or ""):
        token = token.strip(".:")
        try:
            found.add(str(ip_address(token)))
        except ValueError:
            continue
    return frozenset(found)


def parse_debug_state(show_debugging_text: str, debug_condition_text: str | None = None) -> DebugState:
    debugs: set[str] = set()
    unknown: list[str] = []
    for raw in (show_debugging_text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _ON.match(line)
        if match:
            name = _debug_name(match.group(1))
            if name:
                debugs.add(name)
            continue
        if _HEADINGS.match(line) or line.endswith("#") or "#show" in line or "#sh" in line:
            continue
        unknown.append(line)
    conditions = addresses_in(debug_condition_text) if debug_condition_text else frozenset()
    return DebugState(frozenset(debugs), conditions, tuple(unknown))
