"""A router's configuration: the mutable settings and the running-config text.

The tunnel part of the text comes from the plan (topology.py) and shows every config
type of docs/domain.md §3; the settings an engineer or the agent can change from the
CLI (logging, invalid-spi-recovery, ISAKMP keepalive, EEM applets, timestamps) live
in ConfigState, which `write memory` copies to startup and a reboot restores.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from collector.lab.aaa import AaaConfig
from collector.lab.clock import local_clock_text
from collector.lab.eem import Applet
from collector.lab.logbuf import DISCRIMINATORS, TimestampFormat
from collector.lab.topology import (
    CONFIG_ONLY_KINDS,
    DVTI,
    DYNAMIC_MAP,
    EZVPN_CLIENT,
    EZVPN_SERVER,
    GRE_P2P,
    MGRE_DYNAMIC,
    MGRE_STATIC,
    STATIC_MAP,
    SVTI,
    DpdSetting,
    EndSpec,
    RouterSpec,
    TunnelSpec,
)


@dataclass
class ConfigState:
    invalid_spi_recovery: bool
    isakmp_keepalive: DpdSetting | None
    buffered_size: int
    buffered_level: str | None  # None = `no logging buffered`
    console_level: str | None
    monitor_level: str | None
    trap_level: str
    hosts: list[tuple[str, int]]
    log_format: TimestampFormat
    debug_format: TimestampFormat
    sequence_numbers: bool
    hostname: str = ""  # `hostname NAME` (the prompt reads it); the plan's device hostname
    discriminator: str | None = None  # `logging buffered ... discriminator NAME`
    applets: dict[str, Applet] = field(default_factory=dict)
    eem_cli_username: str | None = None
    descriptions: dict[str, str] = field(default_factory=dict)
    last_change: datetime | None = None
    last_change_by: str = ""
    aaa: AaaConfig = field(default_factory=AaaConfig)  # `aaa authorization commands|config-commands`
    vty_lines: int = 5  # `line vty 0 N` -> N + 1

    @classmethod
    def initial(cls, spec: RouterSpec) -> ConfigState:
        fmt = TimestampFormat("datetime", msec=True, localtime=spec.show_timezone, show_timezone=spec.show_timezone)
        return cls(
            hostname=spec.hostname or spec.name,
            discriminator=spec.logging.discriminator,
            invalid_spi_recovery=spec.invalid_spi_recovery,
            isakmp_keepalive=spec.isakmp_keepalive,
            buffered_size=spec.logging.buffered_size,
            buffered_level=spec.logging.buffered_level,
            console_level=spec.logging.console_level,
            monitor_level=spec.logging.monitor_level,
            trap_level=spec.logging.trap_level,
            hosts=[(h, 514) for h in spec.logging.hosts],
            log_format=spec.log_format or fmt,
            debug_format=spec.debug_format or fmt,
            sequence_numbers=spec.sequence_numbers,
            # optional plan fields (topology may set them): vty count, AAA lines
            vty_lines=getattr(spec, "vty_lines", 5),
            aaa=AaaConfig(dict(getattr(spec, "aaa_commands", None) or {}), getattr(spec, "aaa_config_commands", False)),
        )

    def copy(self) -> ConfigState:
        clone = copy.copy(self)
        clone.hosts = list(self.hosts)
        clone.applets = {k: v.copy() for k, v in self.applets.items()}
        clone.descriptions = dict(self.descriptions)
        clone.aaa = self.aaa.copy()
        return clone


@dataclass(frozen=True, slots=True)
class EndView:
    """One of this router's tunnel ends together with the tunnel and the far end."""

    tunnel: TunnelSpec
    index: int

    @property
    def me(self) -> EndSpec:
        return self.tunnel.ends[self.index]

    @property
    def peer(self) -> EndSpec:
        return self.tunnel.ends[1 - self.index]


def _mask_wild(mask: str) -> str:
    return ".".join(str(255 - int(p)) for p in mask.split("."))


def _transform_config(show_form: str, mode: str) -> list[str]:
    if show_form == "esp-gcm 256":
        body = "esp-gcm 256"
    elif show_form.endswith("sha-hmac"):
        body = "esp-aes 256 esp-sha-hmac"
    else:
        body = "esp-aes 256 esp-sha256-hmac"
    return [body, f" mode {mode.lower()}"]


