"""Playbooks: what to watch for, when to arm, what to capture, how to undo it (YAML).

A playbook is data an engineer can write without touching code. `load_playbook(path)`
validates it completely and raises `PlaybookError` with a one-line `path:line: message`.

Format (every key optional unless marked; durations are text such as "90s", "10m", "1h30m")
-------------------------------------------------------------------------------------------

    name: invalid-spi                 # required; lower-case letters, digits, '-'
    description: ...                  # free text

    trigger:                          # omit for a collect-only playbook (see below)
      parser: invalid-spi             # the validated %CRYPTO-4-RECVD_PKT_INV_SPI parser,
                                      # key = (router, src, dst, spi, prot), peer = src
      # -- or a generic line pattern --
      regex: 'Interface (?P<interface>Tunnel\\d+), changed state to down'
      fields: {interface: interface}  # every named group and its type:
                                      # ipv4 | ipv6 | ip | int | hex32 | interface
      key: [router, interface]        # what one "flow" is; must contain `router`
      peer: tunnel_dst                # optional: the ip field naming the other tunnel end

    occurs: 2                         # EEM-like `occurs N within T`, anchored at the first
    within: 10m                       #   occurrence (which arms) ... the N-th captures

    sources:
      poll:   {enabled: true, interval: 60s, command: show logging}
      syslog: {enabled: true, confirm_over_ssh: true}   # UDP syslog is spoofable: confirm
      qfp:    {enabled: true, interval: 5m, commands: [...]}   # IOS-XE drop counters

    window: 10m                       # how long debugs stay armed (default: `within`,
    max_window: 30m                   #   never less than `within`, never above max_window)
    cooldown: {flow: 30m, pair: 15m}  # quiet time after a capture, per flow / tunnel pair

    guards:
      max_armed_routers: 4            # fleet-wide cap on routers armed at once
      cpu_max_percent: 60             # refuse to arm above this CPU (see cpu_measure)
      cpu_measure: five_minutes       # five_seconds | one_minute | five_minutes
      refuse_if_foreign_debugs: true  # refuse to arm when someone else's debugs are on
      deadman_grace: 2m               # the on-box applet fires at window + grace
      allow_arm_without_deadman: false  # arm where the applet cannot run under AAA
      arm_unknown_sources: false      # arm for a srcaddr that is no inventory router and no configured peer
                                      #   (once its flow repeats; one per receiver; half the cap at most)

    logging: {buffered_size: 1000000, buffered_level: debugging}

    arm:                              # run in order after the logging changes; each has undo
      - do: debug crypto condition peer {peer_family} {peer}
        undo: no debug crypto condition peer {peer_family} {peer}
      - do: debug crypto {ike}
        undo: no debug crypto {ike}
        mode: exec                    # exec (default) | config
        platforms: [cisco_xe]         # optional condition: cisco_ios | cisco_xe
        ike: ikev2                    # optional condition: isakmp (alias ikev1) | ikev2

    capture:                          # read-only `show` commands, run on the repeat
      - show clock
      - command: show crypto ikev2 sa detailed
        ike: ikev2
      - command: show ip nhrp
        dmvpn: true                   # optional condition: only routers with an mGRE tunnel

    verify: [show debugging, show crypto debug-condition]   # after disarm, no placeholders

    remediate:                        # the ONLY place `clear ...` may appear, and only
      enabled: false                  #   with enabled: true (never in shipped playbooks)
      steps: [{command: clear crypto sa peer {peer}}]

Placeholders: {peer} (the other tunnel end, an ipaddress), {peer_family} (ipv4|ipv6),
{ike} (isakmp|ikev2, per router), and any trigger field. They are filled only with
validated, typed values (`collector.respond.plan`). Per-platform overrides are written as
two steps with disjoint `platforms:` conditions.

A collect-only playbook (`collector collect --playbook`) is `name`, `description` and a
`capture:` list without placeholders (`Playbook.collect_commands`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from collector.readonly import read_only_refusal
from collector.textlines import has_control_character
from collector.yamlfile import YamlError, load_yaml, validation_error

__all__ = [
    "ArmStep",
    "CommandSpec",
    "FieldType",
    "FieldValue",
    "FieldValueError",
    "Playbook",
    "PlaybookError",
    "RemediateStep",
    "Trigger",
    "format_duration",
    "is_clear_command",
    "load_playbook",
    "parse_duration",
    "placeholders_in",
    "platform_tag",
    "validate_field",
]


class PlaybookError(ValueError):
    """A playbook cannot be used; `str()` is one line: `path:line: message`."""


class _Problem(ValueError):
    """A check failing below the model that raised it; `loc` is relative to that model.

    Pydantic only knows the location of the model whose validator failed; `load_playbook`
    adds `loc` so the message points at the exact line."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


