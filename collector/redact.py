"""Remove secrets from router output before it is written anywhere.

`redact(text)` knows the forms in which IOS / IOS-XE print secrets in running-config,
startup-config, `show` outputs and config-change log lines (`logged command:` from
`archive log config`, `show archive log config all`). It replaces only the secret token
with `<removed>`, so the rest of the line stays readable and config classification still
works on redacted text:

    crypto isakmp key 0 MyKey address 0.0.0.0 0.0.0.0
    crypto isakmp key 0 <removed> address 0.0.0.0 0.0.0.0

The encryption type digit (0/5/6/7/8/9) is kept: it tells a reader how the router
stored the secret. Redaction is idempotent (redacting twice gives the same text) and
leaves line breaks exactly as they were.

`redact_values(text, secrets)` removes exact known values (the inventory's passwords)
wherever they appear. `redact_data(obj)` applies both to every string inside
JSON-like data: run it before `json.dumps`, because inside a JSON string the newlines
are escaped and the line patterns of `redact` no longer see line starts.

Every pattern is anchored at the start of a line (after indentation) or of an embedded
command, so free text and JSON are never partially rewritten by accident.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shlex
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "RedactionPattern", "redaction_patterns", "redact", "redact_values", "redact_data", "redacted_view",
           "RedactionMemo", "redact_pieces", "text_pieces", "secret_forms", "register_secret", "redact_log_text", "SecretLogFilter",
           "install_secret_filter"]

REDACTED = "<removed>"

_SP = r"[ \t]+"
_TYPE = r"(?:[0-9][ \t]+(?=\S))?"  # encryption type: 0 clear, 5/8/9 hash, 6 AES, 7 Vigenere
_TOKEN = r"(?P<s>\S+)"
_REST = r"(?P<s>\S(?:.*\S)?)"  # rest of the line: IOS lets some secrets contain spaces
_END = r"[ \t]*$"


@dataclass(frozen=True)
class RedactionPattern:
    """One secret form. `regex` is matched at the start of a line (or of a command
    embedded in a log line); groups named `s`, `s2` mark the secret tokens.
    `needle` is a lowercase word that must occur in the line (a cheap pre-filter).
    `parent`, when set, limits the pattern to lines inside a config block whose
    top-level header matches it."""

    name: str
    regex: re.Pattern[str]
    needle: str
    parent: re.Pattern[str] | None = None
    example: str = ""


def _p(name: str, needle: str, pattern: str, example: str, parent: str | None = None) -> RedactionPattern:
    return RedactionPattern(
        name=name,
        regex=re.compile(r"[ \t]*" + pattern, re.IGNORECASE),
        needle=needle,
        parent=re.compile(parent, re.IGNORECASE) if parent else None,
        example=example,
    )


_SERVER_BLOCKS = (
    r"^(?:tacacs|radius)[ \t]+server\b"
    r"|^aaa[ \t]+server[ \t]+radius[ \t]+dynamic-author\b"
    r"|^crypto[ \t]+isakmp[ \t]+client[ \t]+configuration[ \t]+group\b"
    r"|^crypto[ \t]+ipsec[ \t]+client[ \t]+ezvpn\b"
)

redaction_patterns: tuple[RedactionPattern, ...] = (
    # -- local accounts and enable -------------------------------------------------------
    _p("enable-secret", "enable",
       rf"enable{_SP}(?:algorithm-type{_SP}\S+{_SP})?secret{_SP}(?:level{_SP}\d+{_SP})?{_TYPE}{_REST}",
       "enable secret 9 $9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM"),
    _p("enable-password", "enable",
       rf"enable{_SP}password{_SP}(?:level{_SP}\d+{_SP})?{_TYPE}{_REST}",
       "enable password 7 0822455D0A16"),
    _p("username", "username",
       rf"username{_SP}\S+(?:{_SP}\S+)*?{_SP}(?:secret|password){_SP}{_TYPE}{_REST}",
       "username admin privilege 15 secret 9 $9$..."),
    _p("line-password", "password",
       rf"password{_SP}(?!encryption\b){_TYPE}{_REST}",
       " password 7 094F471A1A0A"),
    _p("config-key", "config-key",
       rf"key{_SP}config-key{_SP}password-encrypt{_SP}{_TOKEN}",
       "key config-key password-encrypt MasterKey123"),
    # -- IKE / IPsec ---------------------------------------------------------------------
    _p("isakmp-key", "isakmp",
       rf"crypto{_SP}isakmp{_SP}key{_SP}(?:[0-9]{_SP})?{_TOKEN}(?=[ \t]+(?:address|hostname)\b|{_END})",
       "crypto isakmp key 0 cisco123 address 0.0.0.0 0.0.0.0"),
    _p("keyring-pre-shared-key", "pre-shared-key",
       rf"pre-shared-key{_SP}(?:address|hostname){_SP}\S+(?:{_SP}\S+)*?{_SP}key{_SP}{_TYPE}{_TOKEN}",
       " pre-shared-key address 192.0.2.1 key cisco123"),
    _p("ikev2-pre-shared-key", "pre-shared-key",
       rf"pre-shared-key{_SP}(?:(?:local|remote){_SP})?{_TYPE}{_TOKEN}{_END}",
       "  pre-shared-key local cisco123"),
    _p("asa-pre-shared-key", "pre-shared-key",
       rf"ikev[12]{_SP}(?:(?:local|remote)-authentication{_SP})?pre-shared-key{_SP}{_TYPE}{_TOKEN}",
       " ikev1 pre-shared-key cisco123"),
    _p("ikev2-profile-pre-share", "pre-share",
       rf"authentication{_SP}(?:local|remote){_SP}pre-share{_SP}key{_SP}{_TYPE}{_TOKEN}",
       " authentication remote pre-share key cisco123"),
    _p("ezvpn-group-key", "key",
       rf"group{_SP}\S+{_SP}key{_SP}{_TYPE}{_TOKEN}",
       " group VPNGROUP key GroupKey123"),
    _p("block-key", "key",
       rf"(?:pac{_SP})?key{_SP}{_TYPE}{_REST}",
       " key 7 045802150C2E1D1C5A", parent=_SERVER_BLOCKS),
    # The same line cut from its block (`show running-config | include key`, a line quoted
    # alone): any indented `key` line is a secret, except a key chain's bare key number.
    _p("orphan-block-key", "key",
       rf"\s+key{_SP}(?!\d+\s*$){_TYPE}{_TOKEN}{_END}",
       " key 7 045802150C2E1D1C5A", parent=r"^(?!router\s|key chain\s)"),
    _p("typed-key", "key",
       rf"key{_SP}[0-9]{_SP}{_TOKEN}{_END}",
       " key 6 FFMD_ZFDdDVJc]SAUdB\\gEWfBMK^NcAAB"),
    _p("key-string", "key-string",
       rf"key-string{_SP}{_TYPE}{_REST}",
       "  key-string 7 045802150C2E"),
    _p("pki-password", "crypto",
       rf"crypto{_SP}(?:pki|ca|key){_SP}.*?{_SP}(?:password|passphrase){_SP}{_TOKEN}",
       "crypto pki import TP pkcs12 flash:tp.p12 password Export123"),
    _p("nhrp-authentication", "nhrp",
       rf"(?:ip|ipv6){_SP}nhrp{_SP}authentication{_SP}{_TYPE}{_TOKEN}{_END}",
       " ip nhrp authentication DMVPNkey"),
    # -- AAA -----------------------------------------------------------------------------
    _p("aaa-server-key", "-server",
       rf"(?:tacacs|radius)-server{_SP}(?:host{_SP}\S+(?:{_SP}\S+)*?{_SP})?key{_SP}{_TYPE}{_REST}",
       "tacacs-server host 192.0.2.10 key 7 0822455D0A16"),
    _p("server-private", "server-private",
       rf"server-private{_SP}\S+(?:{_SP}\S+)*?{_SP}key{_SP}{_TYPE}{_REST}",
       " server-private 192.0.2.11 auth-port 1645 acct-port 1646 key 7 0822455D0A16"),
    _p("server-key", "server-key",
       rf"(?:client{_SP}\S+(?:{_SP}vrf{_SP}\S+)?{_SP})?server-key{_SP}{_TYPE}{_REST}",
       " client 192.0.2.12 server-key 7 0822455D0A16"),
    # -- SNMP ----------------------------------------------------------------------------
    _p("snmp-community", "snmp-server",
       rf"snmp-server{_SP}community{_SP}{_TOKEN}",
       "snmp-server community N3tw0rkRO RO 10"),
    _p("snmp-host-community", "snmp-server",
       rf"snmp-server{_SP}host{_SP}\S+(?:{_SP}(?:vrf{_SP}\S+|informs|traps))*(?:{_SP}version{_SP}(?:1|2c))?{_SP}(?!version\b){_TOKEN}",
       "snmp-server host 192.0.2.50 version 2c N3tw0rkTrap"),
    _p("snmp-user", "snmp-server",
       rf"snmp-server{_SP}user{_SP}.*?{_SP}auth{_SP}(?:md5|sha\S*){_SP}(?P<s>\S+)"
       rf"(?:{_SP}priv{_SP}(?:des|3des|aes(?:{_SP}\d+)?){_SP}(?P<s2>\S+))?",
       "snmp-server user mon MONGRP v3 auth sha AuthPass1 priv aes 128 PrivPass1"),
    # -- routing, first hop, time --------------------------------------------------------
    _p("ospf-md5", "message-digest-key",
       rf"(?:ip{_SP}ospf{_SP}|area{_SP}.*?{_SP})message-digest-key{_SP}\d+{_SP}md5{_SP}{_TYPE}{_TOKEN}",
       " ip ospf message-digest-key 1 md5 OspfKey1"),
    _p("ospf-authentication-key", "authentication-key",
       rf"(?:(?:ip|ipv6){_SP}ospf{_SP}|area{_SP}.*?{_SP})?authentication-key{_SP}{_TYPE}{_TOKEN}",
       " ip ospf authentication-key 7 121A0C041104"),
    _p("ospfv3-ipsec", "ipsec",
       rf"(?:ipv6{_SP}ospf|ospfv3)(?:{_SP}\d+)?{_SP}(?:authentication|encryption){_SP}ipsec{_SP}spi{_SP}\d+"
       rf"(?:{_SP}esp{_SP}\S+(?:{_SP}\d+)?{_SP}{_TYPE}(?P<s2>\S+))?{_SP}(?:md5|sha1){_SP}{_TYPE}(?P<s>\S+)",
       " ipv6 ospf authentication ipsec spi 500 md5 1234567890ABCDEF1234567890ABCDEF"),
    _p("isis-password", "password",
       rf"(?:isis{_SP}password|area-password|domain-password){_SP}{_TOKEN}",
       " isis password IsisPass1"),
    _p("bgp-ldp-neighbor-password", "neighbor",
       rf"(?:mpls{_SP}ldp{_SP})?neighbor{_SP}\S+(?:{_SP}vrf{_SP}\S+)?{_SP}password{_SP}{_TYPE}{_REST}",
       " neighbor 192.0.2.2 password 7 020700560208"),
    _p("eigrp-hmac", "hmac-sha-256",
       rf"authentication{_SP}mode{_SP}hmac-sha-256{_SP}{_TYPE}{_TOKEN}",
       "  authentication mode hmac-sha-256 EigrpKey1"),
    _p("fhrp-authentication", "authentication",
       rf"(?:standby|vrrp|glbp)(?:{_SP}\d+)?{_SP}authentication{_SP}"
       rf"(?:md5{_SP}key-string{_SP}{_TYPE}|text{_SP}|(?!md5\b|text\b))(?P<s>\S+)",
       " standby 1 authentication md5 key-string HsrpKey1"),
    _p("ntp-authentication-key", "ntp",
       rf"ntp{_SP}authentication-key{_SP}\d+{_SP}\S+{_SP}{_TOKEN}",
       "ntp authentication-key 1 md5 NtpKey1 7"),
    # -- links and services --------------------------------------------------------------
    _p("ppp-chap-password", "ppp",
       rf"ppp{_SP}chap{_SP}password{_SP}{_TYPE}{_TOKEN}",
       " ppp chap password 0 ChapPass1"),
    _p("ppp-pap-password", "ppp",
       rf"ppp{_SP}pap{_SP}sent-username{_SP}\S+{_SP}password{_SP}{_TYPE}{_TOKEN}",
       " ppp pap sent-username user1 password 0 PapPass1"),
    _p("l2tp-password", "password",
       rf"(?:l2tp{_SP}tunnel|vpdn{_SP}username{_SP}\S+){_SP}password{_SP}{_TYPE}{_TOKEN}",
       " l2tp tunnel password 0 L2tpPass1"),
    _p("ftp-http-password", "password",
       rf"ip{_SP}(?:ftp|http{_SP}client){_SP}password{_SP}{_TYPE}{_TOKEN}",
       "ip ftp password 7 0822455D0A16"),
    _p("wpa-psk", "psk",
       rf"(?:wpa-psk|security{_SP}wpa{_SP}psk{_SP}set-key){_SP}(?:ascii|hex){_SP}{_TYPE}{_TOKEN}",
       " wpa-psk ascii 0 WifiKey123"),
    # -- show outputs --------------------------------------------------------------------
    _p("show-key-chain", "text",
       r'key[ \t]+\d+[ \t]+--[ \t]+text[ \t]+"(?P<s>[^"]+)"',
       '    key 1 -- text "cisco"'),
    _p("show-snmp-community", "community",
       rf"community{_SP}(?:name|index|securityname):[ \t]*{_TOKEN}",
       "Community name: public"),
)

# Commands echoed inside other lines, where the same patterns apply from the offset
# after the marker: syslog `%PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:...`
# and the `show archive log config all` table (`  3  1  admin@vty0  |username ...`).
_EMBEDDED = (
    re.compile(r"logged command:", re.IGNORECASE),
    re.compile(r"^[ \t]*\d+[ \t]+\d+[ \t]+\S+@\S+[ \t]+\|[ \t]*"),
)
# `show crypto isakmp key` prints the pre-shared keys in a table:
#   Keyring      Hostname/Address                            Preshared Key
#
#   default      192.0.2.1                                   cisco123
_ISAKMP_KEY_HEADER = re.compile(r"^[ \t]*Keyring[ \t]+Hostname/Address[ \t]+Preshared Key[ \t]*$", re.IGNORECASE)
_NEEDLE = re.compile("|".join(re.escape(n) for n in sorted({p.needle for p in redaction_patterns} | {"preshared"},
                                                         key=len, reverse=True)))
_PROMPT = re.compile(r"^[\w.\-/:()]+[#>]")

# What a line can start with, once its leading whitespace is stripped, for any pattern to
# match it (lowercase; for ASCII lines, where IGNORECASE is lower()). Read off the patterns
# themselves, so a new pattern needs nothing here; "" (no known start) makes every line a
# candidate. A run of blanks inside a lead is `_BLANKS` (any blanks but a line break): so
# `ip nhrp ` is a lead and `ipsec flow:` (on every line of `show crypto session detail`) is
# not one.
try:  # the regex parser's own tree of a pattern: what it can begin with
    from re import _constants as _sre, _parser as _sre_parser
except ImportError:
    _sre = _sre_parser = None
_WHITESPACE = frozenset(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")  # what str.lstrip() and \s take, in ASCII
_LEAD_CHARS = 8  # a pattern's first word or two; longer prefixes multiply (each optional part doubles them)
_BLANKS = "\x00"  # in a lead: one or more blanks; in a regex, `[^\S\n]+`
_CLASS_CHARS = 4  # a class of at most this many letters (`[12]`) is followed letter by letter


def _starts(items: list, skip_space: bool, budget: int = _LEAD_CHARS) -> set[str]:
    """Literal prefixes one of which every match of the parsed regex `items` begins with
    ("" = unknown). With `skip_space`, whitespace at the match's start is not counted."""
    c = _sre
    if not items or budget == 0:
        return {""}
    (op, av), rest = items[0], list(items[1:])
    if op is c.LITERAL:
        char = chr(av).lower()
        if char in _WHITESPACE:
            return _starts(rest, True, budget) if skip_space else _blanks_then(rest, budget)
        return {char + tail for tail in _starts(rest, False, budget - 1)}
    if op is c.IN and 0 < len(av) <= _CLASS_CHARS and all(o is c.LITERAL for o, _a in av):
        chars = {chr(a).lower() for _o, a in av}
        if not chars & _WHITESPACE:
            return {char + tail for char in chars for tail in _starts(rest, False, budget - 1)}
    if op in (c.AT, c.ASSERT, c.ASSERT_NOT):  # zero width
        return _starts(rest, skip_space, budget)
    if op is c.BRANCH:
        return set().union(*(_starts(list(alt) + rest, skip_space, budget) for alt in av[1]))
    if op is c.SUBPATTERN and not av[1] and not av[2]:  # a group without its own flags
        return _starts(list(av[3]) + rest, skip_space, budget)
    if op in (c.MAX_REPEAT, c.MIN_REPEAT):
        low, high, sub = av
        if _only_space(sub):
            if skip_space:
                return _starts(rest, True, budget)
            if low >= 1:
                return _blanks_then(rest, budget)
        once = _starts(list(sub) + rest, skip_space, budget) if high == 1 else _starts(list(sub), skip_space, budget)
        return once | _starts(rest, skip_space, budget) if low == 0 else once
    return {""}


