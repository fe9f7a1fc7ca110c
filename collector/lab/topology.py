"""Build the lab's fleet plan: routers, addresses, tunnels and which scenario each tunnel plays.

Everything here is a frozen value computed from (routers, scenarios, seed): the same
arguments always give the same lab. The live model (SAs, logs, CLI) is built on top of
this plan by fleet.py / router.py.

Naming: hubs are `hub1..hubH`, spokes `spoke1..spokeS`, hubs first in insertion order.
H = 1 for fewer than 4 routers, otherwise max(2, round(N / 50)); 6 routers give 2 hubs
and 4 spokes, 500 routers give 10 hubs and 490 spokes.

Tunnels: spoke k (1-based) connects to hub ((k-1 + (k-1) div 8) mod H)+1 with the tunnel
kind of its slot ((k-1) mod 8, see SPOKE_SLOTS); consecutive hubs are linked by GRE P2P
tunnels.
Spoke tunnels come first (t1..tS), then the hub links, then DMVPN as deployed: one cloud
(10.100.0.0/16) whose hubs are paired (hub1+hub2, hub3+hub4...) by a static NHRP mapping
to each other (dual hub), and phase-3 spoke-to-spoke tunnels between DMVPN spokes taken
two by two, both ends learned from NHRP resolution (dynamic mappings). The hub pair's
mapping is configuration and NHRP cache only (CONFIG_ONLY_KINDS): the two hubs already
meet over their GRE link, and the model keeps one IPsec tunnel per pair of addresses.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass, field, replace

from collector.lab.clock import ZONES, LabZone
from collector.lab.logbuf import TimestampFormat
from collector.lab.platforms import HUB_PLATFORMS, PLATFORMS, SPOKE_PLATFORMS, Platform

# -- config types (docs/domain.md §3) ----------------------------------------------------

STATIC_MAP = "static-crypto-map"
DYNAMIC_MAP = "dynamic-crypto-map"
GRE_P2P = "gre-p2p"
MGRE_STATIC = "mgre-static-nhrp"
MGRE_DYNAMIC = "mgre-dynamic-nhrp"
SVTI = "svti"
DVTI = "dvti"
EZVPN_CLIENT = "ezvpn-client"
EZVPN_SERVER = "ezvpn-server"

# Cisco 115801's table: does `crypto isakmp invalid-spi-recovery` help when this end is
# the receiver? None = not applicable (EzVPN client). dVTI and the EzVPN server behave
# like a dynamic map: the receiver has no configured peer to initiate to.
RECOVERY_APPLIES: dict[str, bool | None] = {
    STATIC_MAP: True,
    GRE_P2P: True,
    MGRE_STATIC: True,
    SVTI: True,
    DYNAMIC_MAP: False,
    MGRE_DYNAMIC: False,
    DVTI: False,
    EZVPN_SERVER: False,
    EZVPN_CLIENT: None,
}

SCENARIOS = (
    "desync",
    "desync-under-way",  # began UNDER_WAY_SECONDS before the lab started: lines already in the buffer
    "desync-nat-t",  # the receiver sits behind NAT: destaddr is its inside address
    "desync-expiring",  # stops by itself when the sender's SA reaches its rekey time
    "desync-hub",  # every spoke of one hub (IKEv1 and IKEv2 tunnels) broken at once
    "desync-dmvpn-static",  # DMVPN flow over a static NHRP mapping: a spoke receives from its hub
    "desync-dmvpn-dynamic",  # DMVPN flow over a dynamic NHRP mapping: spoke-to-spoke shortcut
    "rekey-transient",
    "asr-silent",
    "nat-t-silent",
    "healthy",
)
DESYNC_VARIANTS = frozenset(("desync", "desync-under-way", "desync-nat-t", "desync-expiring", "desync-hub",
                             "desync-dmvpn-static", "desync-dmvpn-dynamic"))
FAULT_SCENARIOS = DESYNC_VARIANTS | {"asr-silent", "nat-t-silent"}
UNDER_WAY_SECONDS = 300.0  # a desync-under-way began this long before lab start (5 lines logged)
EXPIRING_AFTER = 200.0  # a desync-expiring stops this long after it began (sender's rekey)
MIX = ("desync", "rekey-transient", "asr-silent", "nat-t-silent", "healthy")

# Lab seconds after start at which scenario events happen.
DESYNC_AT = 30.0
REKEY_TRANSIENT_AT = 90.0


# -- realism (issue 11) --------------------------------------------------------------------
# Production traits a router of the lab can have. The default lab uses DEFAULT_REALISM
# (all of them); `realism="none"`, a list, or "-trait" asks for less. Each is described
# in docs/lab-fidelity.md.
REALISM_FEATURES = (
    "hostnames",  # device hostnames of real shape and length (up to 63), not the inventory key
    "timestamps",  # `service timestamps` variants: with and without year/time zone, sequence numbers
    "timestamps-harsh",  # `uptime` stamps and debug lines with no timestamp at all
    "big-buffers",  # `logging buffered 10000000` and more, pre-filled with a busy router's traffic
    "discriminator",  # `logging buffered SIZE LEVEL discriminator NAME` on some routers
    "operator-debug",  # someone's own `debug crypto ipsec` and peer condition already on
    "nat-t-receivers",  # receivers behind NAT that log their inside address as destaddr
    "scanners",  # internet sources sending ESP with random SPIs to public addresses
    "background",  # ordinary traffic of a busy router keeps the buffer moving
    "timezones",  # routers in CET/CEST, EST/EDT, AEST/AEDT: local `show clock`, UTC or local stamps
)
# Every trait is on by default: the default lab is the harshest router the agent will meet
# (issue 11). A test that needs a plain router says so (`realism="none"`, or "-trait").
DEFAULT_REALISM: frozenset[str] = frozenset(REALISM_FEATURES)
# A scenario that needs a trait turns it on (desync-nat-t needs a receiver behind NAT).
SCENARIO_TRAITS = {"desync-nat-t": "nat-t-receivers"}


def parse_realism(value: str | frozenset[str] | tuple[str, ...] | list[str] | None) -> frozenset[str]:
    """"all", "none", "default" or a comma list (a leading "-" removes a trait from the default)."""
    if value is None:
        return DEFAULT_REALISM
    if isinstance(value, frozenset | set | tuple | list):
        words = [str(w) for w in value]
    else:
        words = [w.strip() for w in str(value).split(",") if w.strip()]
    out: set[str] = set()
    base_used = False
    for word in words:
        if word in ("all", "default", "none"):
            out |= set(REALISM_FEATURES if word == "all" else DEFAULT_REALISM if word == "default" else ())
            base_used = True
        elif word.startswith("-") and word[1:] in REALISM_FEATURES:
            if not base_used:
                out |= DEFAULT_REALISM
                base_used = True
            out.discard(word[1:])
        elif word in REALISM_FEATURES:
            out.add(word)
        else:
            raise ValueError(
                f"unknown realism trait {word!r}: expected all, none, default or one of {', '.join(REALISM_FEATURES)}"
            )
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class TunnelKind:
    name: str
    ike_version: int
    spoke_type: str
    hub_type: str
    nat_t: bool = False


SPOKE_SLOTS: tuple[TunnelKind, ...] = (
    TunnelKind("crypto-map", 1, STATIC_MAP, DYNAMIC_MAP),
    TunnelKind("dmvpn", 1, MGRE_STATIC, MGRE_DYNAMIC),
    TunnelKind("flexvpn", 2, SVTI, DVTI),
    TunnelKind("ezvpn", 1, EZVPN_CLIENT, EZVPN_SERVER, nat_t=True),
    TunnelKind("gre-p2p", 1, GRE_P2P, GRE_P2P),
    TunnelKind("svti", 1, SVTI, SVTI),
    TunnelKind("static-map", 1, STATIC_MAP, STATIC_MAP),
    TunnelKind("svti-ikev2", 2, SVTI, SVTI),
)
HUB_LINK = TunnelKind("hub-gre-p2p", 1, GRE_P2P, GRE_P2P)
# DMVPN as deployed (docs/lab-fidelity.md): the dual-hub pair maps each other statically;
# a phase-3 shortcut between two spokes is dynamic at both ends.
DMVPN_HUBS = TunnelKind("dmvpn-hubs", 1, MGRE_STATIC, MGRE_STATIC)
DMVPN_SHORTCUT = TunnelKind("dmvpn-shortcut", 1, MGRE_DYNAMIC, MGRE_DYNAMIC)
DMVPN_KINDS = ("dmvpn", "dmvpn-hubs", "dmvpn-shortcut")
CONFIG_ONLY_KINDS = ("dmvpn-hubs",)  # in the config and `show ip nhrp`, no IPsec SAs modelled
DMVPN_MASK = "255.255.0.0"


def dmvpn_address(router: RouterSpec) -> str:
    """The router's Tunnel0 address in the one DMVPN cloud: hub h 10.100.0.h, spoke k
    10.100.(1 + (k-1) div 250).((k-1) mod 250 + 1)."""
    if router.role == "hub":
        return f"10.100.0.{int(router.name[3:])}"
    k = int(router.name[5:]) - 1
    return f"10.100.{1 + k // 250}.{k % 250 + 1}"


# -- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str
    enable_secret: str


@dataclass(frozen=True, slots=True)
class DpdSetting:
    interval: int
    retries: int
    mode: str  # "periodic" | "on-demand"

    @property
    def teardown_after(self) -> float:
        """Seconds of silence before the sender declares the peer dead (interval * retries)."""
        return float(self.interval * self.retries)


@dataclass(frozen=True, slots=True)
class LoggingDefaults:
    buffered_size: int
    buffered_level: str
    console_level: str | None  # None = `no logging console`
    monitor_level: str | None
    trap_level: str
    hosts: tuple[str, ...]  # configured `logging host` entries (modelled, not loopback)
    discriminator: str | None = None  # `logging buffered SIZE LEVEL discriminator NAME`
    prefill_bytes: int = 0  # ordinary history written into the buffer before the lab starts


@dataclass(frozen=True, slots=True)
class RouterSecrets:
    enable_hash: str
    admin_hash: str
    lab_hash: str
    snmp_ro: str
    snmp_rw: str
    tacacs_key: str
    nhrp_key: str


@dataclass(frozen=True, slots=True)
class RouterSpec:
    index: int
    name: str
    role: str  # "hub" | "spoke"
    site: str
    platform: Platform
    wan_ip: str
    wan_mask: str
    wan_gateway: str
    public_ip: str  # the address peers see (differs from wan_ip behind NAT)
    nat_t: bool
    lan_ip: str
    lan_net: str
    lan_mask: str
    loopback_ip: str
    syslog_source: str
    serial: str
    boot_age: float  # lab seconds between boot and lab start
    invalid_spi_recovery: bool
    isakmp_keepalive: DpdSetting | None
    ikev2_dpd: DpdSetting | None
    ntp_synced: bool
    sequence_numbers: bool
    show_timezone: bool
    inv_spi_interface: bool  # whether RECVD_PKT_INV_SPI carries `input interface=`
    logging: LoggingDefaults
    ipsec_lifetime: int
    ike_lifetime: int
    secrets: RouterSecrets
    hostname: str = ""  # the device's own `hostname` (the inventory key is `name`)
    log_format: TimestampFormat | None = None  # None: derived from show_timezone (legacy)
    debug_format: TimestampFormat | None = None
    operator_debugs: tuple[str, ...] = ()  # `debug crypto ...` someone left on (issue 16 item 4)
    operator_conditions: tuple[str, ...] = ()  # `debug crypto condition peer ipv4 ...` they set
    scanned: bool = False  # internet scanners send ESP with random SPIs to its public address
    background: bool = False  # a busy router: LINEPROTO/BGP/OSPF/NHRP/AAA messages keep coming
    zone: LabZone | None = None  # `clock timezone` (+ `summer-time`); None: the router keeps UTC

    @property
    def addresses(self) -> list[str]:
        out = [self.wan_ip]
        if self.public_ip != self.wan_ip:
            out.append(self.public_ip)
        return out + [self.loopback_ip, self.lan_ip]


@dataclass(frozen=True, slots=True)
class EndSpec:
    """One end of a tunnel, as that router configures and shows it."""

    router: str
    config_type: str
    interface: str  # `interface:` in show crypto ipsec sa / `Interface:` in show crypto session
    tag: str  # `Crypto map tag:`
    local_addr: str  # crypto endpoint address on this router (its interface)
    public_addr: str  # how the other end sees this one
    local_ident: tuple[str, str, int]  # (addr, mask, prot)
    remote_ident: tuple[str, str, int]
    tunnel_if: str | None  # configured tunnel / template interface, if any
    tunnel_ip: str | None
    tunnel_mask: str | None
    profile: str | None  # isakmp / ikev2 profile shown by show crypto session
    map_seq: int  # crypto map sequence (crypto map types), else 0
    acl: str | None
    ordinal: int  # position of this peer among the router's peers of the same kind (1-based)


@dataclass(frozen=True, slots=True)
class TunnelSpec:
    id: str
    index: int
    kind: str
    ike_version: int
    ends: tuple[EndSpec, EndSpec]
    psk: str
    nat_t: bool
    transform: str  # as `show crypto ipsec sa` prints it
    mode: str  # "Tunnel" | "Transport"
    rate_pps: tuple[float, float]  # packets/s sent by end 0, by end 1
    ipsec_lifetime: int
    ike_lifetime: int
    ipsec_age: float  # age of the current IPsec SAs at lab start
    ike_age: float
    scenario: str = "healthy"
    sender: int = 0  # end index that keeps sending in a fault scenario
    receiver: int = 1


@dataclass(frozen=True, slots=True)
class TunnelInfo:
    """What tests and the control API learn about a tunnel (Fleet.pairs())."""

    id: str
    kind: str
    ike_version: int
    a: str
    b: str
    a_type: str
    b_type: str
    a_addr: str  # address b sees for a
    b_addr: str
    nat_t: bool
    scenario: str
    sender: str  # router name that keeps sending (scenario tunnels; end a for healthy)
    receiver: str
    sender_addr: str  # srcaddr of the flow as the receiver logs it
    receiver_addr: str  # destaddr
    recovery: bool | None  # invalid-spi-recovery applies at the receiver (build-time config)
    sender_dpd: bool
    persistent: bool  # a desync here repeats until the sender's SA lifetime runs out


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    name: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class FleetPlan:
    seed: int
    credentials: Credentials
    routers: tuple[RouterSpec, ...]
    tunnels: tuple[TunnelSpec, ...]
    by_name: dict[str, RouterSpec] = field(compare=False, hash=False)
    realism: frozenset[str] = frozenset()


# -- scenario specs -----------------------------------------------------------------------


def parse_scenarios(specs: list[str]) -> list[ScenarioSpec]:
    """Parse "name[:count]" strings; `mix` expands to one of each scenario."""
    out: list[ScenarioSpec] = []
    for raw in specs:
        text = raw.strip()
        name, sep, count_text = text.partition(":")
        name = name.strip().lower()
        if name not in (*SCENARIOS, "mix"):
            raise ValueError(
                f"unknown scenario {raw!r}: expected one of {', '.join((*SCENARIOS, 'mix'))}, optionally with :COUNT"
            )
        count = 1
        if sep:
            try:
                count = int(count_text)
            except ValueError:
                raise ValueError(f"scenario {raw!r}: count {count_text!r} is not a whole number") from None
            if count < 1:
                raise ValueError(f"scenario {raw!r}: count must be at least 1")
        if name == "mix":
            out.extend(ScenarioSpec(n, count) for n in MIX)
        else:
            out.append(ScenarioSpec(name, count))
    return out


# -- deterministic helpers ----------------------------------------------------------------

_HASH_ALPHABET = "./" + string.digits + string.ascii_uppercase + string.ascii_lowercase
_KEY_ALPHABET = string.ascii_letters + string.digits


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(f"{seed}:" + ":".join(str(p) for p in parts))


def _token(rng: random.Random, n: int, alphabet: str = _KEY_ALPHABET) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _type9(rng: random.Random, old: bool = False) -> str:
    """Text shaped like an IOS type 9 (scrypt) secret: $9$<14 salt>$<43 hash>.

    IOS 12.4 has no type 9; it gets a type 5 (MD5-crypt) shape: $1$<4 salt>$<22 hash>.
    """
    if old:
        return f"$1${_token(rng, 4, _HASH_ALPHABET)}${_token(rng, 22, _HASH_ALPHABET)}"
    return f"$9${_token(rng, 14, _HASH_ALPHABET)}${_token(rng, 43, _HASH_ALPHABET)}"


def lab_credentials(seed: int) -> Credentials:
    token = hashlib.sha256(f"collector-lab:{seed}".encode()).hexdigest()[:6]
    return Credentials(username="lab", password=f"lab-{token}", enable_secret=f"en-{token}")


def hub_count(routers: int) -> int:
    if routers < 4:
        return 1
    return max(2, round(routers / 50))


def _public_spoke_ip(k: int) -> str:
    """Spoke k (0-based) public address: 192.0.2.0/24, 203.0.113.0/24, then 100.64.0.0/10."""
    if k < 250:
        return f"192.0.2.{k + 3}"
    k -= 250
    if k < 250:
        return f"203.0.113.{k + 3}"
    k -= 250
    return f"100.64.{k // 250}.{k % 250 + 3}"


def _ip_add(net: str, n: int) -> str:
    parts = [int(p) for p in net.split(".")]
    value = (parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3]) + n
    return ".".join(str((value >> s) & 255) for s in (24, 16, 8, 0))


_LEVELS = ("informational", "debugging", "warnings", "notifications")


def _router_spec(seed: int, index: int, name: str, role: str, number: int, platform: Platform) -> RouterSpec:
    rng = _rng(seed, "router", name)
    if role == "hub":
        wan_ip = f"198.51.100.{number}"
        public_ip = wan_ip
        gateway = "198.51.100.254"
        lan_net = f"192.168.{number}.0"
        site = f"dc{number}"
        nat_t = False
    else:
        public_ip = _public_spoke_ip(number - 1)
        site = f"branch{number}"
        nat_t = platform.family == "ios124"  # the old EzVPN client sits behind a NAT box
        if nat_t:
            wan_ip = f"10.250.{(number - 1) // 250}.{(number - 1) % 250 + 2}"
            gateway = wan_ip.rsplit(".", 1)[0] + ".1"
        else:
            wan_ip = public_ip
            gateway = _ip_add(wan_ip.rsplit(".", 1)[0] + ".0", 254)
        lan_net = f"172.{16 + (number - 1) // 256}.{(number - 1) % 256}.0"
    n = index + 1
    keepalive_roll = rng.random()
    if keepalive_roll < 0.5:
        keepalive = None
    elif keepalive_roll < 0.8:
        keepalive = DpdSetting(10, 3, "periodic")
    else:
        keepalive = DpdSetting(30, 5, "on-demand")
    ikev2_dpd = DpdSetting(10, 3, "periodic") if rng.random() < 0.5 else None
    if name == "spoke1":
        # spoke1 never runs DPD: every seed keeps a desync candidate that repeats
        keepalive = ikev2_dpd = None
    style = (index * 3 + seed) % 4  # 0 `*`-clock, 1 sequence numbers, 2 NTP, 3 NTP + time zone
    is_old = platform.family == "ios124"
    buffered = rng.choice(
        ((64000, "informational"), (100000, "debugging"), (16384, "informational"), (512000, "debugging"))
    )
    console = rng.choice((None, "debugging", "informational", "critical"))
    return RouterSpec(
        hostname=name,
        index=index,
        name=name,
        role=role,
        site=site,
        platform=platform,
        wan_ip=wan_ip,
        wan_mask="255.255.255.0",
        wan_gateway=gateway,
        public_ip=public_ip,
        nat_t=nat_t,
        lan_ip=_ip_add(lan_net, 1),
        lan_net=lan_net,
        lan_mask="255.255.255.0",
        loopback_ip=f"10.255.{index // 250}.{index % 250 + 1}",
        syslog_source=f"127.20.{n // 256}.{n % 256}",
        serial=platform.board_prefix + _token(rng, 8, string.digits + string.ascii_uppercase),
        boot_age=rng.uniform(3, 60) * 86400.0,
        invalid_spi_recovery=rng.random() < 0.4,
        isakmp_keepalive=keepalive,
        ikev2_dpd=ikev2_dpd,
        ntp_synced=style in (2, 3),
        sequence_numbers=style == 1,
        show_timezone=style == 3,
        inv_spi_interface=not is_old and (index + seed) % 3 != 1,  # domain.md §2.1 a/c vs b/d
        logging=LoggingDefaults(
            buffered_size=buffered[0],
            buffered_level=buffered[1],
            console_level=console,
            monitor_level=rng.choice((None, "debugging", "informational")),
            trap_level=rng.choice(_LEVELS[:1] * 3 + _LEVELS[2:]),
            hosts=("10.255.255.10",) if rng.random() < 0.7 else (),
        ),
        ipsec_lifetime=rng.choice((3600, 3600, 1800)),
        ike_lifetime=rng.choice((86400, 86400, 28800)),
        secrets=RouterSecrets(
            enable_hash=_type9(rng, is_old),
            admin_hash=_type9(rng, is_old),
            lab_hash=_type9(rng, is_old),
            snmp_ro="ro-" + _token(rng, 10),
            snmp_rw="rw-" + _token(rng, 12),
            tacacs_key="tac-" + _token(rng, 12),
            nhrp_key="nh" + _token(rng, 6),
        ),
    )


# -- realism: device hostnames, timestamps, buffers, operator debugs ------------------------

_CITIES = ("ams", "fra", "lon", "par", "nyc", "sin", "syd", "tyo", "sfo", "chi", "mad", "waw")
_REGIONS = ("emea", "emea", "emea", "emea", "amer", "apac", "apac", "apac", "amer", "amer", "emea", "emea")
HOSTNAME_MAX = 63  # IOS `hostname` limit


def _model_slug(platform: Platform) -> str:
    model = platform.model.lower().split("/")[0].replace("-", "")
    return model.replace("cisco", "c")


def device_hostname(spec: RouterSpec, routers: int) -> str:
    """A hostname of the shapes operators use: site codes, model, role, dots and dashes.

    Every sixth router (and the last of a fleet under six) gets exactly HOSTNAME_MAX
    characters; the others range from 20 to 40+, all longer than netmiko's 16.
    """
    k = spec.index
    city = _CITIES[k % len(_CITIES)]
    region = _REGIONS[k % len(_REGIONS)]
    model = _model_slug(spec.platform)
    site = spec.site
    unit = "wan" if spec.role == "hub" else "ce"
    longest = k % 6 == 5 or (routers < 6 and k == routers - 1)
    if longest:
        head = f"rtr-{city}-{site}-{model}-{unit}{k + 1:02d}"
        tail = f".{region}.corp.example.net"
        room = HOSTNAME_MAX - len(head) - len(tail)
        middle = ("-inet-ipsec-dmvpn-backup-path-via-isp2-lte-fallback-managed-noc" * 2)[: max(room, 0)]
        name = (head + middle)[: HOSTNAME_MAX - len(tail)]
        if name.endswith("-"):
            name = name[:-1] + "1"
        return name + tail
    shape = k % 6
    if shape == 0:
        return f"rtr-{city}-{site}-{model}-{unit}{k + 1:02d}"  # rtr-ams-dc1-isr4451x-wan01
    if shape == 1:
        return f"{city}-{site}-{model}-{'vpnhub' if spec.role == 'hub' else 'cpe'}{k + 1:02d}.core"
    if shape == 2:
        return f"br{k + 1:04d}-{city}-{model}-r1"
    if shape == 3:
        return f"rtr-{city}-{site}-{model}-{unit}{k + 1:02d}.{region}.corp"
    return f"{city}{k + 1:03d}-{model}-{unit}01.{region}"


# `service timestamps` per router (Cisco command reference: `service timestamps [debug |
# log] datetime [msec] [localtime] [show-timezone] [year]` or `uptime`). Each row is
# (log, debug, sequence numbers); rows cycle over the fleet so six routers show them all.
_TS = TimestampFormat
TIMESTAMP_STYLES: tuple[tuple[TimestampFormat, TimestampFormat, bool], ...] = (
    (_TS("datetime", msec=True, localtime=True, show_timezone=True), _TS("datetime", msec=True, localtime=True, show_timezone=True), False),
    (_TS("datetime", msec=True, localtime=True, show_timezone=True, year=True), _TS("datetime", msec=True, localtime=True, show_timezone=True, year=True), True),
    (_TS("datetime", msec=True), _TS("none"), True),  # debug lines print no timestamp at all
    (_TS("datetime", msec=True, localtime=True, show_timezone=True, year=True), _TS("none"), False),
    (_TS("datetime", msec=True), _TS("datetime", msec=True), False),
    (_TS("uptime"), _TS("uptime"), True),  # `8w0d: ` / `1d02h: ` / `00:39:24: `
)

BIG_BUFFER = 10_000_000
BIGGER_BUFFER = 50_000_000
DISCRIMINATOR = "NOFLAP"  # keeps interface flaps out of the buffer (logbuf.DISCRIMINATORS)


def _realistic(spec: RouterSpec, routers: int, realism: frozenset[str], seed: int) -> RouterSpec:
    k = spec.index
    changes: dict[str, object] = {}
    if "nat-t-receivers" in realism and spec.role == "spoke" and k % 4 == 3 and spec.public_ip == spec.wan_ip:
        # a branch behind a NAT box (not the 12.4 EzVPN client, which never logs under NAT-T):
        # it logs its inside address as destaddr while its peers know the public one (port 4500)
        number = int(spec.name[5:])
        inside = f"10.251.{(number - 1) // 250}.{(number - 1) % 250 + 2}"
        changes.update(wan_ip=inside, wan_gateway=inside.rsplit(".", 1)[0] + ".1", nat_t=True)
    if "hostnames" in realism:
        changes["hostname"] = device_hostname(spec, routers)
    if "timestamps" in realism or "timestamps-harsh" in realism:
        log_fmt, debug_fmt, seq = TIMESTAMP_STYLES[k % len(TIMESTAMP_STYLES)]
        if "timestamps-harsh" not in realism:
            # the same variety without uptime stamps or unstamped debug lines
            if log_fmt.kind == "uptime":
                log_fmt = _TS("datetime", msec=True, localtime=True, show_timezone=True)
            debug_fmt = log_fmt
        changes.update(log_format=log_fmt, debug_format=debug_fmt, sequence_numbers=seq)
        changes["show_timezone"] = log_fmt.show_timezone
    logging = spec.logging
    if "big-buffers" in realism and k in (0, 3, 9):
        # 10 MB on the first hub (full: weeks of traffic) and on a spoke, 50 MB on a tenth
        # router; the spokes' buffers hold ~1 MB (resized some days ago). Filling costs
        # about 1.5 s of lab start per 10 MB, so the full one is the first hub only.
        size = BIGGER_BUFFER if k == 9 else BIG_BUFFER
        fill = int(size * 0.97) if k == 0 else 1_000_000
        logging = replace(logging, buffered_size=size, buffered_level="debugging", prefill_bytes=fill)
    if "discriminator" in realism and k % 4 == 1:
        logging = replace(logging, discriminator=DISCRIMINATOR, buffered_level="debugging")
    if "background" in realism and logging.prefill_bytes == 0:
        logging = replace(logging, prefill_bytes=min(logging.buffered_size, 64000) // 2)
    changes["logging"] = logging
    changes["background"] = "background" in realism
    if "timezones" in realism:
        changes.update(_zone_changes(spec, changes))
    changes["scanned"] = "scanners" in realism and not changes.get("nat_t", spec.nat_t) and k % 2 == 0
    return replace(spec, **changes)


# Which routers leave UTC (by index, repeating every six), and how they stamp their lines:
# "as-is" keeps the stamp formats chosen above (UTC stamps stay UTC, `localtime
# show-timezone` prints the zone's name); "utc" drops `localtime` (stamps in UTC while
# `show clock` is local); "local" makes them `localtime` without `show-timezone` (local
# wall time and no zone: the hardest to read back).
ZONE_PLAN: dict[int, tuple[str, str]] = {0: ("CET", "utc"), 2: ("EST", "local"), 3: ("CET", "as-is"),
                                         4: ("JST", "as-is"), 5: ("AEST", "as-is")}


def _zone_changes(spec: RouterSpec, changes: dict[str, object]) -> dict[str, object]:
    planned = ZONE_PLAN.get(spec.index % 6)
    if planned is None:
        return {}
    zone, stamps = planned
    out: dict[str, object] = {"zone": ZONES[zone]}
    if stamps != "as-is":
        derived = _TS("datetime", msec=True, localtime=spec.show_timezone, show_timezone=spec.show_timezone)
        for which in ("log_format", "debug_format"):
            fmt = changes.get(which, getattr(spec, which)) or derived
            if fmt.kind == "datetime":
                fmt = replace(fmt, localtime=stamps == "local",
                              show_timezone=fmt.show_timezone and stamps != "local")
            out[which] = fmt
        out["show_timezone"] = out["log_format"].show_timezone  # type: ignore[attr-defined]
    return out


def _operator_debug(spec: RouterSpec, tunnels: list[TunnelSpec]) -> RouterSpec:
    """Someone is already debugging one of this router's peers (every sixth router from the
    second: `debug crypto ipsec` + a condition), or left a condition behind (from the fifth)."""
    peers = [t.ends[1 - i].public_addr for t in tunnels for i in (0, 1) if t.ends[i].router == spec.name]
    if not peers:
        return spec
    if spec.index % 6 == 1:
        return replace(spec, operator_debugs=("ipsec",), operator_conditions=(peers[-1],))
    if spec.index % 6 == 4:
        return replace(spec, operator_conditions=(peers[0],))
    return spec


# -- tunnels --------------------------------------------------------------------------------

_ANY = ("0.0.0.0", "0.0.0.0", 0)


def _host(addr: str) -> tuple[str, str, int]:
    return (addr, "255.255.255.255", 47)


class _Ordinals:
    """Per-router counters so that each router numbers its peers of one kind 1, 2, 3..."""

    def __init__(self) -> None:
        self._n: dict[tuple[str, str], int] = {}

    def next(self, router: str, key: str) -> int:
        value = self._n.get((router, key), 0) + 1
        self._n[(router, key)] = value
        return value


def _transform(kind: TunnelKind, a: RouterSpec, b: RouterSpec) -> str:
    if kind.ike_version == 2:
        return "esp-gcm 256"
    if "ios124" in (a.platform.family, b.platform.family):
        return "esp-256-aes esp-sha-hmac"
    return "esp-256-aes esp-sha256-hmac"


def _build_tunnel(
    seed: int, index: int, kind: TunnelKind, spoke: RouterSpec, hub: RouterSpec, ords: _Ordinals
) -> TunnelSpec:
    """End 0 = spoke (or the lower hub of a hub link), end 1 = hub."""
    tid = f"t{index}"
    rng = _rng(seed, "tunnel", tid)
    s, h = spoke, hub
    s_lan = (s.lan_net, s.lan_mask, 0)
    h_lan = (h.lan_net, h.lan_mask, 0)
    name = kind.name
    if name == "crypto-map":
        seq_h = ords.next(h.name, "dynamic")
        e0 = EndSpec(
            s.name,
            STATIC_MAP,
            s.platform.wan_if,
            "VPN-MAP",
            s.wan_ip,
            s.public_ip,
            s_lan,
            h_lan,
            None,
            None,
            None,
            None,
            10,
            f"VPN-TO-{h.name.upper()}",
            1,
        )
        e1 = EndSpec(
            h.name,
            DYNAMIC_MAP,
            h.platform.wan_if,
            "VPN-MAP",
            h.wan_ip,
            h.public_ip,
            h_lan,
            s_lan,
            None,
            None,
            None,
            None,
            65535,
            None,
            seq_h,
        )
    elif name in DMVPN_KINDS:
        # end 0: the spoke (or the lower hub, or the first spoke of a shortcut); both ends'
        # Tunnel0 sit in the one cloud, each router with its own address
        e0, e1 = (
            EndSpec(a.name, ctype, "Tunnel0", "Tunnel0-head-0", a.wan_ip, a.public_ip, _host(a.wan_ip),
                    _host(b.public_ip), "Tunnel0", dmvpn_address(a), DMVPN_MASK, None, 0, None,
                    ords.next(a.name, "dmvpn"))
            for a, b, ctype in ((s, h, kind.spoke_type), (h, s, kind.hub_type))
        )
    elif name == "flexvpn":
        n = ords.next(h.name, "dvti")
        e0 = EndSpec(
            s.name,
            SVTI,
            "Tunnel1",
            "Tunnel1-head-0",
            s.wan_ip,
            s.public_ip,
            _ANY,
            _ANY,
            "Tunnel1",
            None,
            None,
            "FLEX-SPOKE",
            0,
            None,
            1,
        )
        e1 = EndSpec(
            h.name,
            DVTI,
            f"Virtual-Access{n}",
            f"Virtual-Access{n}-head-0",
            h.wan_ip,
            h.public_ip,
            _ANY,
            _ANY,
            "Virtual-Template1",
            None,
            None,
            "FLEX-HUB",
            0,
            None,
            n,
        )
    elif name == "ezvpn":
        n = ords.next(h.name, "ezvpn")
        e0 = EndSpec(
            s.name,
            EZVPN_CLIENT,
            s.platform.wan_if,
            f"{s.platform.wan_if}-head-0",
            s.wan_ip,
            s.public_ip,
            s_lan,
            h_lan,
            None,
            None,
            None,
            None,
            0,
            None,
            1,
        )
        e1 = EndSpec(
            h.name,
            EZVPN_SERVER,
            h.platform.wan_if,
            "VPN-MAP",
            h.wan_ip,
            h.public_ip,
            h_lan,
            s_lan,
            None,
            None,
            None,
            "EZVPN-PROF",
            65535,
            None,
            n,
        )
    elif name in ("gre-p2p", "hub-gre-p2p", "svti", "svti-ikev2"):
        base = {"gre-p2p": 100, "hub-gre-p2p": 100, "svti": 200, "svti-ikev2": 300}[name]
        ifname = f"Tunnel{base + index}"
        net = f"10.200.{(index * 4) // 256}.{(index * 4) % 256}"
        ctype = GRE_P2P if "gre" in name else SVTI
        if ctype == GRE_P2P:
            id0, id1 = _host(s.wan_ip), _host(h.public_ip)
            id1b, id0b = _host(h.wan_ip), _host(s.public_ip)
        else:
            id0 = id1 = id1b = id0b = _ANY
        profile = "FLEX-P2P" if name == "svti-ikev2" else None
        e0 = EndSpec(
            s.name,
            ctype,
            ifname,
            f"{ifname}-head-0",
            s.wan_ip,
            s.public_ip,
            id0,
            id1,
            ifname,
            _ip_add(net, 1),
            "255.255.255.252",
            profile,
            0,
            None,
            ords.next(s.name, ctype),
        )
        e1 = EndSpec(
            h.name,
            ctype,
            ifname,
            f"{ifname}-head-0",
            h.wan_ip,
            h.public_ip,
            id1b,
            id0b,
            ifname,
            _ip_add(net, 2),
            "255.255.255.252",
            profile,
            0,
            None,
            ords.next(h.name, ctype),
        )
    elif name == "static-map":
        n = ords.next(h.name, "static")
        e0 = EndSpec(
            s.name,
            STATIC_MAP,
            s.platform.wan_if,
            "VPN-MAP",
            s.wan_ip,
            s.public_ip,
            s_lan,
            h_lan,
            None,
            None,
            None,
            None,
            10,
            f"VPN-TO-{h.name.upper()}",
            1,
        )
        e1 = EndSpec(
            h.name,
            STATIC_MAP,
            h.platform.wan_if,
            "VPN-MAP",
            h.wan_ip,
            h.public_ip,
            h_lan,
            s_lan,
            None,
            None,
            None,
            None,
            10 * n,
            f"VPN-TO-{s.name.upper()}",
            n,
        )
    else:  # pragma: no cover - the slot table is closed
        raise AssertionError(name)

    ipsec_lifetime = min(s.ipsec_lifetime, h.ipsec_lifetime)
    ike_lifetime = min(s.ike_lifetime, h.ike_lifetime)
    ipsec_age = rng.uniform(0.0, 0.8 * ipsec_lifetime)
    ike_age = rng.uniform(ipsec_age, max(ipsec_age, 0.85 * ike_lifetime))
    mode = "Transport" if name in (*DMVPN_KINDS, "gre-p2p", "hub-gre-p2p") else "Tunnel"
    return TunnelSpec(
        id=tid,
        index=index,
        kind=name,
        ike_version=kind.ike_version,
        ends=(e0, e1),
        psk=_psk(seed, kind, s, h, rng),
        # NAT-T on the EzVPN kind (the 12.4 client behind NAT) and on any tunnel of a branch
        # that realism "nat-t-receivers" put behind NAT
        nat_t=(kind.nat_t and (s.nat_t or h.nat_t)) or any(r.nat_t and r.platform.family != "ios124" for r in (s, h)),
        transform=_transform(kind, s, h),
        mode=mode,
        rate_pps=(round(rng.uniform(2, 40), 1), round(rng.uniform(2, 40), 1)),
        ipsec_lifetime=ipsec_lifetime,
        ike_lifetime=ike_lifetime,
        ipsec_age=ipsec_age,
        ike_age=ike_age,
    )


def _psk(seed: int, kind: TunnelKind, spoke: RouterSpec, hub: RouterSpec, rng: random.Random) -> str:
    """Per-tunnel key, except where the hub side is dynamic: then every spoke of that hub
    must share the hub's wildcard key (ISAKMP wildcard, EzVPN group, IKEv2 keyring)."""
    shared = {"crypto-map": "ikev1-wildcard", "dmvpn": "ikev1-wildcard", "ezvpn": "ezvpn", "flexvpn": "flex"}
    if kind.name in DMVPN_KINDS or kind.name == "crypto-map":
        # one DMVPN cloud: spokes meet spokes of the other hub (shortcuts) and the hubs each
        # other, so every member shares the wildcard key (the crypto-map spokes use it too)
        return "Psk-" + _token(_rng(seed, "hubkey", "dmvpn-cloud", "ikev1-wildcard"), 16)
    if kind.name in shared:
        return "Psk-" + _token(_rng(seed, "hubkey", hub.name, shared[kind.name]), 16)
    return "Psk-" + _token(rng, 16)