# ---------------------------------------------------------------------- durations

MAX_DURATION_SECONDS = 366 * 86400  # no window, interval or cooldown of this tool is a year long
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: object) -> timedelta:
    """'90s', '10m', '1h', '1h30m' -> timedelta. Bare numbers are refused (unit ambiguity)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value.strip())
        if match and any(match.groups()):
            hours, mins, secs = (int(g) if g else 0 for g in match.groups())
            if hours * 3600 + mins * 60 + secs > MAX_DURATION_SECONDS:  # timedelta overflows near 2.7e6 years
                raise ValueError(f"{value!r} is longer than {MAX_DURATION_SECONDS // 86400} days")
            return timedelta(hours=hours, minutes=mins, seconds=secs)
    raise ValueError(f"{value!r} is not a duration: write it like 90s, 10m, 1h or 1h30m")


def format_duration(value: timedelta) -> str:
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    mins, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{mins}m" if mins else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def _positive_duration(value: object) -> timedelta:
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return duration


_AS_TEXT = PlainSerializer(format_duration, return_type=str)
Duration = Annotated[timedelta, BeforeValidator(parse_duration), _AS_TEXT]
PositiveDuration = Annotated[timedelta, BeforeValidator(_positive_duration), _AS_TEXT]


# ---------------------------------------------------------------------- field values

FieldType: TypeAlias = Literal["ipv4", "ipv6", "ip", "int", "hex32", "interface"]
FieldValue: TypeAlias = IPv4Address | IPv6Address | int | str
Platform: TypeAlias = Literal["cisco_ios", "cisco_xe"]
Ike: TypeAlias = Literal["isakmp", "ikev2"]

# Interface names as IOS prints them: Tunnel10001, GigabitEthernet0/0/1.100, Virtual-Access2.
_INTERFACE_RE = re.compile(r"^[A-Za-z][A-Za-z-]{0,40}\d{1,6}(?:/\d{1,4}){0,3}(?:\.\d{1,5})?(?::\d{1,4})?$")
_INT_RE = re.compile(r"^\d{1,10}$")
_HEX32_RE = re.compile(r"^(?:0[xX])?[0-9A-Fa-f]{1,8}$")


class FieldValueError(ValueError):
    """A value taken from a device line does not have the declared type."""


def validate_field(kind: str, text: str) -> FieldValue:
    """Parse text captured from a device line as `kind`; FieldValueError if it is not one.

    The result is what may go into a command; the raw text never does."""
    if not isinstance(text, str):
        raise FieldValueError(f"expected text for a {kind} field, got {type(text).__name__}")
    try:
        if kind in ("ipv4", "ipv6", "ip"):
            address = ip_address(text)
            if isinstance(address, IPv6Address) and address.scope_id is not None:
                raise FieldValueError(f"{text!r}: scoped IPv6 addresses are not accepted")
            if kind == "ipv4" and not isinstance(address, IPv4Address):
                raise FieldValueError(f"{text!r} is not an IPv4 address")
            if kind == "ipv6" and not isinstance(address, IPv6Address):
                raise FieldValueError(f"{text!r} is not an IPv6 address")
            return address
    except ValueError as exc:
        raise FieldValueError(f"{text!r} is not an IP address") from exc
    if kind == "int":
        if not _INT_RE.fullmatch(text):
            raise FieldValueError(f"{text!r} is not a non-negative integer")
        return int(text)
    if kind == "hex32":
        if not _HEX32_RE.fullmatch(text):
            raise FieldValueError(f"{text!r} is not a 32-bit hex number")
        return int(text, 16)
    if kind == "interface":
        if not _INTERFACE_RE.fullmatch(text):
            raise FieldValueError(f"{text!r} is not an interface name")
        return text
    raise FieldValueError(f"unknown field type {kind!r}")


# ---------------------------------------------------------------------- command checks

_CLEAR_PREFIXES = ("cle", "clea", "clear")  # IOS accepts `cle` as `clear`
_PIPE_FILTERS = ("include", "exclude", "begin", "section", "count")


def is_clear_command(command: str) -> bool:
    """True if any word is `clear` or an IOS abbreviation of it (also `do clear`, `... drop clear`)."""
    return any(word.lower() in _CLEAR_PREFIXES for word in command.split())


def placeholders_in(command: str) -> set[str]:
    """Names used as {name}; ValueError for anything but plain {identifier}."""
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(command))
    except ValueError as exc:
        raise ValueError(f"bad placeholder in {command!r}: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"bad placeholder {{{name}}} in {command!r}: use a plain {{name}}")
        names.add(name)
    return names


def _single_line(command: str) -> str:
    if not isinstance(command, str) or not command.strip():
        raise ValueError("command must be non-empty text")
    if has_control_character(command):
        raise ValueError(f"command {command!r} contains a line break or control character")
    return command.strip()


def _read_only(command: str) -> str:
    """Capture, verify and poll commands may only read: the read-only rule of `collect`
    (collector.readonly), and stricter here: `show` in full (templates are found by the
    command's full name) and every `|` segment one of the harmless filters."""
    command = _single_line(command)
    if not command.startswith("show "):
        raise ValueError(f"{command!r}: only 'show ...' commands may be used here (write 'show' in full)")
    for segment in command.split("|")[1:]:
        words = segment.split()
        verb = words[0].lower() if words else ""
        if not verb or not any(f.startswith(verb) for f in _PIPE_FILTERS):
            raise ValueError(
                f"{command!r}: output filter '| {verb}' is not allowed (only include, exclude, "
                "begin, section, count; never write files on the router)"
            )
    reason = read_only_refusal(command)  # what is left of the shared rule: `show run > flash:x`
    if reason is not None:
        raise ValueError(f"{command!r}: {reason}")
    return command


def _no_clear(command: str) -> str:
    if is_clear_command(command):
        raise ValueError(f"{command!r}: 'clear' commands are only allowed under remediate (enabled: true)")
    return command


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _ike_alias(value: object) -> object:
    return "isakmp" if value == "ikev1" else value


def _command_mapping(value: object) -> object:
    if isinstance(value, str):
        return {"command": value}
    if isinstance(value, (dict, BaseModel)):
        return value
    raise ValueError("expected a command (text) or a mapping {command, platforms, ike}")


def platform_tag(os_family: str) -> Platform:
    """The playbook condition tag for an OS family found by `show version`."""
    return "cisco_xe" if os_family == "iosxe" else "cisco_ios"


# ---------------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Conditional(_Model):
    platforms: tuple[Platform, ...] = ()  # empty: every platform
    ike: Annotated[Ike | None, BeforeValidator(_ike_alias)] = None  # None: both
    dmvpn: bool | None = None  # True: only routers with an mGRE (DMVPN) tunnel; None: all

    def applies_to(self, platform: str, ike: str, dmvpn: bool | None = None) -> bool:
        """`platform` is a tag from `platform_tag`, `ike` is isakmp|ikev2, `dmvpn` whether
        the router has an mGRE tunnel (None: not known, the condition does not filter)."""
        return ((not self.platforms or platform in self.platforms) and (self.ike is None or self.ike == ike)
                and (self.dmvpn is None or dmvpn is None or self.dmvpn == dmvpn))


class CommandSpec(_Conditional):
    """A read-only command with optional conditions (capture, verify)."""

    command: str

    @field_validator("command")
    @classmethod
    def _check(cls, value: str) -> str:
        return _no_clear(_read_only(value))


_Command = Annotated[CommandSpec, BeforeValidator(_command_mapping)]


class ArmStep(_Conditional):
    """One change made while armed, and the commands that take it back."""

    do: Annotated[tuple[str, ...], BeforeValidator(_as_list), Field(min_length=1)]
    undo: Annotated[tuple[str, ...], BeforeValidator(_as_list), Field(min_length=1)]
    mode: Literal["exec", "config"] = "exec"
    why: str = ""

    @field_validator("do", "undo")
    @classmethod
    def _check(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_no_clear(_single_line(c)) for c in value)

    @field_validator("undo")
    @classmethod
    def _fits_the_deadman(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Undo commands are replayed by the on-box EEM applet inside "..." strings.
        for command in value:
            if '"' in command or "$" in command:
                raise ValueError(f"{command!r}: undo commands may not contain '\"' or '$' (EEM strings)")
        return value


class RemediateStep(_Conditional):
    command: str

    @field_validator("command")
    @classmethod
    def _check(cls, value: str) -> str:
        return _single_line(value)


class Remediate(_Model):
    """State-changing repair (e.g. `clear crypto sa peer X`). Off unless enabled: true."""

    enabled: bool = False
    steps: tuple[RemediateStep, ...] = ()

    @model_validator(mode="after")
    def _clear_needs_enabled(self) -> Remediate:
        if not self.enabled:
            for i, step in enumerate(self.steps):
                if is_clear_command(step.command):
                    raise _Problem(
                        ("steps", i, "command"),
                        f"{step.command!r}: 'clear' commands need remediate.enabled: true",
                    )
        return self


INVALID_SPI_FIELDS: Mapping[str, FieldType] = {"src": "ip", "dst": "ip", "spi": "hex32", "prot": "int"}
INVALID_SPI_KEY = ("router", "src", "dst", "spi", "prot")


class Trigger(_Model):
    """Which log lines count, what makes two lines the same flow, where the peer is."""

    parser: Literal["invalid-spi"] | None = None
    regex: str | None = None
    fields: dict[str, FieldType] = {}
    key: tuple[str, ...] = ()
    peer: str | None = None

    _compiled: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Trigger:
        if (self.parser is None) == (self.regex is None):
            raise ValueError("give exactly one of 'parser: invalid-spi' or 'regex'")
        if self.parser is not None:
            for name in ("fields", "key", "peer"):
                if getattr(self, name):
                    raise _Problem((name,), f"'{name}' is fixed by the {self.parser} parser; remove it")
            return self
        pattern = re.compile(self.regex or "")
        groups = set(pattern.groupindex)
        if "router" in groups:
            raise _Problem(("regex",), "'router' is filled in by the agent; do not capture it")
        if pattern.groups != len(groups):
            raise _Problem(("regex",), "use only named groups (?P<name>...) or (?:...)")
        for name in sorted(groups - set(self.fields)):
            raise _Problem(("fields",), f"group '{name}' needs a type under fields")
        for name in self.fields:
            if name not in groups:
                raise _Problem(("fields", name), f"'{name}' is not a named group of the regex")
        if not self.key:
            raise _Problem(("key",), "key is required with regex, e.g. [router, interface]")
        for i, name in enumerate(self.key):
            if name != "router" and name not in self.fields:
                raise _Problem(("key", i), f"'{name}' is neither 'router' nor a field")
        if "router" not in self.key:
            raise _Problem(("key",), "key must contain 'router' (flows are per router)")
        if len(set(self.key)) != len(self.key):
            raise _Problem(("key",), "key lists a field twice")
        if self.peer is not None and self.fields.get(self.peer) not in ("ipv4", "ipv6", "ip"):
            raise _Problem(("peer",), f"peer must name an ipv4/ipv6/ip field, not {self.peer!r}")
        self._compiled = pattern
        return self

    @property
    def key_fields(self) -> tuple[str, ...]:
        return INVALID_SPI_KEY if self.parser else self.key

    @property
    def field_types(self) -> Mapping[str, FieldType]:
        return INVALID_SPI_FIELDS if self.parser else self.fields

    @property
    def peer_field(self) -> str | None:
        """The field holding the other tunnel end (seen from the router that logged)."""
        return "src" if self.parser else self.peer

    def match(self, line: str) -> dict[str, FieldValue] | None:
        """Validated fields of a regex trigger for `line`, None if it does not match.

        FieldValueError if it matches but a value is not of its declared type (a hostile
        or garbled line); the caller records it and acts on nothing."""
        if self._compiled is None:
            raise TypeError("match() is for regex triggers; use the invalid-spi parser in collector.detect")
        found = self._compiled.search(line)
        if found is None:
            return None
        return {name: validate_field(self.fields[name], text) for name, text in found.groupdict().items()}

    def key_of(self, router: str, values: Mapping[str, FieldValue]) -> tuple[str | int, ...]:
        """The tracker key (a tuple of str/int) for a regex trigger's match."""
        out: list[str | int] = []
        for name in self.key:
            value = router if name == "router" else values[name]
            out.append(value if isinstance(value, int) else str(value))
        return tuple(out)


class PollSource(_Model):
    enabled: bool = True
    interval: PositiveDuration = timedelta(seconds=60)
    command: str = "show logging"

    @field_validator("command")
    @classmethod
    def _check(cls, value: str) -> str:
        return _no_clear(_read_only(value))


class SyslogSource(_Model):
    enabled: bool = True
    # UDP syslog can be spoofed: a syslog line only counts once the router's own log,
    # read over SSH, shows it.
    confirm_over_ssh: bool = True


QFP_COMMANDS = (
    "show platform hardware qfp active statistics drop",
    "show platform hardware qfp active feature ipsec datapath drops all",
)


class QfpSource(_Model):
    """IOS-XE data-plane drop counters (the real invalid-SPI loss; docs/domain.md §2.7-2.8)."""

    enabled: bool = True
    interval: PositiveDuration = timedelta(minutes=5)
    commands: tuple[_Command, ...] = tuple(CommandSpec(command=c) for c in QFP_COMMANDS)


class Sources(_Model):
    poll: PollSource = PollSource()
    syslog: SyslogSource = SyslogSource()
    qfp: QfpSource = QfpSource()


class Cooldown(_Model):
    flow: Duration = timedelta(minutes=30)
    pair: Duration = timedelta(minutes=15)

    @field_validator("flow", "pair")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value


class Guards(_Model):
    max_armed_routers: int = Field(default=4, ge=1, le=1000)
    cpu_max_percent: int = Field(default=60, ge=1, le=100)
    cpu_measure: Literal["five_seconds", "one_minute", "five_minutes"] = "five_minutes"
    refuse_if_foreign_debugs: bool = True
    deadman_grace: PositiveDuration = timedelta(minutes=2)
    # Arm even when the on-box dead-man applet could not run (AAA without bypass): then
    # only the agent itself can disarm. Off: such a router is not armed.
    allow_arm_without_deadman: bool = False
    arm_unknown_sources: bool = False


LoggingLevel: TypeAlias = Literal[
    "emergencies", "alerts", "critical", "errors", "warnings", "notifications", "informational", "debugging"
]


class LoggingPolicy(_Model):
    """The log buffer while armed. Console/monitor logging is always switched off while
    armed where it was on (docs/domain.md §5), so it has no setting here."""

    buffered_size: int = Field(default=1_000_000, ge=4096, le=2_147_483_647)
    buffered_level: LoggingLevel = "debugging"


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_TRIGGERLESS_PLACEHOLDERS: set[str] = set()  # collect runs without per-router facts


class Playbook(_Model):
    """A validated playbook. Build it with `load_playbook`, or directly in tests."""

    name: str
    description: str = ""
    trigger: Trigger | None = None
    occurs: int = Field(default=2, ge=1, le=1000)
    within: PositiveDuration = timedelta(minutes=10)
    sources: Sources = Sources()
    window: PositiveDuration | None = None
    max_window: PositiveDuration = timedelta(minutes=30)
    cooldown: Cooldown = Cooldown()
    guards: Guards = Guards()
    logging: LoggingPolicy = LoggingPolicy()
    arm: tuple[ArmStep, ...] = ()
    capture: tuple[_Command, ...] = ()
    verify: tuple[_Command, ...] = ()
    remediate: Remediate = Remediate()

    @property
    def is_watch(self) -> bool:
        """True for a playbook the agent watches for; False for collect-only."""
        return self.trigger is not None

    @property
    def arm_window(self) -> timedelta:
        """How long debugs stay armed: `window`, or `within` when not given."""
        return self.window if self.window is not None else self.within

    def collect_commands(self, platform: str | None = None, ike: str | None = None) -> tuple[str, ...]:
        """The capture list for `collector collect`: commands whose conditions match.

        `platform` is a tag (cisco_ios|cisco_xe) and `ike` isakmp|ikev2; None means
        unknown, and then that condition does not filter. PlaybookError if a command
        needs a placeholder (a watch playbook's capture needs a peer)."""
        out: list[str] = []
        for spec in self.capture:
            if spec.platforms and platform is not None and platform not in spec.platforms:
                continue
            if spec.ike is not None and ike is not None and spec.ike != ike:
                continue
            if placeholders_in(spec.command):
                raise PlaybookError(
                    f"playbook {self.name}: {spec.command!r} needs values from a trigger; "
                    "use a collect-only playbook such as collect-crypto"
                )
            out.append(spec.command)
        return tuple(out)

    def allowed_placeholders(self) -> set[str]:
        if self.trigger is None:
            return set(_TRIGGERLESS_PLACEHOLDERS)
        names = {"ike"} | set(self.trigger.field_types)
        if self.trigger.peer_field is not None:
            names |= {"peer", "peer_family"}
        return names

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError(f"{value!r}: use lower-case letters, digits and '-' (at most 63)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Playbook:
        if self.window is not None and self.window < self.within:
            raise _Problem(
                ("window",),
                f"window ({format_duration(self.window)}) is shorter than within "
                f"({format_duration(self.within)}): the repeat would find the debugs already off",
            )
        if self.arm_window > self.max_window:
            raise _Problem(
                ("window",) if self.window is not None else ("within",),
                f"arm window {format_duration(self.arm_window)} exceeds max_window "
                f"{format_duration(self.max_window)}",
            )
        if self.trigger is None:
            for name in ("arm", "verify"):
                if getattr(self, name):
                    raise _Problem((name,), f"'{name}' needs a trigger (this is a collect-only playbook)")
            if self.remediate.steps:
                raise _Problem(("remediate",), "remediate needs a trigger")
            if not self.capture:
                raise _Problem(("capture",), "a collect-only playbook needs a capture list")
        allowed = self.allowed_placeholders()
        for loc, command in self._commands():
            try:
                used = placeholders_in(command)
            except ValueError as exc:
                raise _Problem(loc, str(exc)) from None
            if loc[0] == "verify" and used:
                raise _Problem(loc, f"{command!r}: verify commands take no placeholders")
            unknown = sorted(used - allowed)
            if unknown:
                raise _Problem(
                    loc,
                    f"{command!r}: unknown placeholder {{{unknown[0]}}} "
                    f"(available: {', '.join(sorted(allowed))})",
                )
        return self

    def _commands(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for i, step in enumerate(self.arm):
            for part in ("do", "undo"):
                for j, command in enumerate(getattr(step, part)):
                    yield ("arm", i, part, j), command
        for section in ("capture", "verify"):
            for i, spec in enumerate(getattr(self, section)):
                yield (section, i), spec.command
        for i, rstep in enumerate(self.remediate.steps):
            yield ("remediate", "steps", i, "command"), rstep.command


# ---------------------------------------------------------------------- loading


def load_playbook(path: str | Path) -> Playbook:
    """Read and validate one playbook file; PlaybookError("path:line: message") if it is bad."""
    try:
        doc = load_yaml(Path(path))
    except YamlError as exc:
        raise PlaybookError(str(exc)) from None
    if not isinstance(doc.data, dict):
        raise PlaybookError(str(YamlError(doc.path, doc.line_of(()), "a playbook is a mapping (name:, trigger:, ...)")))
    try:
        return Playbook.model_validate(doc.data)
    except ValidationError as exc:
        raise PlaybookError(_describe(doc, exc)) from None


def _describe(doc: Any, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    problem = errors[0].get("ctx", {}).get("error") if errors else None
    if not isinstance(problem, _Problem):
        return str(validation_error(doc, exc))
    loc = tuple(errors[0]["loc"]) + problem.loc
    shown = ".".join(str(step) for step in loc)
    more = len(errors) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return str(YamlError(doc.path, doc.line_of(loc), f"{shown}: {problem.message}{suffix}"))
