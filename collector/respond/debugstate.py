"""Which debugs and debug conditions a router has on, from `show debugging` and
`show crypto debug-condition`: what the disarm verification and the foreign-debug guard read.

`show debugging` is read with the project's TextFSM template (one place for its wording),
then classified here. Real routers print several forms for the same debug, all of which
must count (fixtures/real/show_debugging, fixtures/real/debug):

    Cryptographic subsystems:          (IOS)        Cryptographic Subsystem:     (IOS-XE)
      Crypto ISAKMP debugging is on                   Crypto IPSEC debugging is on
    IKEv2 default debugging is on / IKEv2 error debugging is on / IKEv2 packet ... (IOS-XE)

`show crypto debug-condition` has no public capture: its wording is not confirmed. So the
conditions are NOT read from its wording alone: every line of that output (and every line
of the crypto block of `show debugging`) that names an IP address is taken as a possible
condition on that address, whatever the words around it; lines under a `... filters:`
heading that name no address are conditions of that heading's kind. A line recognised as
none of these is returned in `unknown_lines`, so that a caller can refuse to call a router
clean when it printed something nobody has seen before.

Pure: text in, a frozen value out; never raises on device text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

_TEMPLATE = "cisco_ios_show_debugging.textfsm"
_CONDITION_TEMPLATE = "cisco_ios_show_crypto_debug_condition.textfsm"

# The crypto debug families, by a word in the debug's name as printed.
_FAMILIES = (
    ("isakmp", re.compile(r"\bISAKMP\b", re.I)),
    ("ikev2", re.compile(r"\bIKEv2\b", re.I)),
    ("ipsec", re.compile(r"\bIPSEC\b", re.I)),
    ("engine", re.compile(r"\bEngine\b|CRYPTO_ENGINE", re.I)),
    ("pki", re.compile(r"\bPKI\b", re.I)),
    ("gdoi", re.compile(r"\bGDOI\b", re.I)),
)
_CRYPTO_NAME = re.compile(r"^(?:Crypto|CRYPTO|IKEv2|IKEV2|ISAKMP|IPSEC|IPsec)\b")
_DEBUG_ON = re.compile(r"^\s*(?P<name>\S.*?)\s+debugging\s+is\s+on\b", re.I)
_HEADING = re.compile(r"^\s*(?P<name>\S[^:]*?)\s*:\s*$")
# The command echoed back, with or without a prompt (`R1# show debugging`, `show debug`).
_PROMPT_ECHO = re.compile(r"^\s*(?:\S+[#>]\s*)?(?:sh(?:o(?:w)?)?\s+deb|sh(?:o(?:w)?)?\s+cry|u(?:n(?:d(?:e(?:b(?:u(?:g)?)?)?)?)?)?\s+all\b)", re.I)
_PROMPT_ONLY = re.compile(r"^\s*\S+[#>]\s*$")
_DETAIL = re.compile(r"^\s*\(.*\)\s*$")  # `(protocol, neighbor, ...)` under a debug line
_CONDITIONAL_FLAG = re.compile(
    r"^\s*(?:Crypto\s+conditional\s+debug\s+(?:currently\s+)?is\s+turned\s+(?P<state>ON|OFF)"
    r"|(?:IKE|IPsec|Crypto\s+Engine)\s+debug\s+context\s+unmatched\s+flag\s*:\s*(?:ON|OFF)"
    r"|Conditional\s+Debug\s+Global\s+State\s*:\s*\S+)\s*$",
    re.I,
)
_NOTHING_ON = re.compile(r"^\s*(?:All possible debugging has been turned off|No debugging is on)\b", re.I)
# Candidate address tokens; each is confirmed by `ipaddress`.
_ADDRESS_TOKEN = re.compile(r"[0-9A-Fa-f]*[:.][0-9A-Fa-f:.]*[0-9A-Fa-f](?:/\d{1,3})?")


@dataclass(frozen=True)
class DebugCondition:
    kind: str  # "peer" (a line naming an address), "platform" (IOS-XE `debug platform
    #            condition` block of `show debugging`), or a `... filters:` heading's kind
    value: str  # the address, or the line's text for other kinds
    line: str  # as printed
    source: str  # "show debugging" or "show crypto debug-condition"


@dataclass(frozen=True)
class DebugState:
    crypto_debugs: frozenset[str]  # families on: "isakmp", "ikev2", "ipsec", "engine", "pki", "gdoi", "crypto-other"
    crypto_lines: tuple[str, ...]  # the crypto "... debugging is on" lines, stripped, as printed
    other_debugs: tuple[str, ...]  # names of non-crypto debugs on ("HSRP Errors", "IP routing")
    conditions: tuple[DebugCondition, ...]
    conditional_debug: bool | None  # "Crypto conditional debug ... turned ON/OFF"; None if not printed
    unknown_lines: tuple[str, ...]  # lines recognised as none of the above, stripped

    @property
    def debugs(self) -> frozenset[str]:
        """Each debug that is on, named the way the tool's own arm steps name theirs:
        "isakmp", "ipsec", "ikev2" (the default level), "ikev2 error", ..., and any other
        debug by its label in lower case. Finer than `crypto_debugs`: an operator's
        `debug crypto ikev2 error` is not the tool's `debug crypto ikev2`."""
        names = {_debug_name(_ON_SUFFIX.sub("", line)) for line in self.crypto_lines}
        names |= {" ".join(name.lower().split()) for name in self.other_debugs}
        return frozenset(n for n in names if n)

    @property
    def peer_conditions(self) -> frozenset[str]:
        """The peer addresses with a debug condition, as normalised text."""
        return frozenset(str(peer) for peer in self.condition_peers)

    @property
    def condition_peers(self) -> frozenset[IPv4Address | IPv6Address]:
        """Every address named by a condition (possible peer conditions)."""
        return frozenset(ip_address(c.value) for c in self.conditions if c.kind == "peer")

    @property
    def any_crypto(self) -> bool:
        """A crypto debug or a crypto condition is on (what the disarm check must not see)."""
        crypto_conditions = any(c.kind != "platform" for c in self.conditions)
        return bool(self.crypto_debugs or crypto_conditions or self.conditional_debug)