# -- scenario assignment ------------------------------------------------------------------


def _dpd_for(router: RouterSpec, ike_version: int) -> DpdSetting | None:
    return router.isakmp_keepalive if ike_version == 1 else router.ikev2_dpd


def recovery_applies(tunnel: TunnelSpec, receiver: RouterSpec, receiver_end: int, *, enabled: bool) -> bool | None:
    """Would the receiver's invalid-spi-recovery resync this tunnel? None = not applicable."""
    applies = RECOVERY_APPLIES[tunnel.ends[receiver_end].config_type]
    if applies is None or tunnel.ike_version != 1:
        return None
    return bool(applies and enabled)


def _receiver_logs(tunnel: TunnelSpec, receiver: RouterSpec) -> bool:
    # CSCsq59183: old images under NAT-T never report the invalid SPI
    return not (receiver.platform.family == "ios124" and tunnel.nat_t)


def _persistent(tunnel: TunnelSpec, by_name: dict[str, RouterSpec], receiver_end: int) -> bool:
    rx = by_name[tunnel.ends[receiver_end].router]
    tx = by_name[tunnel.ends[1 - receiver_end].router]
    recovers = recovery_applies(tunnel, rx, receiver_end, enabled=rx.invalid_spi_recovery)
    return not recovers and _dpd_for(tx, tunnel.ike_version) is None