def _change_time(spec: RouterSpec, when: datetime) -> str:
    """`10:41:07 CET Fri Nov 27 2026`: in the router's zone, the day padded to two digits
    as the running-config header prints it."""
    text = local_clock_text(spec.zone, when)
    head, day, year = text.rsplit(" ", 2)
    return f"{head} {int(day):02d} {year}"


def render_running_config(
    spec: RouterSpec,
    state: ConfigState,
    ends: list[EndView],
    *,
    username: str,
    now: datetime,
    startup: bool = False,
) -> str:
    p = spec.platform
    out: list[str] = []
    add = out.append
    types = {e.me.config_type for e in ends}
    ikev1 = [e for e in ends if e.tunnel.ike_version == 1]
    ikev2 = [e for e in ends if e.tunnel.ike_version == 2]
    old = p.family == "ios124"

    add("!")
    if state.last_change is not None:
        add(
            f"! Last configuration change at {_change_time(spec, state.last_change)} by {state.last_change_by}"
        )
        add("!")
    add(f"version {p.config_version}")
    add(state.debug_format.config_line("debug"))
    add(state.log_format.config_line("log"))
    add("no service password-encryption")
    if state.sequence_numbers:
        add("service sequence-numbers")
    if p.is_xe:
        add("platform qfp utilization monitor load 80")
        add("platform punt-keepalive disable-kernel-core")
    add("!")
    add(f"hostname {state.hostname or spec.name}")
    add("!")
    add("boot-start-marker")
    if not p.is_xe:
        add(f"boot system {p.image_file}")
    add("boot-end-marker")
    add("!")
    # logging lines: IOS omits the defaults (console/monitor debugging, trap informational)
    if state.discriminator:
        # `logging discriminator NAME mnemonics drops WORD` (Cisco Message Discriminator guide)
        add(f"logging discriminator {state.discriminator} mnemonics drops {DISCRIMINATORS.get(state.discriminator, '')}")
    # `logging buffered [discriminator NAME] [SIZE] [LEVEL]`: keyword order of the Cisco command
    # reference ("logging buffered discriminator buffer1 critical"); level omitted when the default
    md = f"discriminator {state.discriminator} " if state.discriminator else ""
    if state.buffered_level is None:
        add("no logging buffered")
    elif state.buffered_level == "debugging":
        add(f"logging buffered {md}{state.buffered_size}")
    else:
        add(f"logging buffered {md}{state.buffered_size} {state.buffered_level}")
    if state.console_level is None:
        add("no logging console")
    elif state.console_level != "debugging":
        add(f"logging console {state.console_level}")
    if state.monitor_level is None:
        add("no logging monitor")
    elif state.monitor_level != "debugging":
        add(f"logging monitor {state.monitor_level}")
    add(f"enable secret {5 if old else 9} {spec.secrets.enable_hash}")
    add("!")
    add("aaa new-model")
    add("!")
    add("aaa authentication login default local")
    add("aaa authorization exec default local")
    out.extend(state.aaa.config_lines())
    if spec.role == "hub" and EZVPN_SERVER in types:
        add("aaa authorization network EZVPN-AUTHOR local")
    add("!")
    add("aaa session-id common")
    if spec.zone is not None:
        out.extend(spec.zone.config_lines())
    elif spec.ntp_synced or spec.show_timezone:
        add("clock timezone UTC 0 0")
    add("!")
    add("no ip domain lookup")
    add("ip domain name lab.example")
    add("!")
    secret_kw = "secret 9" if not old else "secret 5"
    add(f"username admin privilege 15 {secret_kw} {spec.secrets.admin_hash}")
    add(f"username {username} privilege 15 {secret_kw} {spec.secrets.lab_hash}")
    add("!")

    if ikev1:
        out += _isakmp_section(spec, state, ikev1, old)
    if ikev2:
        out += _ikev2_section(spec, ikev2)
    out += _ipsec_section(spec, ends, old)
    out += _interfaces(spec, state, ends)
    out += _routing(spec, ends)
    out += _acls(ends)
    # management
    add("logging source-interface Loopback0")
    if state.trap_level != "informational":
        add(f"logging trap {state.trap_level}")
    for host, port in state.hosts:
        add(f"logging host {host}" + (f" transport udp port {port}" if port != 514 else ""))
    add(f"snmp-server community {spec.secrets.snmp_ro} RO")
    add(f"snmp-server community {spec.secrets.snmp_rw} RW")
    add("snmp-server location lab " + spec.site)
    add("!")
    if old:
        add(f"tacacs-server host 10.255.255.20 key {spec.secrets.tacacs_key}")
    else:
        add("tacacs server TAC1")
        add(" address ipv4 10.255.255.20")
        add(f" key {spec.secrets.tacacs_key}")
    add("!")
    add("control-plane")
    add("!")
    add("line con 0")
    add(" logging synchronous")
    add(" stopbits 1")
    add(f"line vty 0 {state.vty_lines - 1}")
    add(" transport input ssh")
    add("!")
    if spec.ntp_synced:
        add("ntp server 10.255.255.30")
    if state.eem_cli_username:
        add(f"event manager session cli username {state.eem_cli_username}")
    for applet in state.applets.values():
        out += applet.config_lines()
        add("!")
    add("end")
    body = "\n".join(out) + "\n"
    title = "Building configuration...\n\n" if not startup else "Using {} out of 262136 bytes\n"
    if startup:
        return title.format(len(body)) + body
    return title + f"Current configuration : {len(body)} bytes\n" + body