def _blanks_then(rest: list, budget: int) -> set[str]:
    """Blanks inside a match (at least one), then `rest`: `_BLANKS` stands for the whole
    run, blanks at the start of `rest` included."""
    return {_BLANKS + tail for tail in _starts(rest, True, budget - 1)}


def _only_space(items) -> bool:
    """The parsed regex matches whitespace only (`[ \\t]`, `\\s`)."""
    c = _sre

    def space(op, av) -> bool:
        if op is c.LITERAL:
            return chr(av) in _WHITESPACE
        if op is c.CATEGORY:
            return av is c.CATEGORY_SPACE
        if op is c.IN:
            return all(space(o, a) for o, a in av)
        return False

    return len(items) == 1 and space(*items[0])


def _line_leads() -> tuple[str, ...]:
    if _sre is None:  # a Python without this parser: every line is looked at
        return ("",)
    leads: set[str] = set()
    for pattern in redaction_patterns:
        leads |= _starts(list(_sre_parser.parse(pattern.regex.pattern, pattern.regex.flags)), True)
    leads = {lead.rstrip(_BLANKS) for lead in leads}  # trailing blanks add nothing to a prefix
    if "" in leads:
        return ("",)
    return tuple(sorted(lead for lead in leads if not any(lead.startswith(o) for o in leads if o != lead)))