def _candidates(name: str, tunnel: TunnelSpec, by_name: dict[str, RouterSpec]) -> list[int]:
    """Receiver end indexes this scenario may use on the tunnel, best first."""
    ends = [1, 0]  # prefer the hub (end 1) as the receiver: spokes keep sending towards it
    rx = [by_name[tunnel.ends[i].router] for i in (0, 1)]
    if name == "asr-silent":
        return [i for i in ends if rx[i].platform.is_asr]
    if name == "nat-t-silent":
        return [i for i in ends if rx[i].platform.family == "ios124" and tunnel.nat_t]
    if name == "desync-nat-t":
        return [i for i in ends if rx[i].nat_t and _receiver_logs(tunnel, rx[i])]
    if name == "desync-hub":
        return [1] if _receiver_logs(tunnel, rx[1]) and rx[1].role == "hub" and rx[0].role == "spoke" else []
    if name == "desync-dmvpn-static":
        # the spoke receives from its hub: the spoke's static map
        ends = [0] if tunnel.kind == "dmvpn" else []
    elif name == "desync-dmvpn-dynamic":
        ends = [0, 1] if tunnel.kind == "dmvpn-shortcut" else []
    if name in DESYNC_VARIANTS or name == "rekey-transient":
        usable = [i for i in ends if _receiver_logs(tunnel, rx[i])]
        if name in DESYNC_VARIANTS:
            usable.sort(key=lambda i: not _persistent(tunnel, by_name, i))
        return usable
    return ends