def _isakmp_section(spec: RouterSpec, state: ConfigState, ends: list[EndView], old: bool) -> list[str]:
    out = ["crypto isakmp policy 10"]
    if old:
        out += [" encr aes 256", " authentication pre-share", " group 2"]
    else:
        out += [" encr aes 256", " hash sha256", " authentication pre-share", " group 14"]
    out.append(" lifetime 28800" if spec.ike_lifetime == 28800 else "!")
    if out[-1] == "!":
        out.pop()
    wildcard_done = False
    for e in ends:
        ct = e.me.config_type
        if ct in (DYNAMIC_MAP, MGRE_DYNAMIC):
            if not wildcard_done:
                # one wildcard key for every spoke that comes in dynamically (crypto map and DMVPN)
                out.append(f"crypto isakmp key {e.tunnel.psk} address 0.0.0.0 0.0.0.0")
                wildcard_done = True
        elif ct in (STATIC_MAP, GRE_P2P, SVTI, MGRE_STATIC) and e.tunnel.kind not in CONFIG_ONLY_KINDS:
            # (the hub pair's DMVPN map uses the key of their GRE link: one key per address)
            out.append(f"crypto isakmp key {e.tunnel.psk} address {e.peer.public_addr}")
    if state.invalid_spi_recovery:
        out.append("crypto isakmp invalid-spi-recovery")
    if state.isakmp_keepalive is not None:
        k = state.isakmp_keepalive
        out.append(f"crypto isakmp keepalive {k.interval} {k.retries}" + (" periodic" if k.mode == "periodic" else ""))
    if any(e.tunnel.nat_t for e in ends):
        out.append("crypto isakmp nat keepalive 20")
    server = [e for e in ends if e.me.config_type == EZVPN_SERVER]
    if server:
        out += [
            "!",
            "crypto isakmp client configuration group EZVPN-GRP",
            f" key {_ezvpn_group_key(server[0])}",
            " pool EZVPN-POOL",
            " acl EZVPN-SPLIT",
            " save-password",
            "crypto isakmp profile EZVPN-PROF",
            "   match identity group EZVPN-GRP",
            "   client authentication list default",
            "   isakmp authorization list EZVPN-AUTHOR",
            "   client configuration address respond",
        ]
    out.append("!")
    return out


def _nhrp_key(e: EndView) -> str:
    """NHRP authentication (8 characters at most), shared by the whole DMVPN cloud."""
    return "nh" + e.tunnel.psk[4:10]


def _ezvpn_group_key(e: EndView) -> str:
    return "Grp-" + e.tunnel.psk[4:14]