def _alternation(words: Iterable[str]) -> str:
    """A regex matching any of `words` (none a prefix of another; `_BLANKS` a run of
    blanks), as a tree of their first letters: the regex engine tries each branch of a
    flat alternation at every line, while this one fails a line on its first letter in one
    or two tries."""
    by_first: dict[str, list[str]] = {}
    for word in words:
        by_first.setdefault(word[:1], []).append(word[1:])
    branches = []
    for first, rests in sorted(by_first.items()):
        if len(rests) == 1:
            branches.append(_literal(first + rests[0]))
        else:
            branches.append(_literal(first) + "(?:" + _alternation(rests) + ")")
    return "|".join(branches)


def _literal(text: str) -> str:
    return re.escape(text).replace(_BLANKS, r"[^\S\n]+")


_LEADS = _line_leads()
# A line starting (after blanks) with a lead, found from the line break before it: with a
# literal first, the search runs at C speed from break to break (`^` under re.M does not).
_LEAD_AFTER_BREAK = re.compile(r"\n[^\S\n]*(?:" + _alternation(_LEADS) + ")")
# The same for the first line of a text (`match`); neither can run past a line break.
_LEAD_AT_START = re.compile(r"[^\S\n]*(?:" + _alternation(_LEADS) + ")")

_NEWLINES = re.compile(r"(\r\n|\n|\r)")