def assign_scenarios(
    specs: list[ScenarioSpec], tunnels: list[TunnelSpec], by_name: dict[str, RouterSpec], routers: int
) -> list[TunnelSpec]:
    """Each spec claims `count` tunnels in tunnel order; the rest stay healthy.

    The constrained scenarios (asr-silent, nat-t-silent) choose first so that a desync
    cannot take the only ASR1000 receiver; desync prefers tunnels where it repeats
    (no applicable recovery at the receiver, no DPD at the sender).
    """
    priority = {"asr-silent": 0, "nat-t-silent": 1, "desync-nat-t": 1, "desync-hub": 1, "rekey-transient": 3}
    priority |= {"healthy": 4}
    claimed: dict[str, TunnelSpec] = {}
    for spec in sorted(specs, key=lambda s: priority.get(s.name, 2)):
        options: list[tuple[bool, int, TunnelSpec, int]] = []
        for t in tunnels:
            if t.id in claimed or t.kind in CONFIG_ONLY_KINDS:
                continue
            cands = _candidates(spec.name, t, by_name)
            if cands:
                best = cands[0]
                rank = not _persistent(t, by_name, best) if spec.name in DESYNC_VARIANTS else False
                options.append((rank, t.index, t, best))
        options.sort(key=lambda o: (o[0], o[1]))
        count = spec.count
        if spec.name == "desync-hub":
            options = _one_hub(options, spec.count)
            count = max(len(options), 1)
        if len(options) < spec.count:
            need = {
                "asr-silent": "whose receiver is an ASR1000",
                "nat-t-silent": "to an IOS 12.4 router under NAT-T",
                "desync-nat-t": "whose receiver sits behind NAT and logs invalid SPIs",
                "desync-hub": "from spokes to one hub that logs invalid SPIs",
                "desync-dmvpn-static": "over a static NHRP mapping (a DMVPN spoke receiving from its hub)",
                "desync-dmvpn-dynamic": "between two DMVPN spokes (a fleet of 6 routers or more)",
                "healthy": "",
            }.get(spec.name, "whose receiver logs invalid SPIs")
            raise ValueError(
                f"scenario {spec.name}:{spec.count} needs {spec.count} free tunnel(s) {need}".rstrip()
                + f"; a fleet of {routers} routers has {len(options)} left"
            )
        for _, _, t, rx_end in options[:count]:
            claimed[t.id] = replace(t, scenario=spec.name, receiver=rx_end, sender=1 - rx_end)
    return [claimed.get(t.id, t) for t in tunnels]


