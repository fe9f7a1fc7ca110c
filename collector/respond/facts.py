"""What the agent must know about a router before it may arm it, read over SSH.

`read_profile` is slow-changing (show version, running-config, interface addresses) and
cached by the agent; `preflight` is read fresh right before arming: CPU headroom, the
debugs and crypto conditions already on (someone else's are never the tool's to switch
off), the running-config's `logging buffered` lines (restored verbatim), AAA command
authorization and EEM (can the dead-man applet run?), free vty lines (the applet's CLI
actions take one), the tool's own applets left behind, and last the log itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from collector.core.results import LogSnapshot
from collector.detect.logread import split_show_logging
from collector.respond.debugstate import DebugState, parse_debug_state
from collector.cryptoconfig import CryptoProfile, TunnelKind, classify_config
from collector.errors import SafetyRefusal
from collector.parsing import TemplateRegistry
from collector.respond.deadman import applet_names
from collector.respond.plan import LEVELS, LoggingSettings, check_buffered_config
from collector.command_results import CommandResult
from collector.sessions import CommandRefused, RouterSession
from collector.sessions.prompts import refusal_in as ios_refusal_in

PeerAddress = IPv4Address | IPv6Address

_CONSOLE = re.compile(r"^\s*Console logging:\s*(?:level (\w+)|disabled)", re.M)
_MONITOR = re.compile(r"^\s*Monitor logging:\s*(?:level (\w+)|disabled)", re.M)
_BUFFER = re.compile(r"^\s*Buffer logging:\s*(?:level (\w+)|disabled)", re.M)
_CPU = re.compile(r"CPU utilization for five seconds: (\d+)%(?:/(\d+)%)?; one minute: (\d+)%; five minutes: (\d+)%")


class PreflightRefused(SafetyRefusal):
    """A guard says no: the router must not be armed now (the message says why)."""


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    name: str
    os_family: str  # "ios" | "iosxe"
    model: str | None
    version: str | None
    is_asr1000: bool
    crypto: CryptoProfile
    running_config: str
    addresses: tuple[PeerAddress, ...]  # interface addresses from `show ip interface brief`

    @property
    def dmvpn(self) -> bool:
        """The router has an mGRE tunnel (the playbook's `dmvpn:` captures, such as `show ip nhrp`)."""
        return any(t.kind in (TunnelKind.MGRE_STATIC_NHRP, TunnelKind.MGRE_DYNAMIC_NHRP) for t in self.crypto.tunnels)

    def knows_ike_toward(self, peer: PeerAddress) -> bool:
        """Does the configuration alone say the IKE version toward `peer`? Not on a DMVPN
        hub with both versions: its spokes are dynamic, named in no tunnel."""
        named = any(_same(peer, p) for tunnel in self.crypto.tunnels for p in tunnel.peers)
        return named or len({t.ike_version for t in self.crypto.tunnels}) <= 1

    def ike_toward(self, peer: PeerAddress) -> str:
        """`isakmp` or `ikev2` for the tunnel to `peer`, from the configuration (a guess
        when `knows_ike_toward` is False)."""
        for tunnel in self.crypto.tunnels:
            if any(_same(peer, p) for p in tunnel.peers) and tunnel.ike_version == "IKEv2":
                return "ikev2"
        for tunnel in self.crypto.tunnels:
            if any(_same(peer, p) for p in tunnel.peers):
                return "isakmp"
        versions = {t.ike_version for t in self.crypto.tunnels}
        return "ikev2" if versions == {"IKEv2"} else "isakmp"


def _same(peer: PeerAddress, text: str) -> bool:
    try:
        return ip_address(text) == peer
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Preflight:
    """Fresh facts read right before arming, and what they allow.

    `debug_state` is the router's debugs and conditions as read; `foreign_*` are those the
    tool did not set (the caller says which are its own); `stale_applets` are dead-man
    applets of this tool on the router that no armed step accounts for."""

    logging: LoggingSettings
    cpu_percent: dict[str, int]
    foreign_debugs: tuple[str, ...]
    debug_state: DebugState = parse_debug_state("")
    foreign_conditions: tuple[str, ...] = ()
    stale_applets: tuple[str, ...] = ()
    command_authorization: bool = False  # `aaa authorization commands ...` configured
    eem_cli_username: str | None = None  # `event manager session cli username NAME`
    eem_version: float | None = None  # from `show event manager version` (read under AAA only)
    vty_lines: int | None = None  # from the `line vty` ranges
    vty_in_use: int | None = None  # from `show users` (our own session included)
    with_deadman: bool = True  # False only when the applet cannot run and the playbook allows that
    authorization_bypass: bool = False  # put `authorization bypass` on the applet
    notes: tuple[str, ...] = ()  # what was not known or not checked
    logged: int | None = None  # the header's `N messages logged` at pre-flight (None: not printed)
    also_read: tuple[CommandResult, ...] = ()  # the caller's own reads, typed ahead with these (`also`)


def parse_logging_settings(header: str) -> LoggingSettings:
    """Console, monitor and buffer logging from the `show logging` header."""

    def level(pattern: re.Pattern[str]) -> str | None:
        match = pattern.search(header)
        if not match or match.group(1) is None:
            return None
        value = match.group(1).lower()
        return value if value in LEVELS else None

    size = split_show_logging(header)[0].buffer_bytes  # the one reader of `Log Buffer (N bytes):`
    buffered = level(_BUFFER)
    return LoggingSettings(
        console_level=level(_CONSOLE),
        monitor_level=level(_MONITOR),
        buffered_level=buffered,
        buffered_size=size if buffered else None,
    )


def parse_cpu(text: str) -> dict[str, int]:
    match = _CPU.search(text)
    if not match:
        return {}
    return {"five_seconds": int(match.group(1)), "one_minute": int(match.group(3)), "five_minutes": int(match.group(4))}


# What a router's profile is read from, typed ahead in one write.
PROFILE_READS = ("show version", "show running-config", "show ip interface brief")


def read_profile(session: RouterSession, registry: TemplateRegistry, *, platform: str) -> DeviceProfile:
    """Version, running-config and interface addresses of one router, in one round trip
    (cached by the caller).

    Raises:
        SessionError: the session failed or a command was refused."""
    reads = session.run_many(PROFILE_READS, read_timeout=120)
    version_out, config_out, brief_out = (checked_result(session, out) for out in reads)
    version = registry.parse(platform, "show version", version_out.text)
    record = version.records[0] if version.records else {}
    family = str(record.get("os_family") or ("IOS-XE" if platform == "cisco_xe" else "IOS"))
    config = config_out.text
    addresses = interface_addresses(registry, platform, brief_out.text)
    return DeviceProfile(
        name=session.host.name,
        os_family="iosxe" if family.upper().replace("_", "-") == "IOS-XE" else "ios",
        model=_first(record, "hardware", "model"),
        version=_first(record, "version"),
        is_asr1000=bool(record.get("is_asr1000")),
        crypto=classify_config(config),
        running_config=config,
        addresses=addresses,
    )


def interface_addresses(registry: TemplateRegistry, platform: str, brief: str) -> tuple[PeerAddress, ...]:
    """The router's own addresses from `show ip interface brief` (unassigned ones skipped)."""
    found = []
    for row in registry.parse(platform, "show ip interface brief", brief).records:
        try:
            found.append(ip_address(str(row.get("ip_address") or row.get("ipaddr") or "")))
        except ValueError:
            continue
    return tuple(found)


def _first(record: dict, *names: str) -> str | None:
    for name in names:
        value = record.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return str(value)
    return None


# The header lines pre-flight reads (levels, count, size), not the buffer: `[Ll]og` also
# matched every `%SEC_LOGIN` "Login Success" line, 1.7 MB on a hub logged into each minute.
LOG_HEADER_COMMAND = "show logging | include Console.logging|Monitor.logging|Buffer.logging|Log.Buffer"
# One read of the running-config lines pre-flight needs (IOS `include` takes a regex).
CONFIG_LINES_COMMAND = ("show running-config | include ^logging buffered|^aaa authorization commands"
                        "|^event manager applet|^event manager session cli username|^line vty")
# What pre-flight reads, typed ahead in one write (one round trip, not six); the log's
# header last: its `N messages logged` marks the moment before arming.
PREFLIGHT_READS = ("show processes cpu | include CPU", "show debugging", "show crypto debug-condition",
                   CONFIG_LINES_COMMAND, "show users", LOG_HEADER_COMMAND)
_VTY_RANGE = re.compile(r"^line vty (\d+)(?: (\d+))?\s*$", re.M)
_USERS_VTY = re.compile(r"^\s*\*?\s*\d*\s*vty \d+\b", re.M | re.I)
_CLI_USERNAME = re.compile(r"^event manager session cli username (\S+)", re.M)
_AAA_COMMANDS = re.compile(r"^aaa authorization commands \d+ ", re.M)
_EEM_VERSION = re.compile(r"Embedded Event Manager Version (\d+\.\d+)", re.I)
AUTHORIZATION_FAILED = "Command authorization failed"
EEM_BYPASS_SINCE = 3.1  # `authorization bypass` on applets (real-routers.md, EEM)


_SESSION_IKE = re.compile(r"^\s*IKEv([12]) SA:", re.M)


def ike_from_session(show_crypto_session: str) -> str | None:
    """`isakmp` or `ikev2` from `show crypto session remote X` (`IKEv1 SA:` / `IKEv2 SA:`,
    docs/domain.md §2.6); None when it names neither (no IKE SA, or an old `IKE SA:`)."""
    versions = set(_SESSION_IKE.findall(show_crypto_session or ""))
    if len(versions) != 1:
        return None
    return "ikev2" if versions == {"2"} else "isakmp"


def command_authorization_on(config_lines: str) -> bool:
    """`aaa authorization commands LEVEL ...` is configured (commands go to the AAA server)."""
    return bool(_AAA_COMMANDS.search(config_lines or ""))


def eem_cli_username(config_lines: str) -> str | None:
    """The user named by `event manager session cli username NAME`, if any."""
    match = _CLI_USERNAME.search(config_lines or "")
    return match.group(1) if match else None


def parse_eem_version(show_event_manager_version: str | None) -> float | None:
    """`Embedded Event Manager Version N.M` from `show event manager version`."""
    match = _EEM_VERSION.search(show_event_manager_version or "")
    return float(match.group(1)) if match else None


def refusal_in(text: str) -> str | None:
    """The router's refusal in an output that did not raise: AAA command authorization
    prints `Command authorization failed.` without the `%` that CommandRefused keys on."""
    text = text or ""
    at = text.lower().find(AUTHORIZATION_FAILED.lower())  # one C-speed scan: a whole `show logging` is 10 MB
    if at < 0:
        return None
    start = max(text.rfind("\n", 0, at), text.rfind("\r", 0, at)) + 1
    return text[start:at + 200].splitlines()[0].strip()  # its line (the message is 29 characters)


def run_checked(session: RouterSession, command: str, **kwargs) -> CommandResult:
    """`session.run` that also counts `Command authorization failed.` as a refusal.

    Raises:
        CommandRefused: the router refused or AAA denied the command.
        SessionError: as `RouterSession.run`."""
    out = session.run(command, **kwargs)
    refused = refusal_in(out.text)
    if refused:
        raise CommandRefused(session.host.name, f"router refused {command!r}: {refused}", output=out.text)
    return out


def read_pre_arm_log(session: RouterSession, read_timeout: float) -> LogSnapshot:
    """The whole log just before arming, then `show clock` (its answer kept only when the
    router gave one).

    Raises:
        CommandRefused: the router refused `show logging`.
        SessionError: as `RouterSession.run`."""
    log_out = run_checked(session, "show logging", read_timeout=read_timeout)
    clock = _read(session, "show clock")
    if clock is None or not clock.text:
        return LogSnapshot(session.host.name, log_out.text, log_out.ended)
    return LogSnapshot(session.host.name, log_out.text, log_out.ended, clock.text, (clock.started, clock.ended))


def refusal_of(text: str) -> str | None:
    """The refusal in an answer that was not checked as it came (`run_many`): IOS's
    `% ...` or AAA's `Command authorization failed.`; None when the line was accepted."""
    return ios_refusal_in(text) or refusal_in(text)


def checked_result(session: RouterSession, out: CommandResult) -> CommandResult:
    """A `run_many` result, as `run_checked` would have given it.

    Raises:
        CommandRefused: the router refused or AAA denied the command."""
    refused = refusal_of(out.text)
    if refused:
        raise CommandRefused(session.host.name, f"router refused {out.command!r}: {refused}", output=out.text,
                             command=out.command)
    return out


def unless_refused(out: CommandResult) -> CommandResult | None:
    """A `run_many` result, or None when the router refused it (a read the caller can do
    without)."""
    return None if refusal_of(out.text) else out


def _read(session: RouterSession, command: str) -> CommandResult | None:
    """A read that may fail without stopping pre-flight: None when the router refused it."""
    try:
        return run_checked(session, command)
    except CommandRefused:
        return None


def count_vty_lines(config_lines: str) -> int | None:
    """vty lines configured (`line vty 0 4` = 5), None when no `line vty` is there."""
    total = 0
    for match in _VTY_RANGE.finditer(config_lines or ""):
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        total += max(0, last - first + 1)
    return total or None


def count_vty_in_use(show_users: str) -> int | None:
    """vty lines in use in `show users` (the line table; the interface table is not lines)."""
    if not show_users or "Line" not in show_users:
        return None
    table = show_users.split("Interface")[0]
    return len(_USERS_VTY.findall(table))


def preflight(
    session: RouterSession,
    *,
    cpu_max_percent: int,
    cpu_measure: str,
    refuse_foreign: bool,
    own_debugs: frozenset[str] = frozenset(),
    own_conditions: frozenset[str] = frozenset(),
    own_applets: frozenset[str] = frozenset(),
    allow_without_deadman: bool = False,
    enforce: bool = True,
    also: Sequence[str] = (),
) -> Preflight:
    """Fresh facts right before arming, read in one round trip (`PREFLIGHT_READS`, typed
    ahead): CPU, debugs and conditions, the running-config lines (logging buffered, AAA,
    EEM, vty), `show users`, and last the log's header (its `N messages logged` marks the
    moment: see arming's read after the steps). Under AAA command authorization without an
    EEM cli username, `show event manager version` follows them.

    `own_*` are what the tool itself has on this router (from the state store): they are not
    foreign. `enforce=False` (dry run) reports instead of refusing. `also`: read-only
    commands of the caller's, typed ahead after these; their results are `also_read`.

    Raises:
        PreflightRefused: a guard says no (CPU, foreign debugs with `refuse_foreign`, no
            free vty line for the applet, an applet that cannot run under AAA).
        PlanError: a `logging buffered` line that this tool could not restore.
        SessionError: the session failed, or a read the guards need was refused."""
    notes: list[str] = []
    refusals: list[str] = []
    reads = session.run_many((*PREFLIGHT_READS, *also))
    cpu_out, debugging_out, condition_out, config_out, users, header_out = reads[:len(PREFLIGHT_READS)]
    cpu = parse_cpu(checked_result(session, cpu_out).text)
    if not cpu:
        raise PreflightRefused("could not read CPU utilisation")
    if cpu.get(cpu_measure, 0) > cpu_max_percent:
        refusals.append(f"CPU {cpu_measure.replace('_', ' ')} at {cpu[cpu_measure]}% is above the {cpu_max_percent}% guard")
    debugging = checked_result(session, debugging_out).text
    condition_text = unless_refused(condition_out)
    if condition_text is None:
        notes.append("`show crypto debug-condition` refused: conditions set by others cannot be seen")
    state = parse_debug_state(debugging, condition_text.text if condition_text else None)
    foreign = tuple(sorted(state.debugs - own_debugs))
    foreign_conditions = tuple(sorted(state.peer_conditions - own_conditions))
    if (foreign or foreign_conditions) and refuse_foreign:
        what = [f"debug {d}" for d in foreign] + [f"condition peer {c}" for c in foreign_conditions]
        refusals.append(f"someone else's debugs are on ({', '.join(what)}): not adding crypto debugs on top "
                        "(refuse_if_foreign_debugs)")

    config_read = unless_refused(config_out)
    config = config_read.text if config_read else ""
    if config_read is None:
        notes.append("running-config lines refused: logging, AAA and vty settings unknown")
    buffered_config = tuple(check_buffered_config(line) for line in config.splitlines()
                            if line.startswith(("logging buffered", "no logging buffered")))
    authorization = command_authorization_on(config)
    username = eem_cli_username(config)
    stale = tuple(name for name in applet_names(config) if name not in own_applets)

    eem_version = None
    with_deadman, bypass = True, False
    if authorization and username is None:
        version = _read(session, "show event manager version")
        eem_version = parse_eem_version(version.text if version else None)
        if eem_version is not None and eem_version < EEM_BYPASS_SINCE:
            problem = (f"AAA command authorization is on, EEM {eem_version} has no `authorization bypass` and no "
                       "`event manager session cli username` is set: the dead-man applet could not run")
            if allow_without_deadman:
                with_deadman = False
                notes.append(problem + "; arming without it (allow_arm_without_deadman)")
            else:
                refusals.append(problem + " (allow_arm_without_deadman is off)")
        else:
            bypass = True  # refused at install time if the image lacks it: arming then stops
            if eem_version is None:
                notes.append("EEM version unknown: `authorization bypass` tried on the applet")

    vty_total = count_vty_lines(config)
    users = unless_refused(users)
    in_use = count_vty_in_use(users.text) if users else None
    if with_deadman:
        if vty_total is None or in_use is None:
            notes.append("free vty lines not counted (no `line vty` or `show users` read)")
        elif vty_total - in_use < 1:
            refusals.append(f"{in_use} of {vty_total} vty lines in use: the dead-man applet needs a free one")

    if refusals and enforce:
        raise PreflightRefused("; ".join(refusals))
    notes += refusals
    header = checked_result(session, header_out).text
    settings = parse_logging_settings(header)
    settings = LoggingSettings(settings.console_level, settings.monitor_level, settings.buffered_level,
                               settings.buffered_size, buffered_config)
    return Preflight(settings, cpu, foreign, state, foreign_conditions, stale, authorization,
                     username, eem_version, vty_total, in_use,
                     with_deadman, bypass, tuple(notes), split_show_logging(header)[0].logged,
                     tuple(reads[len(PREFLIGHT_READS):]))