def redact(text: str) -> str:
    """`text` with every known IOS secret token replaced by `<removed>`."""
    if not text:
        return text
    lower = text.lower()
    if text.isascii() and "\r" not in text and "preshared" not in lower:
        return _redact_leading_lines(text, lower)
    # Every pattern needs its needle in the line and the key table its header: a text with
    # none of them has nothing to remove.
    if _NEEDLE.search(lower) is None:
        return text
    return _redact_every_line(text)


def _redact_leading_lines(text: str, lower: str, header: str = "") -> str:
    """What `_redact_every_line` gives, for the usual text: ASCII, lines ending in `\n`, no
    `show crypto isakmp key` table (its header says `Preshared`). Then only a line that can
    start a secret form (`_LEADS`) or that echoes a command is looked at, with the header of
    the config block it sits in: crypto outputs mention `crypto`, `ipsec`, `key` on many
    lines (a needle search finds them all), almost none of which start one. Cheaper than
    the needle search itself, which scans every character. `header`: the config block the
    text's first lines are indented under (a piece of a bigger text, `redact_pieces`)."""
    echoes = "logged command:" in lower or ("@" in text and "|" in text)  # see _EMBEDDED
    if "\n" not in text and not header:  # one line: a parsed value, mostly
        if not (echoes or _LEAD_AT_START.match(lower)):
            return text
        spans = _secret_spans(text, "", echoes)
        return _replace_spans(text, spans) if spans else text
    lines: list[str] | None = None  # split only once a line is to be looked at
    last, changed = -1, False  # the last line looked at; `header`: the last top-level line up to it
    at, i = 0, 0  # the start of a line and its number
    for start in _looked_at(lower, echoes):
        i += lower.count("\n", at, start)
        at = start
        if lines is None:
            lines = text.split("\n")
        line = lines[i]
        indented = line[:1] in (" ", "\t")
        if indented:  # its block's header: the last top-level line since the line looked at before
            for j in range(i - 1, last, -1):
                if lines[j] and lines[j][:1] not in (" ", "\t"):
                    header = lines[j]
                    break
        elif line:
            header = line
        last = i
        spans = _secret_spans(line, header if indented else "", echoes)
        if spans:
            lines[i], changed = _replace_spans(line, spans), True
    return "\n".join(lines) if changed and lines is not None else text


