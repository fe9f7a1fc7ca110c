"""`collector probe HOST`: check every assumption the agent makes about one router.

Read-only by default: a fixed list of `show` commands (each one passed through the collect
read-only rule before it is sent), turned into findings by `assess` (pure: texts in,
findings out, unit-tested on real captures). A finding's verdict says how it bears on
the agent: `ok` (as the agent assumes), `note` (a fact worth knowing), `differs` (not as
the agent or the lab assumes: one of them must be corrected), `blocks` (the agent would
refuse to arm this router), `unknown` (the router did not say).

`--self-test` (explicit) changes the router for a few seconds and undoes it:

1. arms `debug crypto condition peer ipv4 A` for an unused documentation address A and
   removes it, quoting `show crypto debug-condition` while it is on (no public capture of
   that layout exists: this is the text the lab must be corrected from);
2. `undebug all`, only when no debug and no condition of anyone else is on (it would
   switch an operator's debugs off): a conditioned `debug crypto isakmp` of its own, then
   `undebug all`, then reads what stayed on (the lab assumes the condition stays);
3. a buffer resize: the running-config `logging buffered` line re-entered with 4096 bytes
   more (discriminator and level kept), the header read again (emptied? the `messages
   logged` count kept?), then the original line re-entered exactly. The buffer's content
   is read whole first and saved with the transcript: a resize empties it.

Whatever happens, a `finally` reads the router's debug state and removes what of the
probe's is still on (reopening the session once if it died), re-enters the buffer line if
it was changed, and compares `show debugging`, `show crypto debug-condition` and the
running-config logging lines with what they were before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, ip_network

from collector.collect import require_read_only
from collector.timeutil import utcnow
from collector.respond.debugstate import DebugState, addresses_in, parse_debug_state
from collector.detect.logline import parse_log_line
from collector.detect.logread import split_show_logging
from collector.respond.deadman import applet_names
from collector.respond.facts import (
    EEM_BYPASS_SINCE,
    command_authorization_on,
    count_vty_in_use,
    count_vty_lines,
    eem_cli_username,
    parse_cpu,
    parse_eem_version,
    parse_logging_settings,
    refusal_in,
)
from collector.respond.plan import PlanError, check_buffered_config
from collector.sessions import CommandRefused, RouterSession, SessionError, prompt_name

VERDICTS = ("ok", "note", "differs", "blocks", "unknown")
NETMIKO_PROMPT_CHARS = 16  # netmiko's cisco_ios base prompt cut (docs/real-routers.md)
CONFIG_PROMPT_CHARS = 20  # IOS shows this much of the hostname before `(config)#`

# The read-only part, in the order sent.
VERSION = "show version"
RUNNING = "show running-config"
PRIVILEGE = "show privilege"
USERS = "show users"
EEM_VERSION = "show event manager version"
CPU = "show processes cpu | include CPU"
LOG_HEADER = "show logging | include [Ll]og|[Dd]iscriminator|mnemonics"
DEBUGGING = "show debugging"
CONDITIONS = "show crypto debug-condition"
READS = (VERSION, RUNNING, PRIVILEGE, USERS, EEM_VERSION, CPU, LOG_HEADER, DEBUGGING, CONDITIONS)
# Read by the self-test only, to pick an address no tunnel uses.
SELF_TEST_READS = ("show ip interface brief", "show crypto session")
BUFFER_CONFIG = "show running-config | include ^logging buffered"

# Documentation ranges (RFC 5737), highest addresses first: the least likely to be in use.
_DOC_NETS = ("203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24")
_HOSTNAME = re.compile(r"^hostname (\S+)\s*$", re.M)
_PRIVILEGE = re.compile(r"Current privilege level is (\d+)")
_BUFFERED_PARTS = re.compile(
    r"^logging buffered(?P<md> discriminator \S+)?(?: (?P<size>\d+))?(?: (?P<level>\S+))?$")
_DISCRIMINATOR_LINE = re.compile(r"^logging discriminator (?P<name>\S+)(?P<rest>.*)$", re.M)
_MD_CLAUSE = re.compile(r"\b(facility|mnemonics|msg-body)\s+(drops|includes)\s+(\S+)")
# What an invalid-SPI message is made of, per discriminator clause kind.
_INV_SPI_PARTS = {"facility": "CRYPTO", "mnemonics": "RECVD_PKT_INV_SPI",
                  "msg-body": "decaps: rec'd IPSEC packet has invalid spi for destaddr"}


@dataclass(frozen=True, slots=True)
class Finding:
    topic: str
    verdict: str  # one of VERDICTS
    text: str  # one sentence, true of what was read
    quoted: tuple[str, ...] = ()  # device lines, exactly as printed

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")

    def as_dict(self) -> dict:
        return {"topic": self.topic, "verdict": self.verdict, "text": self.text, "quoted": list(self.quoted)}


# --------------------------------------------------------------------------- pure part


def _lines(text: str | None) -> tuple[str, ...]:
    return tuple(line.rstrip() for line in (text or "").splitlines() if line.strip())


def _config_lines(config: str, *prefixes: str) -> tuple[str, ...]:
    return tuple(line.rstrip() for line in config.splitlines() if line.startswith(prefixes))


def assess(reads: dict[str, str | None], *, prompt: str | None, registry=None) -> list[Finding]:
    """Findings from the read-only outputs (`None`: the router refused the command).

    `prompt` is the prompt line the session ended its last command on (`name#`)."""
    config = reads.get(RUNNING) or ""
    found: list[Finding] = []
    refused = [command for command in READS if command in reads and reads[command] is None]
    if refused:
        found.append(Finding("refused", "unknown", f"the router refused {len(refused)} read(s): "
                             + ", ".join(f"`{c}`" for c in refused)))
    found += _version(reads.get(VERSION), registry)
    found += _prompt(config if reads.get(RUNNING) is not None else None, prompt)
    found += _privilege(reads.get(PRIVILEGE))
    found += _aaa(config, reads.get(RUNNING) is not None, reads.get(EEM_VERSION))
    found += _vty(config if reads.get(RUNNING) is not None else None, reads.get(USERS))
    found += _timestamps(config if reads.get(RUNNING) is not None else None, reads.get(LOG_HEADER))
    found += _buffer(config if reads.get(RUNNING) is not None else None, reads.get(LOG_HEADER))
    found += _debugs(reads.get(DEBUGGING), reads.get(CONDITIONS))
    found += _leftovers(config if reads.get(RUNNING) is not None else None)
    cpu = parse_cpu(reads.get(CPU) or "")
    if cpu:
        found.append(Finding("cpu", "note", "CPU " + ", ".join(f"{k.replace('_', ' ')} {v}%" for k, v in cpu.items())))
    else:
        found.append(Finding("cpu", "unknown", "CPU utilisation not read (the agent refuses to arm without it)"))
    return found


def _version(text: str | None, registry) -> list[Finding]:
    if text is None:
        return [Finding("version", "unknown", "`show version` not read")]
    if registry is None:
        from collector.parsing import default_registry  # noqa: PLC0415 - TextFSM import is slow

        registry = default_registry()
    records = registry.parse("cisco_ios", "show version", text).records
    record = records[0] if records else {}
    parts = [f"{k} {record[k]}" for k in ("os_family", "version", "hardware") if record.get(k)]
    if not parts:
        return [Finding("version", "differs", "`show version` did not parse: the agent cannot tell IOS from IOS-XE",
                        _lines(text)[:3])]
    return [Finding("version", "note", "; ".join(str(p) for p in parts))]


def _prompt(config: str | None, prompt: str | None) -> list[Finding]:
    hostname = _HOSTNAME.search(config).group(1) if config and _HOSTNAME.search(config) else None
    seen = prompt_name(prompt or "")
    if hostname is None and seen is None:
        return [Finding("prompt", "unknown", "neither the prompt nor the running-config's hostname was read")]
    name = hostname or seen
    cuts = []
    if len(name) > NETMIKO_PROMPT_CHARS:
        cuts.append(f"longer than netmiko's {NETMIKO_PROMPT_CHARS}-character base prompt")
    if len(name) > CONFIG_PROMPT_CHARS:
        cuts.append(f"configuration mode shows `{name[:CONFIG_PROMPT_CHARS]}(config)#`")
    detail = f" ({'; '.join(cuts)})" if cuts else ""
    if hostname is not None and seen is not None and seen != hostname:
        return [Finding("prompt", "differs", f"the prompt shows `{seen}` but the running-config says "
                        f"`hostname {hostname}`", (prompt or "",))]
    where = f"prompt `{prompt.strip()}`" if prompt else "prompt not seen"
    return [Finding("prompt", "ok", f"hostname `{name}`, {len(name)} characters{detail}; {where}")]


def _privilege(text: str | None) -> list[Finding]:
    match = _PRIVILEGE.search(text or "")
    if not match:
        return [Finding("privilege", "unknown", "`show privilege` not read")]
    level = int(match.group(1))
    if level < 15:
        return [Finding("privilege", "blocks", f"privilege level {level} after enable: the agent needs 15")]
    return [Finding("privilege", "ok", "privilege level 15 after enable")]


def _aaa(config: str, config_read: bool, eem_text: str | None) -> list[Finding]:
    if not config_read:
        return [Finding("aaa", "unknown", "running-config not read: AAA command authorization unknown")]
    lines = _config_lines(config, "aaa authorization commands", "aaa authorization config-commands",
                          "event manager session cli username")
    if not command_authorization_on(config):
        return [Finding("aaa", "ok", "no AAA command authorization: the agent's commands and the dead-man "
                        "applet's CLI actions are not authorized one by one", lines)]
    user = eem_cli_username(config)
    version = parse_eem_version(eem_text)
    found = [Finding("aaa", "note", "AAA command authorization is on: each command the agent sends may be refused "
                     "(`Command authorization failed.`), and the dead-man applet's CLI actions are authorized too",
                     lines)]
    if user is not None:
        found.append(Finding("eem", "unknown", f"the applet's CLI actions run as `{user}` (`event manager session "
                             "cli username`): they run only if the AAA server permits that user `undebug`, "
                             "`no debug crypto ...`, `configure terminal` and `logging ...`; not checkable read-only"))
    elif version is None:
        why = "refused or not recognised" if eem_text is None else "printed no `Embedded Event Manager Version`"
        found.append(Finding("eem", "unknown", f"`show event manager version` {why}: the agent would put "
                             "`authorization bypass` on its applet and stop arming if the router refuses it"))
    elif version < EEM_BYPASS_SINCE:
        found.append(Finding("eem", "blocks", f"EEM {version} has no `authorization bypass` (since "
                             f"{EEM_BYPASS_SINCE}) and no `event manager session cli username` is set: "
                             "the dead-man applet could not run"))
    else:
        found.append(Finding("eem", "ok", f"EEM {version}: the applet can carry `authorization bypass`"))
    return found


def _vty(config: str | None, users: str | None) -> list[Finding]:
    total = count_vty_lines(config or "") if config is not None else None
    in_use = count_vty_in_use(users) if users is not None else None
    if total is None or in_use is None:
        what = "no `line vty` in the running-config" if config is not None and total is None else "not read"
        return [Finding("vty", "unknown", f"free vty lines not counted ({what})")]
    free = total - in_use
    quoted = _config_lines(config, "line vty")
    if free < 1:
        return [Finding("vty", "blocks", f"{in_use} of {total} vty lines in use (this probe holds one): "
                        "the dead-man applet's CLI actions would find no free line", quoted)]
    return [Finding("vty", "ok", f"{free} of {total} vty lines free while this probe holds one", quoted)]


def _timestamps(config: str | None, header_text: str | None) -> list[Finding]:
    found: list[Finding] = []
    if config is None:
        found.append(Finding("timestamps", "unknown", "running-config not read: `service timestamps` unknown"))
    else:
        lines = _config_lines(config, "service timestamps", "no service timestamps", "service sequence-numbers")
        for kind in ("log", "debug"):
            line = next((ln for ln in lines if re.match(rf"^(?:no )?service timestamps {kind}\b", ln)), None)
            if line is None:
                found.append(Finding("timestamps", "note", f"no `service timestamps {kind}` line: the image's "
                                     f"default applies to {kind} lines"))
            elif line.startswith("no ") or line.endswith(" uptime"):
                what = "no time stamp" if line.startswith("no ") else "uptime stamps (no date)"
                found.append(Finding("timestamps", "note", f"{kind} lines carry {what}", (line,)))
            else:
                found.append(Finding("timestamps", "ok", f"{kind} lines carry date and time", (line,)))
        numbered = "service sequence-numbers" in lines
        found.append(Finding("timestamps", "note", "sequence numbers "
                             + ("on: the log reader orders and counts by them" if numbered else "off")))
    if header_text is not None:
        _header, body = split_show_logging(header_text)
        for line in body:
            record = parse_log_line(line)
            if record is not None and record.mnemonic:
                stamp = record.timestamp_text or "no time stamp"
                seq = f"sequence number {record.seq}, " if record.seq is not None else ""
                found.append(Finding("timestamps", "note", f"a buffered message as printed: {seq}{stamp}", (line,)))
                break
    return found


def _buffer(config: str | None, header_text: str | None) -> list[Finding]:
    found: list[Finding] = []
    if header_text is None:
        found.append(Finding("buffer", "unknown", "`show logging` header not read"))
    else:
        header, _body = split_show_logging(header_text)
        settings = parse_logging_settings(header_text)
        quoted = tuple(ln for ln in _lines(header_text) if re.match(r"^\s*(Buffer logging|Log Buffer)", ln))
        if not header.buffer_enabled:
            found.append(Finding("buffer", "note", "buffer logging disabled: the agent enables it while armed "
                                 "and disables it again", quoted))
        elif header.logged is None:
            found.append(Finding("buffer", "differs", "no `N messages logged` count in the header: the log reader "
                                 "falls back to line fingerprints", quoted))
        else:
            size = f"{header.buffer_bytes} bytes" if header.buffer_bytes else "size not printed"
            found.append(Finding("buffer", "ok", f"buffer {size}, level {header.level}, "
                                 f"{header.logged} messages logged", quoted))
        for name in ("console", "monitor"):
            level = getattr(settings, f"{name}_level")
            if level is not None:
                found.append(Finding("buffer", "note", f"{name} logging at {level}: the agent switches it off "
                                     "while armed and back on after"))
        active = [ln for ln in _lines(header_text) if "Active Message Discriminator" in ln]
        if active:
            found.append(Finding("discriminator", "note", "message discriminators as the header prints them",
                                 tuple(active)))
    if config is None:
        found.append(Finding("buffer", "unknown", "running-config not read: `logging buffered` lines unknown"))
        return found
    buffered = _config_lines(config, "logging buffered", "no logging buffered")
    for line in buffered:
        try:
            check_buffered_config(line)
        except PlanError:
            found.append(Finding("buffer", "blocks", "a `logging buffered` line the agent cannot restore: it "
                                 "refuses to change the buffer", (line,)))
        else:
            found.append(Finding("buffer", "ok", "the agent would restore this `logging buffered` line verbatim",
                                 (line,)))
    if not buffered:
        found.append(Finding("buffer", "note", "no `logging buffered` line: the buffer runs on the image default"))
    found += _discriminators(config, buffered)
    return found


def _discriminators(config: str, buffered: Sequence[str]) -> list[Finding]:
    found: list[Finding] = []
    used = {m.group("md").split()[1] for line in buffered
            if (m := _BUFFERED_PARTS.match(" ".join(line.split()))) and m.group("md")}
    for match in _DISCRIMINATOR_LINE.finditer(config):
        name = match.group("name")
        line = match.group(0).rstrip()
        if name not in used:
            continue
        hits = []
        for kind, action, pattern in _MD_CLAUSE.findall(match.group("rest")):
            try:
                matches = re.search(pattern, _INV_SPI_PARTS[kind]) is not None
            except re.error:
                matches = False
            if matches == (action == "drops"):
                hits.append(f"{kind} {action} {pattern}")
        if hits:
            found.append(Finding("discriminator", "differs", f"discriminator {name} on the buffer keeps "
                                 f"`%CRYPTO-4-RECVD_PKT_INV_SPI` out of it ({'; '.join(hits)})", (line,)))
        else:
            found.append(Finding("discriminator", "note", f"discriminator {name} on the buffer lets "
                                 "`%CRYPTO-4-RECVD_PKT_INV_SPI` through; the agent re-enters it when it restores "
                                 "the buffer line", (line,)))
    return found


def _debugs(debugging: str | None, conditions: str | None) -> list[Finding]:
    if debugging is None:
        return [Finding("debug", "unknown", "`show debugging` not read: the agent refuses to arm without it")]
    state = parse_debug_state(debugging, conditions)
    found = [Finding("debug", "note", "`show debugging` as printed", _lines(debugging) or ("(nothing)",))]
    if conditions is None:
        found.append(Finding("debug", "unknown", "`show crypto debug-condition` refused: conditions set by "
                             "others cannot be seen"))
    else:
        found.append(Finding("debug", "note", "`show crypto debug-condition` as printed (no public capture of "
                             "this layout exists)", _lines(conditions) or ("(nothing)",)))
    on = sorted(state.debugs)
    peers = sorted(state.peer_conditions)
    if on or peers:
        what = [f"debug {d}" for d in on] + [f"condition peer {p}" for p in peers]
        found.append(Finding("debug", "note", f"someone's debugs are on ({', '.join(what)}): the agent never "
                             "switches them off and, with refuse_if_foreign_debugs, does not arm here"))
    else:
        found.append(Finding("debug", "ok", "no debug and no crypto condition on"))
    if state.unknown_lines:
        found.append(Finding("debug", "differs", "lines the debug-state parser recognises as none of its forms: "
                             "a debug or condition printed like this would not be seen", state.unknown_lines))
    return found


def _leftovers(config: str | None) -> list[Finding]:
    if config is None:
        return []
    names = applet_names(config)
    if names:
        return [Finding("eem", "differs", f"dead-man applets of this tool are configured ({', '.join(names)}): "
                        "`collector disarm --hosts` restores and removes them")]
    return []


def pick_unused_address(texts: Iterable[str]) -> IPv4Address | None:
    """A documentation address (RFC 5737) that no given text names, highest first."""
    used = set().union(*(addresses_in(t or "") for t in texts))
    for net in _DOC_NETS:
        for host in reversed(list(ip_network(net).hosts())):
            if str(host) not in used:
                return host
    return None


@dataclass(frozen=True, slots=True)
class ResizePlan:
    resize: str  # the line that changes the size (discriminator and level kept)
    restore: tuple[str, ...]  # the running-config lines, verbatim
    size: int  # bytes before


def resize_plan(buffered_config: Sequence[str], buffer_bytes: int | None) -> ResizePlan | str:
    """How to resize the buffer and put it back exactly, or why that cannot be done."""
    lines = [" ".join(line.split()) for line in buffered_config]
    plain = [ln for ln in lines if ln.startswith("logging buffered") and not ln.startswith("logging buffered xml")]
    if not plain:
        return ("no `logging buffered` line in the running-config (the image default): re-entering a line would "
                "change the configuration")
    if len(plain) > 1 or any(ln.startswith("no ") for ln in lines):
        return f"running-config `logging buffered` lines {plain} are not one sized line"
    try:
        check_buffered_config(plain[0])
    except PlanError as exc:
        return str(exc)
    match = _BUFFERED_PARTS.match(plain[0])
    if match is None or match.group("size") is None:
        return f"`{plain[0]}` names no size: re-entering it would not undo a resize"
    size = int(match.group("size"))
    if buffer_bytes is not None and buffer_bytes != size:
        return f"the header says {buffer_bytes} bytes but the running-config line says {size}"
    new = f"logging buffered{match.group('md') or ''} {size + 4096}" + (f" {match.group('level')}"
                                                                        if match.group("level") else "")
    return ResizePlan(new, tuple(lines), size)


# --------------------------------------------------------------------------- talking to the router


@dataclass
class Exchange:
    at: datetime
    mode: str  # "read" | "exec" | "config"
    command: str
    output: str | None  # None: no answer (the session failed)
    error: str | None = None


@dataclass
class Transcript:
    """Every command sent and every answer, in order; `run`/`change` go through it."""

    session: RouterSession
    exchanges: list[Exchange] = field(default_factory=list)

    def read(self, command: str, **kwargs) -> str | None:
        """A read-only command; None when the router refused it (AAA or `%`).

        Raises:
            CommandNotReadOnly: a programming error: the command could change the router.
            SessionError: the session failed."""
        require_read_only([command])
        return self._send("read", command, lambda: self.session.run(command, check=False, **kwargs).text)

    def change(self, command: str) -> str:
        """An exec command that changes the router (self-test only).

        Raises:
            CommandRefused: the router refused it. SessionError: the session failed."""
        text = self._send("exec", command, lambda: self.session.run(command, check=False).text)
        if text is None or refusal_in(text) or text.lstrip().startswith("%"):
            raise CommandRefused(self.session.host.name, f"router refused {command!r}: {(text or '').strip()}",
                                 output=text)
        return text

    def configure(self, lines: Sequence[str]) -> str:
        """Configuration lines (self-test only); `configure terminal` ... `end` around them.

        Raises:
            CommandRefused: a line was refused. SessionError: the session failed."""
        label = " / ".join(lines)
        try:
            outputs = self.session.configure(list(lines))
        except SessionError as exc:
            self.exchanges.append(Exchange(utcnow(), "config", label, exc.output, exc.reason))
            raise
        text = "".join(o.text for o in outputs)
        self.exchanges.append(Exchange(utcnow(), "config", label, text))
        refused = refusal_in(text) or next((ln for ln in text.splitlines() if ln.lstrip().startswith("%")), None)
        if refused:
            raise CommandRefused(self.session.host.name, f"router refused {label!r}: {refused.strip()}", output=text)
        return text

    def _send(self, mode: str, command: str, call: Callable[[], str]) -> str | None:
        try:
            text = call()
        except SessionError as exc:
            self.exchanges.append(Exchange(utcnow(), mode, command, exc.output, exc.reason))
            raise
        self.exchanges.append(Exchange(utcnow(), mode, command, text))
        if mode == "read" and (refusal_in(text) or _invalid(text)):
            return None
        return text

    def text(self) -> str:
        out = []
        for e in self.exchanges:
            out.append(f"=== {e.at.isoformat(timespec='milliseconds')} [{e.mode}] {e.command}")
            if e.error:
                out.append(f"--- error: {e.error}")
            out.append((e.output or "").rstrip("\n"))
        return "\n".join(out) + "\n"


def _invalid(text: str) -> bool:
    return bool(re.search(r"^% ?(Invalid input|Incomplete command|Ambiguous command|Unknown command)", text, re.M))


@dataclass
class ProbeResult:
    host: str
    findings: list[Finding]
    transcript: Transcript | None = None
    extra_transcripts: list[Transcript] = field(default_factory=list)  # sessions reopened for the clean-up
    saved_log: str | None = None  # the whole buffer, read before the self-test's resize emptied it

    @property
    def worst(self) -> str:
        order = {"ok": 0, "note": 0, "unknown": 1, "differs": 2, "blocks": 3}
        return max((f.verdict for f in self.findings), key=lambda v: order[v], default="ok")

    def transcript_text(self) -> str:
        parts = [t.text() for t in [self.transcript, *self.extra_transcripts] if t is not None]
        return "\n=== (new session)\n".join(parts)


def run_probe(transcript: Transcript, *, self_test: bool = False,
              reopen: Callable[[], AbstractContextManager[RouterSession]] | None = None, registry=None) -> ProbeResult:
    """The read-only reads and their findings; then, with `self_test`, the self-test.

    `reopen` opens a new session to the same router: the self-test's clean-up uses it once
    when the session died half-way.

    Raises:
        SessionError: the session failed during the read-only part (nothing was changed)."""
    reads = {command: transcript.read(command, **({"read_timeout": 300.0} if command == RUNNING else {}))
             for command in READS}
    prompt = getattr(transcript.session, "prompt", None)  # DeviceSession has it; a test double may not
    result = ProbeResult(transcript.session.host.name,
                         assess(reads, prompt=prompt if isinstance(prompt, str) else None, registry=registry),
                         transcript)
    if self_test:
        _SelfTest(transcript, reads, reopen, result).run()
    return result


class _SelfTest:
    """The changes of `--self-test`, each undone, then the clean-up and the comparison."""

    def __init__(self, t: Transcript, reads: dict[str, str | None],
                 reopen: Callable[[], AbstractContextManager[RouterSession]] | None, result: ProbeResult):
        self.t, self.reads, self.reopen, self.result = t, reads, reopen, result
        self.address: IPv4Address | None = None
        self.set_condition = False  # sent `debug crypto condition peer ... A` (maybe on)
        self.set_isakmp = False  # sent `debug crypto isakmp` (maybe on)
        self.resized: ResizePlan | None = None  # the buffer line is changed and not yet restored

    def add(self, topic: str, verdict: str, text: str, quoted: Iterable[str] = ()) -> None:
        self.result.findings.append(Finding(topic, verdict, text, tuple(quoted)))

    def run(self) -> None:
        t = self.t
        debugging, conditions, buffered = t.read(DEBUGGING), t.read(CONDITIONS), t.read(BUFFER_CONFIG)
        if debugging is None or conditions is None or buffered is None:
            self.add("self-test", "unknown", "not run: `show debugging`, `show crypto debug-condition` or the "
                     "`logging buffered` lines could not be read, so the router could not be verified afterwards")
            return
        before = parse_debug_state(debugging, conditions)  # verified afterwards line by line, not by parse
        context = [self.reads.get(RUNNING) or "", debugging, conditions]
        context += [t.read(command) or "" for command in SELF_TEST_READS]
        self.address = pick_unused_address(context)
        if self.address is None:
            self.add("self-test", "unknown", "not run: every documentation address is in use on this router")
            return
        self.before = (debugging, conditions, buffered, before)
        try:
            for topic, step in (("condition", lambda: self._condition(before)),
                                ("undebug", lambda: self._undebug_all(before)), ("resize", lambda: self._resize(buffered))):
                try:
                    step()
                except CommandRefused as exc:  # the router said no (AAA, `%`): the next check may still run
                    self.add(topic, "differs", f"refused: {exc.reason}")
        except SessionError as exc:
            self.add("self-test", "differs", f"stopped: {exc.reason}")
        finally:
            self._clean_up()

    def _condition(self, before: DebugState) -> None:
        t, a = self.t, self.address
        if before.crypto_debugs and not before.peer_conditions:
            self.add("condition", "note", "condition test not run: someone's unconditioned crypto debug is on, "
                     f"and a condition would filter its output ({', '.join(sorted(before.debugs))})")
            return
        self.set_condition = True  # before sending: a lost answer may still have armed it
        answer = t.change(f"debug crypto condition peer ipv4 {a}")
        armed_conditions, armed_debugging = t.read(CONDITIONS), t.read(DEBUGGING)
        armed = parse_debug_state(armed_debugging or "", armed_conditions)
        quoted = ["# debug crypto condition peer ipv4 " + str(a), *_lines(answer), "# show crypto debug-condition",
                  *_lines(armed_conditions), "# show debugging", *_lines(armed_debugging)]
        if str(a) in armed.peer_conditions:
            self.add("condition", "ok", f"`debug crypto condition peer ipv4 {a}` is listed while on; the "
                     "router printed this", quoted)
        else:
            self.add("condition", "differs", f"condition on {a} set but not found in `show crypto "
                     "debug-condition` or `show debugging`: the agent's verification would miss it", quoted)
        answer = t.change(f"no debug crypto condition peer ipv4 {a}")
        after = t.read(CONDITIONS)
        if str(a) in parse_debug_state(t.read(DEBUGGING) or "", after).peer_conditions:
            self.add("condition", "differs", f"`no debug crypto condition peer ipv4 {a}` left it listed",
                     _lines(after))
        else:
            self.set_condition = False
            self.add("condition", "ok", f"`no debug crypto condition peer ipv4 {a}` removed it",
                     [*_lines(answer), "# show crypto debug-condition", *_lines(after)])

    def _undebug_all(self, before: DebugState) -> None:
        t, a = self.t, self.address
        if before.debugs or before.conditions or before.conditional_debug:
            what = [f"debug {d}" for d in sorted(before.debugs)] + [f"condition {c.value}" for c in before.conditions]
            self.add("undebug", "note", "`undebug all` not run: it would switch off debugs this probe did not set ("
                     + (", ".join(what) or "conditional debugging on") + "); they are left as they were")
            return
        self.set_condition = True
        t.change(f"debug crypto condition peer ipv4 {a}")
        self.set_isakmp = True
        t.change("debug crypto isakmp")
        answer = t.change("undebug all")
        debugging, conditions = t.read(DEBUGGING), t.read(CONDITIONS)
        state = parse_debug_state(debugging or "", conditions)
        if "All possible debugging has been turned off" in answer:
            self.add("undebug", "ok", "`undebug all` answers as assumed", _lines(answer))
        else:
            self.add("undebug", "differs", "`undebug all` answered differently from `All possible debugging has "
                     "been turned off`", _lines(answer))
        if state.crypto_debugs:
            self.add("undebug", "differs", "`undebug all` left crypto debugs on", state.crypto_lines)
        else:
            self.set_isakmp = False
            self.add("undebug", "ok", "`undebug all` switched `debug crypto isakmp` off")
        if str(a) in state.peer_conditions:
            self.add("undebug", "ok", "`undebug all` left the crypto condition on (as the lab assumes): "
                     "conditions are removed one by one", _lines(conditions))
            t.change(f"no debug crypto condition peer ipv4 {a}")
        else:
            self.add("undebug", "differs", "`undebug all` also removed the crypto condition; the lab assumes it "
                     "stays", _lines(conditions))
        self.set_condition = False  # removed either way; the clean-up checks again

    def _resize(self, buffered: str) -> None:
        t = self.t
        header, _ = split_show_logging(self.reads.get(LOG_HEADER) or "")
        plan = resize_plan(_lines(buffered), header.buffer_bytes)
        if isinstance(plan, str):
            self.add("resize", "note", f"buffer resize not tested: {plan}")
            return
        full = t.read("show logging", read_timeout=300.0)
        if full is None:
            self.add("resize", "unknown", "buffer resize not tested: `show logging` refused")
            return
        self.result.saved_log = full  # the resize empties the buffer: its content is kept with the transcript
        before, lines = split_show_logging(full)
        self.resized = plan
        t.configure([plan.resize])
        self.add("config-prompt", "ok", "configuration mode was entered and left: its prompt was recognised")
        after, after_lines = split_show_logging(t.read("show logging", read_timeout=300.0) or "")
        t.configure(list(plan.restore))
        self.resized = None
        quoted = [f"# before: {plan.restore[0]}", f"# resized: {plan.resize}",
                  f"# header before: {before.buffer_bytes} bytes, {before.logged} messages logged",
                  f"# header after: {after.buffer_bytes} bytes, {after.logged} messages logged"]
        if after.buffer_bytes != plan.size + 4096:
            self.add("resize", "differs", f"the header says {after.buffer_bytes} bytes after `{plan.resize}`", quoted)
        newest = lines[-1] if lines else None
        if newest is not None and newest in after_lines:
            self.add("resize", "differs", "the buffer kept its content across a resize; the agent assumes it is "
                     "emptied", quoted)
        else:
            self.add("resize", "ok", f"the resize emptied the buffer ({len(lines)} lines before, "
                     f"{len(after_lines)} after)", quoted)
        if before.logged is not None and after.logged is not None and after.logged >= before.logged:
            self.add("resize", "ok", "the `messages logged` count was not reset by the resize (the log reader "
                     "counts on that)", quoted)
        else:
            self.add("resize", "differs", "the `messages logged` count went down or vanished with the resize: "
                     "the log reader must treat a resize like a reload", quoted)

    # -- clean-up ------------------------------------------------------------------------

    def _clean_up(self) -> None:
        try:
            self._undo_and_verify(self.t)
            return
        except SessionError as exc:
            self.add("clean-up", "differs", f"session failed during the clean-up: {exc.reason}")
        if self.reopen is None:
            self.add("clean-up", "blocks", "no new session could be opened: check the router by hand")
            return
        try:
            with self.reopen() as session:
                again = Transcript(session)
                self.result.extra_transcripts.append(again)
                self._undo_and_verify(again)
        except SessionError as exc:
            self.add("clean-up", "blocks", f"the clean-up failed twice ({exc.reason}): check the router by hand: "
                     f"`show debugging`, `show crypto debug-condition`, `{BUFFER_CONFIG}`")

    def _undo_and_verify(self, t: Transcript) -> None:
        debugging0, conditions0, buffered0, before = self.before
        if self.resized is not None:
            t.configure(list(self.resized.restore))
            self.resized = None
        state = parse_debug_state(t.read(DEBUGGING) or "", t.read(CONDITIONS))
        if self.set_isakmp and "isakmp" in state.debugs and "isakmp" not in before.debugs:
            t.change("no debug crypto isakmp")
        if str(self.address) in state.peer_conditions and str(self.address) not in before.peer_conditions:
            t.change(f"no debug crypto condition peer ipv4 {self.address}")
        debugging, conditions, buffered = t.read(DEBUGGING), t.read(CONDITIONS), t.read(BUFFER_CONFIG)
        differ = [name for name, was, now in (("show debugging", debugging0, debugging),
                                              ("show crypto debug-condition", conditions0, conditions),
                                              ("logging buffered lines", buffered0, buffered))
                  if now is None or _lines(was) != _lines(now)]
        if differ:
            self.add("clean-up", "blocks", "the router is NOT as before the self-test: " + ", ".join(differ)
                     + " read differently (the transcript has both)")
        else:
            self.add("clean-up", "ok", "the router is as before the self-test: `show debugging`, `show crypto "
                     "debug-condition` and the `logging buffered` lines read exactly as before")