def _ikev2_section(spec: RouterSpec, ends: list[EndView]) -> list[str]:
    out = [
        "crypto ikev2 proposal FLEX-PROP",
        " encryption aes-cbc-256",
        " integrity sha256",
        " group 19",
        "!",
        "crypto ikev2 policy FLEX-POL",
        " proposal FLEX-PROP",
        "!",
        "crypto ikev2 keyring FLEX-KR",
    ]
    for e in ends:
        if e.me.config_type == DVTI:
            continue
        out += [
            f" peer {e.peer.router.upper()}",
            f"  address {e.peer.public_addr}",
            f"  pre-shared-key {e.tunnel.psk}",
            " !",
        ]
    dvti = [e for e in ends if e.me.config_type == DVTI]
    if dvti:
        out += [" peer SPOKES", "  address 0.0.0.0 0.0.0.0", f"  pre-shared-key {dvti[0].tunnel.psk}", " !"]
    out.append("!")
    dpd = spec.ikev2_dpd
    for profile in sorted({e.me.profile for e in ends if e.me.profile}):
        out += [f"crypto ikev2 profile {profile}"]
        if profile == "FLEX-HUB":
            out.append(" match identity remote address 0.0.0.0 ")
        else:
            for e in ends:
                if e.me.profile == profile:
                    out.append(f" match identity remote address {e.peer.public_addr} 255.255.255.255 ")
        out += [
            " authentication remote pre-share",
            " authentication local pre-share",
            " keyring local FLEX-KR",
        ]
        if dpd is not None:
            out.append(f" dpd {dpd.interval} {dpd.retries} {dpd.mode}")
        if profile == "FLEX-HUB":
            out.append(" virtual-template 1")
        out.append("!")
    return out


def _ipsec_section(spec: RouterSpec, ends: list[EndView], old: bool) -> list[str]:
    out: list[str] = []
    if spec.ipsec_lifetime != 3600:
        out.append(f"crypto ipsec security-association lifetime seconds {spec.ipsec_lifetime}")
        out.append("!")
    sets: dict[str, list[str]] = {}
    profiles: list[list[str]] = []
    for e in ends:
        ct = e.me.config_type
        t = e.tunnel
        if t.ike_version == 2:
            sets.setdefault("TS-FLEX", _transform_config(t.transform, t.mode))
        elif ct in (MGRE_STATIC, MGRE_DYNAMIC):
            sets.setdefault("TS-DMVPN", _transform_config(t.transform, t.mode))
        elif ct == GRE_P2P:
            sets.setdefault("TS-GRE", _transform_config(t.transform, t.mode))
        elif ct == SVTI:
            sets.setdefault("TS-VTI", _transform_config(t.transform, t.mode))
        else:
            sets.setdefault("TS-AES256", _transform_config(t.transform, t.mode))
    for name, (body, mode) in sets.items():
        out += [f"crypto ipsec transform-set {name} {body}", mode, "!"]
    seen: set[str] = set()
    for e in ends:
        ct = e.me.config_type
        t = e.tunnel
        if t.ike_version == 2:
            name = "FLEX-IPSEC" if e.me.profile != "FLEX-P2P" else "FLEX-P2P-IPSEC"
            block = [f"crypto ipsec profile {name}", " set transform-set TS-FLEX", f" set ikev2-profile {e.me.profile}"]
        elif ct in (MGRE_STATIC, MGRE_DYNAMIC):
            name, block = "DMVPN-PROF", ["crypto ipsec profile DMVPN-PROF", " set transform-set TS-DMVPN"]
        elif ct == GRE_P2P:
            name, block = "GRE-PROF", ["crypto ipsec profile GRE-PROF", " set transform-set TS-GRE"]
        elif ct == SVTI:
            name, block = "VTI-PROF", ["crypto ipsec profile VTI-PROF", " set transform-set TS-VTI"]
        else:
            continue
        if name not in seen:
            seen.add(name)
            profiles.append(block + ["!"])
    for block in profiles:
        out += block
    client = [e for e in ends if e.me.config_type == EZVPN_CLIENT]
    for e in client:
        out += [
            "crypto ipsec client ezvpn EZVPN",
            " connect auto",
            f" group EZVPN-GRP key {_ezvpn_group_key(e)}",
            " mode network-extension",
            f" peer {e.peer.public_addr}",
            f" username ez-{spec.name} password Ez-{e.tunnel.psk[4:12]}",
            " xauth userid mode local",
            "!",
        ]
    dyn = [e for e in ends if e.me.config_type in (DYNAMIC_MAP, EZVPN_SERVER)]
    if any(e.me.config_type == DYNAMIC_MAP for e in dyn):
        out += ["crypto dynamic-map DYN-MAP 10", " set transform-set TS-AES256", " reverse-route", "!"]
    if any(e.me.config_type == EZVPN_SERVER for e in dyn):
        out += [
            "crypto dynamic-map DYN-MAP 20",
            " set transform-set TS-AES256",
            " set isakmp-profile EZVPN-PROF",
            " reverse-route",
            "!",
        ]
    static = sorted((e for e in ends if e.me.config_type == STATIC_MAP), key=lambda e: e.me.map_seq)
    for e in static:
        out += [
            f"crypto map VPN-MAP {e.me.map_seq} ipsec-isakmp",
            f" set peer {e.peer.public_addr}",
            " set transform-set TS-AES256",
            f" match address {e.me.acl}",
        ]
    if dyn:
        out.append("crypto map VPN-MAP 65535 ipsec-isakmp dynamic DYN-MAP")
    if static or dyn:
        out.append("!")
    return out