def _looked_at(lower: str, echoes: bool) -> list[int]:
    """Where the lines `_redact_leading_lines` looks at begin, in order: those starting
    (after blanks) with a lead and, when the text echoes commands, those holding an echo.
    Found by C-speed searches of the lowered text: a Python test of each line cost 40 ms
    on a 10 MB `show logging` (an alternation of the echoes' words, 50 ms)."""
    starts = {m.start() + 1 for m in _LEAD_AFTER_BREAK.finditer(lower)}
    if _LEAD_AT_START.match(lower):
        starts.add(0)
    if echoes:
        for needle in ("logged command:", "@"):
            at = lower.find(needle)
            while at >= 0:
                starts.add(lower.rfind("\n", 0, at) + 1)
                at = lower.find(needle, lower.find("\n", at) + 1 or len(lower))
    return sorted(starts)


def _redact_every_line(text: str) -> str:
    """Walk every line: any line ending, any text (the key table needs every line)."""
    parts = _NEWLINES.split(text)  # content, newline, content, newline, ...
    walk = _LineWalk()
    for i in range(0, len(parts), 2):
        parts[i] = walk.line(parts[i])
    return "".join(parts)


class _LineWalk:
    """`redact`'s walk over the lines of one text: the config block a line is indented
    under and the key table it may be a row of carry over from one line to the next."""

    __slots__ = ("header", "key_table")

    def __init__(self) -> None:
        self.header = ""  # the last top-level line: the config block we are in
        self.key_table = _KeyTable()

    def line(self, line: str) -> str:
        indented = line[:1] in (" ", "\t")
        if line and not indented:
            self.header = line
        spans = self.key_table.spans(line)
        if line.strip():
            spans.extend(_secret_spans(line, self.header if indented else ""))
        return _replace_spans(line, spans) if spans else line