def parse_debug_state(show_debugging_text: str, debug_condition_text: str | None = None) -> DebugState:
    """The debug state printed by `show debugging` (and `show crypto debug-condition` when
    given). Never raises: unreadable text ends up in `unknown_lines`."""
    try:
        return _parse(show_debugging_text, debug_condition_text)
    except Exception:  # noqa: BLE001 - device text never raises; nothing is called clean
        lines = f"{show_debugging_text}\n{debug_condition_text or ''}" if isinstance(show_debugging_text, str) else ""
        return DebugState(frozenset(), (), (), (), None,
                          tuple(ln.strip() for ln in lines.splitlines() if ln.strip()) or ("(unreadable)",))


def _parse(show_debugging_text: str, debug_condition_text: str | None) -> DebugState:
    from collector.parsing import default_registry  # noqa: PLC0415 - parsing imports TextFSM

    text = show_debugging_text if isinstance(show_debugging_text, str) else ""
    records = default_registry().parse_with(_TEMPLATE, text).records
    record = records[0] if records else {}
    names = [str(n) for n in record.get("debugs") or []]
    crypto_names = {str(n) for n in record.get("crypto_debugs") or []}

    families: set[str] = set()
    crypto_lines: list[str] = []
    other: list[str] = []
    for name in names:
        if name in crypto_names or _CRYPTO_NAME.match(name):
            crypto_lines.append(f"{name} debugging is on")
            families.add(_family(name))
        else:
            other.append(name)

    conditions: list[DebugCondition] = []
    unknown: list[str] = []
    flag = _walk_show_debugging(text, conditions, unknown)
    if debug_condition_text:
        flag_c = _walk_debug_condition(debug_condition_text, conditions, unknown)
        flag = flag_c if flag_c is not None else flag
    return DebugState(
        crypto_debugs=frozenset(families),
        crypto_lines=tuple(crypto_lines),
        other_debugs=tuple(other),
        conditions=tuple(_dedupe(conditions)),
        conditional_debug=flag,
        unknown_lines=tuple(unknown),
    )