def _interfaces(spec: RouterSpec, state: ConfigState, ends: list[EndView]) -> list[str]:
    p = spec.platform
    out = ["interface Loopback0", f" ip address {spec.loopback_ip} 255.255.255.255", "!"]
    if any(e.me.config_type == DVTI for e in ends):
        out += ["interface Loopback1", f" ip address 10.{150 + int(spec.name[3:])}.0.1 255.255.255.255", "!"]
    tunnels: dict[str, list[EndView]] = {}
    for e in ends:
        if e.me.tunnel_if and e.me.config_type != DVTI:
            tunnels.setdefault(e.me.tunnel_if, []).append(e)
    for ifname in sorted(tunnels, key=lambda n: int(n[6:])):
        group = tunnels[ifname]
        e = group[0]
        ct = e.me.config_type
        t = e.tunnel
        out.append(f"interface {ifname}")
        desc = state.descriptions.get(ifname)
        if desc:
            out.append(f" description {desc}")
        elif ct in (MGRE_STATIC, MGRE_DYNAMIC) and spec.role == "hub":
            out.append(" description DMVPN hub")
        elif ct in (GRE_P2P, SVTI):
            out.append(f" description to {e.peer.router}")
        if ct == SVTI and t.ike_version == 2 and e.me.tunnel_ip is None:
            out.append(" ip unnumbered Loopback0")
        else:
            out.append(f" ip address {e.me.tunnel_ip} {e.me.tunnel_mask}")
        if ct in (MGRE_STATIC, MGRE_DYNAMIC):
            # One interface, several mappings: a hub accepts registrations (map multicast
            # dynamic) and maps the other hub of its pair statically (dual hub); a spoke maps
            # its hub statically and learns other spokes by resolution (phase-3 shortcuts,
            # which add nothing to the config).
            hub = spec.role == "hub"
            statics = [x for x in group if x.me.config_type == MGRE_STATIC]
            out += [" no ip redirects", " ip mtu 1400", f" ip nhrp authentication {_nhrp_key(e)}"]
            if hub:
                out.append(" ip nhrp map multicast dynamic")
            for x in statics:
                out += [
                    f" ip nhrp map {x.peer.tunnel_ip} {x.peer.public_addr}",
                    f" ip nhrp map multicast {x.peer.public_addr}",
                ]
            out.append(" ip nhrp network-id 1")
            if not hub:
                out += [f" ip nhrp nhs {x.peer.tunnel_ip}" for x in statics]
            # DMVPN phase 3 as deployed: the hub redirects, spokes take shortcuts (sclabs, domain.md §3)
            out.append(" ip nhrp redirect" if hub else " ip nhrp shortcut")
            out += [
                " ip tcp adjust-mss 1360",
                f" tunnel source {p.wan_if}",
                " tunnel mode gre multipoint",
                " tunnel key 1001",
            ]
            out.append(" tunnel protection ipsec profile DMVPN-PROF")
        elif ct == GRE_P2P:
            out += [
                " ip mtu 1400",
                " keepalive 5 10" if t.index % 2 else " ip tcp adjust-mss 1360",
                f" tunnel source {p.wan_if}",
                f" tunnel destination {e.peer.public_addr}",
                " tunnel protection ipsec profile GRE-PROF",
            ]
        elif ct == SVTI:
            profile = (
                "VTI-PROF" if t.ike_version == 1 else ("FLEX-IPSEC" if e.me.profile != "FLEX-P2P" else "FLEX-P2P-IPSEC")
            )
            out += [
                f" tunnel source {p.wan_if}",
                " tunnel mode ipsec ipv4",
                f" tunnel destination {e.peer.public_addr}",
                f" tunnel protection ipsec profile {profile}",
            ]
        out.append("!")
    wan_extra: list[str] = []
    lan_extra: list[str] = []
    if any(e.me.config_type in (STATIC_MAP, DYNAMIC_MAP, EZVPN_SERVER) for e in ends):
        wan_extra.append(" crypto map VPN-MAP")
    if any(e.me.config_type == EZVPN_CLIENT for e in ends):
        wan_extra.append(" crypto ipsec client ezvpn EZVPN")
        lan_extra.append(" crypto ipsec client ezvpn EZVPN inside")
    wan_desc = state.descriptions.get(p.wan_if, "WAN" + (" (behind NAT)" if spec.nat_t else ""))
    out += [f"interface {p.wan_if}", f" description {wan_desc}", f" ip address {spec.wan_ip} {spec.wan_mask}"]
    if p.is_xe:
        out.append(" negotiation auto")
    else:
        out += [" duplex auto", " speed auto"]
    out += wan_extra + ["!"]
    lan_desc = state.descriptions.get(p.lan_if, "LAN")
    out += [f"interface {p.lan_if}", f" description {lan_desc}", f" ip address {spec.lan_ip} {spec.lan_mask}"]
    out += [" negotiation auto"] if p.is_xe else [" duplex auto", " speed auto"]
    out += lan_extra + ["!"]
    if any(e.me.config_type == DVTI for e in ends):
        out += [
            "interface Virtual-Template1 type tunnel",
            " ip unnumbered Loopback1",
            " ip mtu 1400",
            f" tunnel source {p.wan_if}",
            " tunnel mode ipsec ipv4",
            " tunnel protection ipsec profile FLEX-IPSEC",
            "!",
        ]
    return out