_PIECE = 1 << 16  # characters per piece when a big text is redacted piece by piece


def text_pieces(text: str, size: int = _PIECE) -> Iterator[str]:
    """`text` in slices of `size` characters (for `redact_pieces`)."""
    for start in range(0, len(text), size):
        yield text[start:start + size]


def redact_pieces(pieces: Iterable[str], secrets: Iterable[str] = ()) -> Iterator[str]:
    """`redact_values(redact(text), secrets)` of the text the pieces make up, given and
    returned piece by piece (a whole line at a time): the same result, without holding a
    big output (a 10 MB `show logging`, a report) and its redacted copy at once."""
    values = _values_key(secrets)
    if any("\n" in v or "\r" in v for v in values):  # a value spanning lines: only the whole text is exact
        yield _remove_values(redact("".join(pieces)), values)
        return
    walk = _LineWalk()
    pending = ""
    for piece in pieces:
        data = pending + piece if pending else piece
        # Lines end at the last line break; a final "\r" may be the first half of "\r\n".
        cut = max(data.rfind("\n"), data.rfind("\r", 0, len(data) - 1)) + 1
        pending = data[cut:]
        if cut:
            yield _redact_lines(data[:cut], walk, values)
    if pending:
        yield _redact_lines(pending, walk, values)


def _redact_lines(text: str, walk: _LineWalk, values: tuple[str, ...]) -> str:
    lower = text.lower()
    if not walk.key_table.inside and text.isascii() and "\r" not in text and "preshared" not in lower:
        # `redact`'s fast path, given the block the piece starts in; then the walk goes on
        # from the piece's last top-level line (no key table can start without `Preshared`).
        cleaned = _redact_leading_lines(text, lower, walk.header)
        end = len(text)
        while end > 0:
            start = text.rfind("\n", 0, end - 1) + 1
            line = text[start:end].rstrip("\n")
            if line and line[:1] not in (" ", "\t"):
                walk.header = line
                break
            end = start
        return _remove_values(cleaned, values)
    parts = _NEWLINES.split(text)
    # After a final line break split() gives an empty part that is no line of the text (the
    # next piece goes on from there): not walked, as it would end a key table.
    end = len(parts) - 1 if len(parts) > 1 and not parts[-1] else len(parts)
    for i in range(0, end, 2):
        parts[i] = walk.line(parts[i])
    return _remove_values("".join(parts), values)


class _KeyTable:
    """Tracks the `show crypto isakmp key` table: its rows end in the key."""

    def __init__(self) -> None:
        self.inside = False
        self.rows = 0

    def spans(self, line: str) -> list[tuple[int, int]]:
        if _ISAKMP_KEY_HEADER.match(line):
            self.inside, self.rows = True, 0
            return []
        if not self.inside:
            return []
        if not line.strip():
            if self.rows:  # the blank line after the rows ends the table
                self.inside = False
            return []
        if _PROMPT.match(line):
            self.inside = False
            return []
        self.rows += 1
        fields = list(re.finditer(r"\S+", line))
        return [fields[-1].span()] if len(fields) >= 2 else []


def _secret_spans(line: str, block: str, echoes: bool = True) -> list[tuple[int, int]]:
    """Spans of secret tokens in one line; `block` is the header of the config block
    the line is indented under ("" for a top-level line). `echoes=False`: the text the
    line is from holds no echoed command (no marker of `_EMBEDDED` to search for)."""
    lower = line.lower()
    if _NEEDLE.search(lower) is None:  # one search instead of a look per pattern
        return []
    starts = [0]
    for marker in _EMBEDDED if echoes else ():
        found = marker.search(line)
        if found:
            starts.append(found.end())
    spans: list[tuple[int, int]] = []
    for pattern in redaction_patterns:
        if pattern.needle not in lower:
            continue
        for start in starts:
            if pattern.parent is not None and (start != 0 or not pattern.parent.search(block)):
                continue
            match = pattern.regex.match(line, start)
            if match is None:
                continue
            for group in ("s", "s2"):
                if group in match.re.groupindex and match.start(group) >= 0:
                    spans.append(match.span(group))
    return spans