def _family(name: str) -> str:
    for family, pattern in _FAMILIES:
        if pattern.search(name):
            return family
    return "crypto-other"


def _addresses(line: str) -> list[str]:
    found = []
    for token in _ADDRESS_TOKEN.findall(line):
        candidate = token.split("/", 1)[0].strip(".:")
        try:
            found.append(str(ip_address(candidate)))
        except ValueError:
            continue
    return found


def _flag_state(line: str) -> bool | None:
    m = _CONDITIONAL_FLAG.match(line)
    if m is None or m.group("state") is None:
        return None
    return m.group("state").upper() == "ON"


def _walk_show_debugging(text: str, conditions: list[DebugCondition], unknown: list[str]) -> bool | None:
    flag: bool | None = None
    platform_block = False
    for raw in text.splitlines():
        line = raw.strip()
        if (not line or _PROMPT_ECHO.match(raw) or _PROMPT_ONLY.match(raw) or _NOTHING_ON.match(raw)
                or _DETAIL.match(raw)):
            continue
        if _CONDITIONAL_FLAG.match(raw):
            state = _flag_state(raw)
            flag = state if state is not None else flag
            continue
        if _DEBUG_ON.match(raw):
            continue
        heading = _HEADING.match(raw)
        if heading is not None:
            platform_block = heading.group("name").lower().startswith("iosxe")
            continue
        addresses = _addresses(line)
        if addresses:
            # A line that names an address may be a condition on it, whatever its words; in
            # the IOS-XE platform blocks it is a `debug platform condition`, not a crypto one.
            kind = "platform" if platform_block else "peer"
            conditions.extend(DebugCondition(kind, a, line, "show debugging") for a in addresses)
            continue
        unknown.append(line)
    return flag


def _walk_debug_condition(text: str, conditions: list[DebugCondition], unknown: list[str]) -> bool | None:
    flag: bool | None = None
    kind: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _PROMPT_ECHO.match(raw) or _PROMPT_ONLY.match(raw):
            continue
        if _CONDITIONAL_FLAG.match(raw):
            state = _flag_state(raw)
            flag = state if state is not None else flag
            continue
        addresses = _addresses(line)
        if addresses:
            conditions.extend(DebugCondition("peer", a, line, "show crypto debug-condition") for a in addresses)
            continue
        heading = _HEADING.match(raw)
        if heading is not None:
            kind = heading.group("name")
            kind = kind[: -len(" filters")] if kind.lower().endswith(" filters") else kind
            continue
        if kind is not None:
            conditions.append(DebugCondition(kind, line, line, "show crypto debug-condition"))
            continue
        unknown.append(line)
    return flag


def _dedupe(conditions: list[DebugCondition]) -> list[DebugCondition]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for c in conditions:
        key = (c.kind, c.value, c.line)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


_ON_SUFFIX = re.compile(r"\s+debugging is on\b.*$", re.I)
_CRYPTO_LABEL = re.compile(r"^Crypto (ISAKMP|IPSEC|IPsec|IKEv2)$", re.I)
_IKEV2_NAME = re.compile(r"^IKEv2(?: (\w+))?$", re.I)


def _debug_name(label: str) -> str | None:
    label = label.strip()
    if re.match(r"^Crypto conditional\b", label, re.I):
        return None  # the condition summary line, not a debug of its own
    crypto = _CRYPTO_LABEL.match(label)
    if crypto:
        return crypto.group(1).lower()
    ikev2 = _IKEV2_NAME.match(label)
    if ikev2:
        kind = (ikev2.group(1) or "default").lower()
        return "ikev2" if kind == "default" else f"ikev2 {kind}"
    return " ".join(label.lower().split())


def addresses_in(text: str) -> frozenset[str]:
    """Every token of `text` that is an IPv4 or IPv6 address, in normal form."""
    return frozenset(a for line in (text or "").splitlines() for a in _addresses(line))