def _one_hub(options: list[tuple[bool, int, TunnelSpec, int]], count: int) -> list[tuple[bool, int, TunnelSpec, int]]:
    """desync-hub: `count` (at least 2) spoke tunnels of the same hub, the hub with most first."""
    by_hub: dict[str, list[tuple[bool, int, TunnelSpec, int]]] = {}
    for o in options:
        by_hub.setdefault(o[2].ends[1].router, []).append(o)
    if not by_hub:
        return []
    # a hub whose broken spokes mix IKEv1 and IKEv2 first (issue 11 item 6), then the most
    best = max(by_hub.values(), key=lambda opts: (len({o[2].ike_version for o in opts}) > 1, len(opts)))
    return best if len(best) >= max(2, count) else []


def tunnel_info(t: TunnelSpec, by_name: dict[str, RouterSpec]) -> TunnelInfo:
    e0, e1 = t.ends
    rx, tx = t.ends[t.receiver], t.ends[t.sender]
    rx_spec, tx_spec = by_name[rx.router], by_name[tx.router]
    return TunnelInfo(
        id=t.id,
        kind=t.kind,
        ike_version=t.ike_version,
        a=e0.router,
        b=e1.router,
        a_type=e0.config_type,
        b_type=e1.config_type,
        a_addr=e0.public_addr,
        b_addr=e1.public_addr,
        nat_t=t.nat_t,
        scenario=t.scenario,
        sender=tx.router,
        receiver=rx.router,
        sender_addr=tx.public_addr,
        receiver_addr=rx.local_addr,
        recovery=recovery_applies(t, rx_spec, t.receiver, enabled=rx_spec.invalid_spi_recovery),
        sender_dpd=_dpd_for(tx_spec, t.ike_version) is not None,
        persistent=_persistent(t, by_name, t.receiver),
    )