def _replace_spans(line: str, spans: list[tuple[int, int]]) -> str:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out.append(line[last:start])
        out.append(REDACTED)
        last = end
    out.append(line[last:])
    return "".join(out)


# ---------------------------------------------------------------------------------------


_SHORT = 4  # secrets shorter than this are only removed as whole words
_WORD_EDGE = r"\s\"'=:,;()\[\]{}<>"


def redact_values(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret value replaced by `<removed>`.

    Longer values are replaced first (a password that contains another is removed
    whole). Values shorter than 4 characters are removed only where they stand as a
    word of their own, so a password like `ab` does not shred the text."""
    return _remove_values(text, _values_key(secrets))


def _remove_values(text: str, values: tuple[str, ...]) -> str:
    # No value in the text: nothing to replace (the usual case, and the cheap one: a bundle
    # calls this for every string it writes).
    if text:
        for value in values:  # (a loop, not any(): no generator per string)
            if value in text:
                return _values_pattern(values).sub(REDACTED, text)
    return text


def _values_key(secrets: Iterable[str]) -> tuple[str, ...]:
    secrets = tuple(secrets)  # a bundle writer passes the same tuple for each of its files
    try:
        return _values_key_of(secrets)
    except TypeError:  # something unhashable among them (not a secret value anyway)
        return _values_key_of.__wrapped__(secrets)


@functools.lru_cache(maxsize=32)
def _values_key_of(secrets: tuple) -> tuple[str, ...]:
    return tuple(sorted({s for s in secrets if isinstance(s, str) and s and s != REDACTED}, key=lambda s: (-len(s), s)))


@functools.lru_cache(maxsize=32)
def _values_pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = [re.escape(REDACTED)]
    for value in values:
        escaped = re.escape(value)
        if len(value) < _SHORT:
            escaped = rf"(?<![^{_WORD_EDGE}]){escaped}(?![^{_WORD_EDGE}])"
        alternatives.append(escaped)
    # The marker comes first, so text that was already redacted stays as it is.
    return re.compile("|".join(alternatives))


def redact_data(obj: object, secrets: Iterable[str] = (), *, memo: dict[str, str] | None = None) -> object:
    """A copy of JSON-like data (dicts, lists, tuples, strings, numbers) with `redact`
    and `redact_values` applied to every string, keys included."""
    # Parsed tables repeat their values (states, flags, zeros), across routers too: a caller
    # redacting many objects with the same secrets may pass one `memo` for all of them.
    return _clean_data(obj, _values_key(secrets), {} if memo is None else memo)


def _clean_text(value: str, values: tuple[str, ...], done: dict[str, str]) -> str:
    cleaned = done.get(value)
    if cleaned is None:
        cleaned = done[value] = _remove_values(redact(value), values)
    return cleaned


def _clean_data(value: object, values: tuple[str, ...], done: dict[str, str]) -> object:
    # A plain function, not a closure calling itself: that made a reference cycle per call
    # (69,000 of them for one timeline), garbage until the cycle collector ran.
    if isinstance(value, str):
        return _clean_text(value, values, done)
    if isinstance(value, dict):
        return {_clean_data(k, values, done) if isinstance(k, str) else k: _clean_data(v, values, done)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_data(v, values, done) for v in value]
    if isinstance(value, tuple):
        return tuple(_clean_data(v, values, done) for v in value)
    return value


class RedactionMemo(dict):
    """text -> its redacted form, for one set of secrets, and `clean`: the texts redaction
    leaves as they are. `redacted_view` checks a record's keys against `clean` in one set
    operation (C speed) instead of a look-up per key."""

    def __init__(self) -> None:
        super().__init__()
        self.clean: set[str] = set()


def redacted_view(obj: object, secrets: Iterable[str] = (), *, memo: dict[str, str]) -> object:
    """`obj` itself when redaction changes none of its strings, else `redact_data`'s copy.
    For writing out at once (a bundle file, a JSON line), not for keeping: a caller that
    changes what it gets may change `obj`. Parsed tables are nearly always clean, and
    checking each string against what `memo` knows costs less than copying the tables (a
    200-router collect: 140,000 strings). A `RedactionMemo` carries what it learnt to the
    next call; another memo, only the redacted forms."""
    values = _values_key(secrets)
    clean = getattr(memo, "clean", None)
    if clean is None:
        clean = set()
    return obj if _unchanged(obj, values, memo, clean) else _clean_data(obj, values, memo)


def _is_clean(text: str, values: tuple[str, ...], done: dict[str, str], clean: set[str]) -> bool:
    cleaned = done.get(text)
    if cleaned is None:
        cleaned = _clean_text(text, values, done)
    if cleaned != text:
        return False
    clean.add(text)
    return True


def _unchanged(value: object, values: tuple[str, ...], done: dict[str, str], clean: set[str]) -> bool:
    """Redaction changes no string of `value`. A plain function, as `_clean_data` (no cycle
    per call), with the look-ups written out: a call per string would cost what copying
    does. A str subclass is copied unless it equals a text already known clean (a record's
    keys are checked as a set)."""
    kind = type(value)
    if kind is str:
        return value in clean or _is_clean(value, values, done, clean)
    if kind is dict:
        if not clean.issuperset(value):  # the keys: the same few for every record of a table
            for key in value:
                if type(key) is str:
                    if key not in clean and not _is_clean(key, values, done, clean):
                        return False
                elif not _unchanged(key, values, done, clean):
                    return False
        for item in value.values():
            if type(item) is str:
                if item not in clean and not _is_clean(item, values, done, clean):
                    return False
            elif not _unchanged(item, values, done, clean):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            if type(item) is str:
                if item not in clean and not _is_clean(item, values, done, clean):
                    return False
            elif not _unchanged(item, values, done, clean):
                return False
        return True
    return not isinstance(value, (str, dict, list, tuple))  # numbers, None; a subclass is copied


# ---------------------------------------------------------------------------------------
# Secrets in logs. A library's debug line prints what it sends as Python shows it: netmiko
# logs `write_channel: b'...\n'` (bytes repr: `\` doubled, a quote escaped when both kinds
# occur), JSON loggers escape `"` and `\`, a shell-ish line quotes with `'"'"'`, a URL
# percent-encodes. Every credential the tool resolves is registered here, and a logging
# filter removes each of those forms from every record before any handler sees it.

_registered: set[str] = set()
_registered_forms: tuple[str, ...] = ()
_registry_lock = threading.Lock()


def _escaped(value: str, mark: str) -> str:
    """The inside of a Python string or bytes literal of `value` delimited by `mark`."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == mark:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def secret_forms(value: str) -> set[str]:
    """Every way `value` may be printed by a logger: as is, escaped inside either kind of
    Python quotes (str or bytes repr, once or twice), JSON-escaped, shell-quoted, and
    percent-encoded."""
    forms = {value}
    for mark in ("'", '"'):
        once = _escaped(value, mark)
        forms.add(once)
        forms.add(_escaped(once, mark))  # a repr of a repr (a dict of bytes, a logged exception)
        forms.add(_escaped(once, "'" if mark == '"' else '"'))
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    forms.add(repr(value.encode("utf-8", "backslashreplace"))[2:-1])
    forms.add(shlex.quote(value))
    forms.add(quote(value, safe=""))
    forms.add(quote_plus(value, safe=""))
    return {f for f in forms if f}


def register_secret(value: str) -> None:
    """Make the log filter remove `value` (and its escaped forms) from now on."""
    global _registered_forms
    if not isinstance(value, str) or not value or value == REDACTED:
        return
    with _registry_lock:
        if value in _registered:
            return
        _registered.add(value)
        forms = set(_registered_forms)
        for secret in (value,):
            forms |= secret_forms(secret)
        _registered_forms = tuple(sorted(forms, key=lambda s: (-len(s), s)))


def registered_secret_forms() -> tuple[str, ...]:
    return _registered_forms


def redact_log_text(text: str) -> str:
    """`text` with every registered secret form removed."""
    forms = _registered_forms
    if not forms or not text:
        return text
    return redact_values(text, forms)


class SecretLogFilter(logging.Filter):
    """Removes every registered secret, in every escaped or quoted form, from a record's
    message, arguments, exception text and stack. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _registered_forms:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the parts, redacted
            message = f"{record.msg} {record.args}"
        cleaned = redact_log_text(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_log_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_log_text(record.stack_info)
        return True


_FILTER = SecretLogFilter()
_factory_installed = False


def install_secret_filter(logger: logging.Logger | None = None) -> SecretLogFilter:
    """Put the filter on `logger` (the root logger by default) and on each of its handlers,
    and clean every record when it is made, so that records of any library's logger and
    handlers added later are covered too. Idempotent."""
    global _factory_installed
    target = logger or logging.getLogger()
    if _FILTER not in target.filters:
        target.addFilter(_FILTER)
    for handler in target.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    if not _factory_installed:
        previous = logging.getLogRecordFactory()

        def make_record(*args, **kwargs):
            record = previous(*args, **kwargs)
            _FILTER.filter(record)
            return record

        logging.setLogRecordFactory(make_record)
        _factory_installed = True
    return _FILTER