def _routing(spec: RouterSpec, ends: list[EndView]) -> list[str]:
    out: list[str] = []
    if any(e.me.config_type == EZVPN_SERVER for e in ends):
        hub_no = int(spec.name[3:])
        out.append(f"ip local pool EZVPN-POOL 10.{160 + hub_no}.0.10 10.{160 + hub_no}.0.250")
    out += ["ip forward-protocol nd", "no ip http server", "no ip http secure-server", "ip ssh version 2"]
    out.append(f"ip route 0.0.0.0 0.0.0.0 {spec.wan_gateway}")
    for e in ends:
        ct = e.me.config_type
        if ct in (GRE_P2P, SVTI) and e.me.tunnel_if:
            peer_lan = e.peer.local_ident if e.peer.local_ident[1] != "255.255.255.255" else None
            nexthop = e.peer.tunnel_ip or e.me.tunnel_if
            if peer_lan and peer_lan[0] != "0.0.0.0":
                out.append(f"ip route {peer_lan[0]} {peer_lan[1]} {nexthop}")
        elif ct == MGRE_STATIC:
            out.append(f"ip route 192.168.0.0 255.255.0.0 {e.peer.tunnel_ip}")
    out.append("!")
    return out


def _acls(ends: list[EndView]) -> list[str]:
    out: list[str] = []
    for e in ends:
        if e.me.config_type == STATIC_MAP and e.me.acl:
            src, dst = e.me.local_ident, e.me.remote_ident
            out += [
                f"ip access-list extended {e.me.acl}",
                f" permit ip {src[0]} {_mask_wild(src[1])} {dst[0]} {_mask_wild(dst[1])}",
            ]
    if any(e.me.config_type == EZVPN_SERVER for e in ends):
        lan = next(e.me.local_ident for e in ends if e.me.config_type == EZVPN_SERVER)
        out += ["ip access-list extended EZVPN-SPLIT", f" permit ip {lan[0]} {_mask_wild(lan[1])} any"]
    if out:
        out.append("!")
    return out


def config_secrets(spec: RouterSpec, ends: list[EndView]) -> list[str]:
    """Every secret string that appears in this router's running-config (for redaction tests)."""
    out = [
        spec.secrets.enable_hash,
        spec.secrets.admin_hash,
        spec.secrets.lab_hash,
        spec.secrets.snmp_ro,
        spec.secrets.snmp_rw,
        spec.secrets.tacacs_key,
    ]
    for e in ends:
        ct = e.me.config_type
        if ct in (MGRE_STATIC, MGRE_DYNAMIC):
            out.append(_nhrp_key(e))
        if ct in (EZVPN_CLIENT, EZVPN_SERVER):
            out.append(_ezvpn_group_key(e))
        else:
            out.append(e.tunnel.psk)
        if ct == EZVPN_CLIENT:
            out.append(f"Ez-{e.tunnel.psk[4:12]}")
    return sorted(set(out))