# -- the plan -----------------------------------------------------------------------------


def build_plan(
    routers: int, scenarios: list[str], seed: int = 0, realism: str | frozenset[str] | None = None
) -> FleetPlan:
    if isinstance(routers, bool) or not isinstance(routers, int) or routers < 2:
        raise ValueError(f"a lab needs at least 2 routers (one hub, one spoke), not {routers!r}")
    specs = parse_scenarios(list(scenarios))
    traits = parse_realism(realism) | {SCENARIO_TRAITS[s.name] for s in specs if s.name in SCENARIO_TRAITS}
    hubs = hub_count(routers)
    router_specs: list[RouterSpec] = []
    for h in range(1, hubs + 1):
        platform = PLATFORMS[HUB_PLATFORMS[(h - 1) % len(HUB_PLATFORMS)]]
        router_specs.append(_router_spec(seed, len(router_specs), f"hub{h}", "hub", h, platform))
    for k in range(1, routers - hubs + 1):
        platform = PLATFORMS[SPOKE_PLATFORMS[(k - 1) % len(SPOKE_PLATFORMS)]]
        router_specs.append(_router_spec(seed, len(router_specs), f"spoke{k}", "spoke", k, platform))
    router_specs = [_realistic(r, routers, traits, seed) for r in router_specs]
    by_name = {r.name: r for r in router_specs}

    ords = _Ordinals()
    tunnels: list[TunnelSpec] = []
    for spoke in router_specs[hubs:]:
        k = int(spoke.name[5:])
        # shift by one hub every full round of slots so that every hub gets every kind
        hub = router_specs[((k - 1) + (k - 1) // len(SPOKE_SLOTS)) % hubs]
        kind = SPOKE_SLOTS[(k - 1) % len(SPOKE_SLOTS)]
        tunnels.append(_build_tunnel(seed, len(tunnels) + 1, kind, spoke, hub, ords))
    for h in range(1, hubs):
        tunnels.append(_build_tunnel(seed, len(tunnels) + 1, HUB_LINK, router_specs[h - 1], router_specs[h], ords))
    for h in range(1, hubs, 2):
        tunnels.append(_build_tunnel(seed, len(tunnels) + 1, DMVPN_HUBS, router_specs[h - 1], router_specs[h], ords))
    tunnels += _second_dmvpn_spoke(seed, tunnels, router_specs, hubs, ords)
    dmvpn_spokes = [t.ends[0].router for t in tunnels if t.kind == "dmvpn"]
    for a, b in zip(dmvpn_spokes[::2], dmvpn_spokes[1::2]):
        tunnels.append(_build_tunnel(seed, len(tunnels) + 1, DMVPN_SHORTCUT, by_name[a], by_name[b], ords))

    tunnels = assign_scenarios(specs, tunnels, by_name, routers)
    tunnels = [_shape_for_scenario(t) for t in tunnels]
    router_specs = _without_recovery_for_repeating_desyncs(router_specs, tunnels)
    by_name = {r.name: r for r in router_specs}
    if "operator-debug" in traits:
        router_specs = [_operator_debug(r, tunnels) for r in router_specs]
        by_name = {r.name: r for r in router_specs}
    return FleetPlan(seed, lab_credentials(seed), tuple(router_specs), tuple(tunnels), by_name, traits)


def _second_dmvpn_spoke(seed: int, tunnels: list[TunnelSpec], router_specs: list[RouterSpec], hubs: int,
                        ords: _Ordinals) -> list[TunnelSpec]:
    """A fleet with one DMVPN spoke (4 to 11 routers) has no spoke-to-spoke shortcut, so one
    more spoke joins the cloud beside its own tunnel, as branches do while they move between
    VPN designs: the first spoke after spoke1 (kept plain: the desync candidate of every seed)
    that is no DMVPN spoke and no IOS 12.4 EzVPN client, registered with the other hub of the
    DMVPN spoke's pair (one IPsec tunnel per pair of addresses: not its own hub)."""
    dmvpn = [t for t in tunnels if t.kind == "dmvpn"]
    if len(dmvpn) != 1 or hubs < 2:
        return []
    by_name = {r.name: r for r in router_specs}
    hub = by_name[dmvpn[0].ends[1].router]
    taken = {frozenset((t.ends[0].router, t.ends[1].router)) for t in tunnels}
    for spoke in router_specs[hubs + 1:]:
        if spoke.name == dmvpn[0].ends[0].router or spoke.platform.family == "ios124":
            continue
        if frozenset((spoke.name, hub.name)) in taken:
            continue
        kind = next(k for k in SPOKE_SLOTS if k.name == "dmvpn")
        return [_build_tunnel(seed, len(tunnels) + 1, kind, spoke, hub, ords)]
    return []


def _without_recovery_for_repeating_desyncs(router_specs: list[RouterSpec], tunnels: list[TunnelSpec]) -> list[RouterSpec]:
    """A desync-nat-t or desync-dmvpn-static receiver without `crypto isakmp invalid-spi-recovery`.

    Both scenarios have rarely a choice of tunnel (one spoke in four sits behind NAT; one
    DMVPN spoke receives from its hub's static map); where that receiver has recovery
    configured and it applies (a static NHRP mapping), the first invalid SPI resyncs the
    tunnel and the flow never repeats: no desync. The scenario is a flow that repeats, so its
    receiver is one whose operator did not turn recovery on (as on most routers: it is off by
    default on IOS). A receiver of desync-dmvpn-dynamic keeps its setting: recovery cannot help
    a dynamic mapping, so the flow repeats either way."""
    receivers = {t.ends[t.receiver].router for t in tunnels if t.scenario in ("desync-nat-t", "desync-dmvpn-static")}
    return [replace(r, invalid_spi_recovery=False) if r.name in receivers else r for r in router_specs]


def _shape_for_scenario(t: TunnelSpec) -> TunnelSpec:
    """Place SA ages so that scenario events land at predictable lab times."""
    if t.scenario == "rekey-transient":
        # the first rekey (at 90 % of the lifetime) happens REKEY_TRANSIENT_AT after start
        age = 0.9 * t.ipsec_lifetime - REKEY_TRANSIENT_AT
        return replace(t, ipsec_age=age, ike_age=max(t.ike_age, age))
    if t.scenario == "desync-expiring":
        # the sender's rekey (at 90 % of its lifetime) comes EXPIRING_AFTER into the fault
        age = 0.9 * t.ipsec_lifetime - DESYNC_AT - EXPIRING_AFTER
        return replace(t, ipsec_age=age, ike_age=max(t.ike_age, age))
    if t.scenario in FAULT_SCENARIOS:
        # leave the sender's SA well inside its lifetime so the fault can repeat
        age = min(t.ipsec_age, 0.3 * t.ipsec_lifetime)
        if t.scenario == "desync-under-way":
            age = max(age, UNDER_WAY_SECONDS + 60.0)
        return replace(t, ipsec_age=age, ike_age=max(t.ike_age, age))
    return t
