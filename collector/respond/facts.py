"""What the agent must know about a router before it may arm it, read over SSH.

`read_profile` is slow-changing (show version, running-config, interface addresses) and
cached by the agent; `preflight` is read fresh right before arming: logging settings (to
restore them exactly), CPU headroom, and debugs someone else left running.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from collector.errors import SafetyRefusal
from collector.diagnose.classify import CryptoProfile, classify_config
from collector.parsing import TemplateRegistry
from collector.respond.plan import LEVELS, LoggingSettings
from collector.sessions import DeviceSession

PeerAddress = IPv4Address | IPv6Address

_CONSOLE = re.compile(r"^\s*Console logging:\s*(?:level (\w+)|disabled)", re.M)
_MONITOR = re.compile(r"^\s*Monitor logging:\s*(?:level (\w+)|disabled)", re.M)
_BUFFER = re.compile(r"^\s*Buffer logging:\s*(?:level (\w+)|disabled)", re.M)
_BUFFER_SIZE = re.compile(r"^Log Buffer \((\d+) bytes\):", re.M)
_CPU = re.compile(r"CPU utilization for five seconds: (\d+)%(?:/(\d+)%)?; one minute: (\d+)%; five minutes: (\d+)%")
_DEBUG_ON = re.compile(r"^\s*(.+?) debugging is on\s*$", re.M | re.I)
_OUR_DEBUGS = re.compile(r"^Crypto (ISAKMP|IKEv2|IPSEC)$", re.I)


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

    def ike_toward(self, peer: PeerAddress) -> str:
        """`isakmp` or `ikev2` for the tunnel to `peer`, from the configuration."""
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
    logging: LoggingSettings
    cpu_percent: dict[str, int]
    foreign_debugs: tuple[str, ...]


def parse_logging_settings(header: str) -> LoggingSettings:
    """Console, monitor and buffer logging from the `show logging` header."""

    def level(pattern: re.Pattern[str]) -> str | None:
        match = pattern.search(header)
        if not match or match.group(1) is None:
            return None
        value = match.group(1).lower()
        return value if value in LEVELS else None

    size = _BUFFER_SIZE.search(header)
    buffered = level(_BUFFER)
    return LoggingSettings(
        console_level=level(_CONSOLE),
        monitor_level=level(_MONITOR),
        buffered_level=buffered,
        buffered_size=int(size.group(1)) if size and buffered else None,
    )


def parse_cpu(text: str) -> dict[str, int]:
    match = _CPU.search(text)
    if not match:
        return {}
    return {"five_seconds": int(match.group(1)), "one_minute": int(match.group(3)), "five_minutes": int(match.group(4))}


def parse_foreign_debugs(show_debugging: str) -> tuple[str, ...]:
    """Debugs that are on and are not the crypto debugs this tool arms."""
    found = []
    for match in _DEBUG_ON.finditer(show_debugging):
        name = match.group(1).strip()
        if not _OUR_DEBUGS.match(name):
            found.append(name)
    return tuple(found)


def read_profile(session: DeviceSession, registry: TemplateRegistry, *, platform: str) -> DeviceProfile:
    version_text = session.run("show version").text
    version = registry.parse(platform, "show version", version_text)
    record = version.records[0] if version.records else {}
    family = str(record.get("os_family") or ("IOS-XE" if platform == "cisco_xe" else "IOS"))
    config = session.run("show running-config", read_timeout=120).text
    addresses = interface_addresses(registry, platform, session.run("show ip interface brief").text)
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


def preflight(session: DeviceSession, *, cpu_max_percent: int, cpu_measure: str, refuse_foreign: bool) -> Preflight:
    """Fresh facts right before arming; PreflightRefused when a guard says no."""
    cpu = parse_cpu(session.run("show processes cpu | include CPU").text)
    if not cpu:
        raise PreflightRefused("could not read CPU utilisation")
    if cpu.get(cpu_measure, 0) > cpu_max_percent:
        raise PreflightRefused(f"CPU {cpu_measure.replace('_', ' ')} at {cpu[cpu_measure]}% is above the {cpu_max_percent}% guard")
    debugging = session.run("show debugging").text
    foreign = parse_foreign_debugs(debugging)
    if foreign and refuse_foreign:
        raise PreflightRefused(f"other debugs are running ({', '.join(foreign)}): not adding crypto debugs on top")
    header = session.run("show logging | include [Ll]og").text  # header lines only, not the buffer
    return Preflight(parse_logging_settings(header), cpu, foreign)
