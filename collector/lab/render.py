"""Every show command's text, in the formats of docs/domain.md §2 (and ntc-templates' samples).

Functions take the Router and read its state at the current lab time; nothing is
cached, so a 500-router lab only pays for the outputs somebody asks for.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from collector.lab.clock import local_clock_text
from collector.lab.ipsec import KB_LIFETIME, PACKET_BYTES
from collector.lab.logbuf import uptime_text
from collector.lab.topology import (
    DVTI,
    DYNAMIC_MAP,
    EZVPN_CLIENT,
    EZVPN_SERVER,
    GRE_P2P,
    MGRE_DYNAMIC,
    MGRE_STATIC,
    STATIC_MAP,
    SVTI,
)

if TYPE_CHECKING:
    from collector.lab.ipsec import EndState, SaGeneration, TunnelRuntime
    from collector.lab.router import Router

_DYNAMIC_TYPES = (DYNAMIC_MAP, DVTI, MGRE_DYNAMIC, EZVPN_SERVER)


# -- small formatting helpers -------------------------------------------------------------


def _clock_line(r: Router, when: datetime) -> str:
    """`show clock`: local wall time and the zone's name in force (UTC without `clock timezone`)."""
    mark = "" if r.spec.ntp_synced else "*"
    return mark + local_clock_text(r.spec.zone, when, msec=True)


def _long_uptime(seconds: float) -> str:
    """`5 weeks, 1 day, 3 hours, 12 minutes` as `show version` prints it."""
    minutes = int(seconds // 60)
    years, minutes = divmod(minutes, 525600)
    weeks, minutes = divmod(minutes, 10080)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = []
    for value, unit in ((years, "year"), (weeks, "week"), (days, "day"), (hours, "hour")):
        if value:
            parts.append(f"{value} {unit}{'s' if value != 1 else ''}")
    parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return ", ".join(parts)


def _hms(seconds: int) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# -- show version ----------------------------------------------------------------------------

_EXPORT = """This product contains cryptographic features and is subject to United
States and local country laws governing import, export, transfer and
use. Delivery of Cisco cryptographic products does not imply
third-party authority to import, export, distribute or use encryption.
Importers, exporters, distributors and users are responsible for
compliance with U.S. and local country laws. By using this product you
agree to comply with applicable laws and regulations. If you are unable
to comply with U.S. and local laws, return this product immediately.

A summary of U.S. laws governing Cisco cryptographic products may be found at:
http://www.cisco.com/wwl/export/crypto/tool/stqrg.html

If you require further assistance please contact us by sending email to
export@cisco.com."""

_GPL = """Cisco IOS-XE software, Copyright (c) 2005-{year} by cisco Systems, Inc.
All rights reserved.  Certain components of Cisco IOS-XE software are
licensed under the GNU General Public License ("GPL") Version 2.0.  The
software code licensed under GPL Version 2.0 is free software that comes
with ABSOLUTELY NO WARRANTY.  You can redistribute and/or modify such
GPL code under the terms of GPL Version 2.0.  For more details, see the
documentation or "License Notice" file accompanying the IOS-XE software,
or the applicable URL provided on the flyer accompanying the IOS-XE
software."""


def show_version(r: Router) -> str:
    p = r.spec.platform
    t = r.now()
    up = t - r.boot_at
    booted = r.at(r.boot_at)
    reason = "Reload Command" if r.reloads else "power-on"
    lines: list[str] = []
    if p.is_xe:
        lines += [
            f"Cisco IOS XE Software, Version {p.xe_version}",
            f"Cisco IOS Software [{p.train}], {p.software} ({p.image_name}), Version {p.version}, RELEASE SOFTWARE (fc3)",
        ]
    else:
        lines.append(f"Cisco IOS Software, {p.software} ({p.image_name}), Version {p.version}, RELEASE SOFTWARE (fc1)")
    lines += [
        "Technical Support: http://www.cisco.com/techsupport",
        f"Copyright (c) 1986-{p.copyright_year} by Cisco Systems, Inc.",
        f"Compiled {p.compiled} by {'mcpre' if p.is_xe else 'prod_rel_team'}",
        "",
    ]
    if p.is_xe:
        lines += ["", _GPL.format(year=p.copyright_year), "", ""]
    lines += [f"ROM: {p.rom}", ""]
    lines.append(f"{r.state.hostname} uptime is {_long_uptime(up)}")
    if p.is_xe:
        lines.append(f"Uptime for this control processor is {_long_uptime(up + 95)}")
    lines.append(f"System returned to ROM by {'reload' if r.reloads else 'power-on'}")
    if not p.is_xe:
        lines.append(f"System restarted at {local_clock_text(r.spec.zone, booted)}")
    lines.append(f'System image file is "{p.image_file}"')
    if not p.is_xe and p.family != "ios124":
        lines.append("Last reload type: Normal Reload")
    lines += [f"Last reload reason: {reason}", "", "", "", _EXPORT, ""]
    if p.is_xe:
        lines += [
            "",
            "Technology Package License Information:",
            "",
            "-----------------------------------------------------------------",
            "Technology    Technology-package           Technology-package",
            "              Current       Type           Next reboot  ",
            "------------------------------------------------------------------",
            "appxk9        appxk9        RightToUse     appxk9",
            "securityk9    securityk9    RightToUse     securityk9",
            "ipbase        ipbasek9      Permanent      ipbasek9",
            "",
            "The current throughput level is 1000000 kbps ",
            "",
            "",
            f"Smart Licensing Status: {'Registration Not Applicable/Not Applicable' if p.xe_major >= 17 else 'UNREGISTERED/EVAL MODE'}",
            "",
            f"cisco {p.hardware_line}",
            f"Processor board ID {r.spec.serial}",
        ]
        if p.xe_major >= 17:
            lines.append("Router operating mode: Autonomous")
        lines += [
            p.interfaces_line,
            p.nvram,
            "4194304K bytes of physical memory.",
            "3223551K bytes of flash memory at bootflash:.",
            "",
            "Configuration register is 0x2102",
            "",
        ]
    else:
        lines += [
            f"Cisco {p.hardware_line}",
            f"Processor board ID {r.spec.serial}",
            p.interfaces_line,
            "1 terminal line",
            "DRAM configuration is 64 bits wide with parity enabled."
            if p.family != "ios124"
            else "1 Virtual Private Network (VPN) Module",
            p.nvram,
            "250880K bytes of ATA System CompactFlash 0 (Read/Write)"
            if p.family != "ios124"
            else "62720K bytes of processor board System flash (Read/Write)",
            "",
        ]
        if p.family != "ios124":
            lines += [
                "",
                "License Info:",
                "",
                "License UDI:",
                "",
                "-------------------------------------------------",
                "Device#   PID                   SN",
                "-------------------------------------------------",
                f"*1        {p.model:<22}{r.spec.serial}     ",
                "",
                "",
            ]
        lines += ["Configuration register is 0x2102", ""]
    return "\n".join(lines) + "\n"


# -- clock, interfaces, cpu, logging, config ---------------------------------------------------


def show_clock(r: Router, detail: bool = False) -> str:
    text = _clock_line(r, r.at(r.now())) + "\n"
    if detail:
        text += "Time source is NTP\n" if r.spec.ntp_synced else "No time source\n"
    return text


def show_ip_interface_brief(r: Router) -> str:
    p = r.spec.platform
    rows: list[tuple[str, str, str, str]] = []
    if p.is_xe and not p.wan_if.startswith("GigabitEthernet1"):
        rows.append(("GigabitEthernet0", "unassigned", "administratively down", "down"))
    rows.append((p.wan_if, r.spec.wan_ip, "up", "up"))
    rows.append((p.lan_if, r.spec.lan_ip, "up", "up"))
    if p.wan_if == "GigabitEthernet1":
        rows.append(("GigabitEthernet3", "unassigned", "administratively down", "down"))
    rows.append(("Loopback0", r.spec.loopback_ip, "up", "up"))
    has_dvti = any(e.me.config_type == DVTI for e in r.ends)
    if has_dvti:
        rows.append(("Loopback1", f"10.{150 + int(r.name[3:])}.0.1", "up", "up"))
    seen: set[str] = set()
    tunnel_rows: list[tuple[str, str, str, str]] = []
    modelled = len(r.tunnels)  # config-only ends (the DMVPN hub pair) come after, without SAs
    for view in r.ends[modelled:]:
        if view.me.tunnel_if and view.me.tunnel_if not in seen:
            seen.add(view.me.tunnel_if)
            tunnel_rows.append((view.me.tunnel_if, view.me.tunnel_ip or r.spec.loopback_ip, "up", "up"))
    for (tunnel, end), view in zip(r.tunnels, r.ends[:modelled], strict=True):
        me = view.me
        if me.config_type == DVTI:
            has_sa = tunnel.ends[end].sa is not None
            if has_sa:
                tunnel_rows.append((me.interface, f"10.{150 + int(r.name[3:])}.0.1", "up", "up"))
            continue
        if not me.tunnel_if or me.tunnel_if in seen:
            continue
        seen.add(me.tunnel_if)
        address = me.tunnel_ip or r.spec.loopback_ip
        protocol = "up"
        if me.config_type == SVTI and tunnel.ends[end].sa is None:
            protocol = "down"  # a VTI's line protocol follows its IPsec SA
        tunnel_rows.append((me.tunnel_if, address, "up", protocol))
    tunnel_rows.sort(
        key=lambda row: (row[0].rstrip("0123456789"), int(row[0][len(row[0].rstrip("0123456789")) :] or 0))
    )
    rows += tunnel_rows
    if has_dvti:
        rows.append(("Virtual-Template1", f"10.{150 + int(r.name[3:])}.0.1", "up", "down"))
    out = ["Interface              IP-Address      OK? Method Status                Protocol"]
    for name, addr, status, proto in rows:
        method = "NVRAM" if addr != "unassigned" else "unset"
        out.append(f"{name:<23}{addr:<16}YES {method:<7}{status:<22}{proto}")
    return "\n".join(out) + "\n"


_PROCESSES = (
    (1, "Chunk Manager"),
    (2, "Load Meter"),
    (3, "DiagCard1/-1"),
    (4, "Check heaps"),
    (5, "Pool Manager"),
    (8, "ARP Input"),
    (12, "IPC Seat Manager"),
    (45, "IP Input"),
    (88, "Crypto IKMP"),
    (89, "IPSEC key engine"),
    (90, "Crypto Support"),
    (91, "Crypto PKI-CRL"),
    (102, "HA EM Server"),
    (112, "Syslog Traps"),
    (160, "SSH Process"),
    (175, "NHRP"),
    (201, "IKEv2 Cluster Mana"),
)


def cpu_percentages(r: Router) -> tuple[int, int, int, int]:
    if r.faults.high_cpu:
        return 96, 12, 94, 91
    t = r.now()
    base = 2 + r.spec.index % 7
    wobble = int(2 + 2 * math.sin(t / 37.0 + r.spec.index))
    debug_load = 3 * len(r.debug.flags)
    five = base + wobble + debug_load
    return five, min(five, 1 + wobble // 2), base + 1 + debug_load // 2, base + debug_load // 3


def show_processes_cpu(r: Router, sort: bool = False) -> str:
    five, intr, one, fivem = cpu_percentages(r)
    lines = [
        f"CPU utilization for five seconds: {five}%/{intr}%; one minute: {one}%; five minutes: {fivem}%",
        " PID Runtime(ms)     Invoked      uSecs   5Sec   1Min   5Min TTY Process ",
    ]
    uptime = max(1.0, r.now() - r.boot_at)
    rows = []
    for i, (pid, name) in enumerate(_PROCESSES):
        invoked = int(uptime / (3 + i)) + 17
        runtime = int(invoked * (1 + (pid * 7) % 23) / 10)
        usecs = runtime * 1000 // max(invoked, 1)
        share = 0.0
        if name in ("Crypto IKMP", "IPSEC key engine") and r.debug.armed:
            share = 0.55 + 0.1 * len(r.debug.flags)
        if r.faults.high_cpu and name == "IP Input":
            share = 71.3
        rows.append((pid, runtime, invoked, usecs, share, share * 0.8, share * 0.6, name))
    if sort:
        rows.sort(key=lambda row: -row[4])
    for pid, runtime, invoked, usecs, s5, m1, m5, name in rows:
        lines.append(f"{pid:>4}{runtime:>12}{invoked:>12}{usecs:>11}{s5:>6.2f}%{m1:>6.2f}%{m5:>6.2f}%   0 {name:<16} ")
    return "\n".join(lines) + "\n"


def show_logging(r: Router) -> str:
    return r.log.show()


def show_running_config(r: Router) -> str:
    return r.running_config()


def show_startup_config(r: Router) -> str:
    return r.startup_config()


def show_platform_classic(r: Router) -> str:
    return f"Chassis type: {r.spec.platform.model}\n"


# -- crypto ---------------------------------------------------------------------------------


def _ident(ident: tuple[str, str, int]) -> str:
    return f"({ident[0]}/{ident[1]}/{ident[2]}/0)"


def _port(tunnel: TunnelRuntime) -> int:
    return 4500 if tunnel.spec.nat_t else 500


def _peer_of(tunnel: TunnelRuntime, end: int) -> str:
    return tunnel.spec.ends[1 - end].public_addr


def _visible(tunnel: TunnelRuntime, end: int, t: float) -> bool:
    """Dynamic ends (dynamic map, dVTI, DMVPN hub, EzVPN server) vanish with their SAs."""
    if tunnel.spec.ends[end].config_type in _DYNAMIC_TYPES:
        return bool(tunnel.ends[end].sas(t)) or tunnel.ends[end].ike is not None
    return True


def _kb_left(tunnel: TunnelRuntime, gen: SaGeneration, sender_end: int, t: float) -> int:
    """Kilobytes left on an SA: its volume lifetime minus what has crossed it since it was built."""
    packets = tunnel.spec.rate_pps[sender_end] * max(0.0, t - gen.established)
    return max(0, KB_LIFETIME - int(packets * PACKET_BYTES) // 1024)


def _sa_lines(r: Router, tunnel: TunnelRuntime, end: int, gen: SaGeneration, inbound: bool, t: float) -> list[str]:
    spec = tunnel.spec
    me = spec.ends[end]
    spi = gen.spi_in[end] if inbound else gen.spi_in[1 - end]
    settings = spec.mode + (" UDP-Encaps" if spec.nat_t else "")
    kb = _kb_left(tunnel, gen, 1 - end if inbound else end, t)
    p = r.spec.platform
    iv = 8 if spec.transform.startswith("esp-gcm") else 16
    status = "ACTIVE(ACTIVE)" if p.is_xe else "ACTIVE"
    return [
        f"      spi: 0x{spi:X}({spi})",
        f"        transform: {spec.transform} ,",
        f"        in use settings ={{{settings}, }}",
        f"        conn id: {gen.conn[end]}, flow_id: {p.flow_prefix}:{gen.conn[end] % 1000}, "
        f"sibling_flags {'FFFFFFFF80000048' if p.is_xe else '80004048'}, crypto map: {me.tag}",
        f"        sa timing: remaining key lifetime (k/sec): ({kb}/{gen.remaining(t)})",
        f"        IV size: {iv} bytes",
        f"        replay detection support: Y  replay window size: {1024 if p.is_xe else 64}",
        f"        Status: {status}",
        "",
    ]


def _ipsec_block(r: Router, tunnel: TunnelRuntime, end: int, t: float, detail: bool) -> list[str]:
    spec = tunnel.spec
    me = spec.ends[end]
    state: EndState = tunnel.ends[end]
    peer = _peer_of(tunnel, end)
    enc = state.encaps.value(t)
    dec = state.decaps.value(t)
    invalid = state.invalid.value(t)
    sas = state.sas(t)
    lines = [
        "   protected vrf: (none)",
        f"   local  ident (addr/mask/prot/port): {_ident(me.local_ident)}",
        f"   remote ident (addr/mask/prot/port): {_ident(me.remote_ident)}",
        f"   current_peer {peer} port {_port(tunnel)}",
        "     PERMIT, flags={origin_is_acl,}",
        f"    #pkts encaps: {enc}, #pkts encrypt: {enc}, #pkts digest: {enc}",
        f"    #pkts decaps: {dec}, #pkts decrypt: {dec}, #pkts verify: {dec}",
        "    #pkts compressed: 0, #pkts decompressed: 0",
        "    #pkts not compressed: 0, #pkts compr. failed: 0",
        "    #pkts not decompressed: 0, #pkts decompress failed: 0",
    ]
    if detail:
        lines += [
            f"    #pkts no sa (send) 0, #pkts invalid sa (rcv) {invalid}",
            "    #pkts encaps failed (send) 0, #pkts decaps failed (rcv) 0",
            "    #pkts invalid prot (recv) 0, #pkts verify failed: 0",
            "    #pkts invalid identity (recv) 0, #pkts invalid len (rcv) 0",
            "    #pkts replay rollover (send): 0, #pkts replay rollover (rcv) 0",
            "    ##pkts replay failed (rcv): 0",
            "    #pkts tagged (send): 0, #pkts untagged (rcv): 0",
            "    #pkts not tagged (send): 0, #pkts not untagged (rcv): 0",
            "    #pkts internal err (send): 0, #pkts internal err (recv) 0",
        ]
    else:
        lines.append(f"    #send errors 0, #recv errors {invalid}")
    current_out = state.sa.spi_in[1 - end] if state.sa is not None else 0
    lines += [
        "",
        f"     local crypto endpt.: {me.local_addr}, remote crypto endpt.: {peer}",
        f"     plaintext mtu {1438 if spec.mode == 'Tunnel' else 1446}, path mtu 1500, ip mtu 1500, ip mtu idb {r.spec.platform.wan_if}",
        f"     current outbound spi: 0x{current_out:X}({current_out})",
        "     PFS (Y/N): N, DH group: none",
        "",
        "     inbound esp sas:",
    ]
    ordered = list(reversed(sas))  # oldest first, as IOS lists them
    for gen in ordered:
        lines += _sa_lines(r, tunnel, end, gen, True, t)
    lines += ["     inbound ah sas:", "", "     inbound pcp sas:", "", "     outbound esp sas:"]
    for gen in ordered:
        lines += _sa_lines(r, tunnel, end, gen, False, t)
    lines += ["     outbound ah sas:", "", "     outbound pcp sas:", ""]
    return lines


def show_crypto_ipsec_sa(r: Router, peer: str | None = None, detail: bool = False) -> str:
    t = r.now()
    groups: dict[str, list[tuple[TunnelRuntime, int]]] = {}
    for tunnel, end in r.tunnels:
        if peer is not None and _peer_of(tunnel, end) != peer:
            continue
        if not _visible(tunnel, end, t):
            continue
        groups.setdefault(tunnel.spec.ends[end].interface, []).append((tunnel, end))
    if not groups:
        return "\n"
    out: list[str] = []
    for interface, members in groups.items():
        first = members[0][0].spec.ends[members[0][1]]
        out += [f"interface: {interface}", f"    Crypto map tag: {first.tag}, local addr {first.local_addr}", ""]
        for tunnel, end in members:
            out += _ipsec_block(r, tunnel, end, t, detail)
    return "\n".join(out) + "\n"


def _isakmp_rows(r: Router, t: float) -> list[tuple[TunnelRuntime, int]]:
    return [(tn, e) for tn, e in r.tunnels if tn.spec.ike_version == 1 and tn.ends[e].ike is not None]


def show_crypto_isakmp_sa(r: Router, detail: bool = False) -> str:
    t = r.now()
    rows = _isakmp_rows(r, t)
    old = r.family == "ios124"
    if not detail:
        out = ["IPv4 Crypto ISAKMP SA"]
        out.append(
            "dst             src             state          conn-id slot status"
            if old
            else "dst             src             state          conn-id status"
        )
        for tunnel, end in rows:
            ike = tunnel.ends[end].ike
            assert ike is not None
            local, peer = tunnel.spec.ends[end].local_addr, _peer_of(tunnel, end)
            src, dst = (local, peer) if ike.initiator == end else (peer, local)
            conn = ike.conn[end]
            if old:
                out.append(f"{dst:<16}{src:<16}{'QM_IDLE':<15}{conn:>7} {0:>4} ACTIVE")
            else:
                out.append(f"{dst:<16}{src:<16}{'QM_IDLE':<15}{conn:>7} ACTIVE")
        out += ["", "IPv6 Crypto ISAKMP SA", ""]
        return "\n".join(out) + "\n"
    out = [
        "Codes: C - IKE configuration mode, D - Dead Peer Detection",
        "       K - Keepalives, N - NAT-traversal",
        "       T - cTCP encapsulation, X - IKE Extended Authentication",
        "       psk - Preshared key, rsig - RSA signature",
        "       renc - RSA encryption",
        "IPv4 Crypto ISAKMP SA",
        "",
        "C-id  Local           Remote          I-VRF  Status Encr Hash   Auth DH Lifetime Cap.",
        "",
    ]
    for tunnel, end in rows:
        ike = tunnel.ends[end].ike
        assert ike is not None
        cap = ""
        if tunnel.dpd_of(end) is not None:
            cap += "D"
        if tunnel.spec.nat_t:
            cap += "N"
        if tunnel.spec.ends[end].config_type in (EZVPN_CLIENT, EZVPN_SERVER):
            cap = "C" + cap + "X"
        hash_name = "sha" if old or tunnel.spec.transform.endswith("sha-hmac") else "sha256"
        dh = "2" if hash_name == "sha" else "14"
        local, peer = tunnel.spec.ends[end].local_addr, _peer_of(tunnel, end)
        out.append(
            f"{ike.conn[end]:<6}{local:<16}{peer:<16}{'':<7}{'ACTIVE':<7}{'aes':<5}{hash_name:<7}{'psk':<5}"
            f"{dh:<3}{_hms(ike.remaining(t)):<9}{cap}".rstrip()
        )
        out.append(f"       Engine-id:Conn-id =  SW:{ike.conn[end] % 1000}")
        out.append("")
    out += ["IPv6 Crypto ISAKMP SA", ""]
    return "\n".join(out) + "\n"


def show_crypto_ikev2_sa(r: Router, detailed: bool = False) -> str:
    t = r.now()
    out = [
        " IPv4 Crypto IKEv2  SA ",
        "",
        "Tunnel-id Local                 Remote                fvrf/ivrf            Status ",
    ]
    n = 0
    for tunnel, end in r.tunnels:
        ike = tunnel.ends[end].ike
        if tunnel.spec.ike_version != 2 or ike is None:
            continue
        n += 1
        port = _port(tunnel)
        local, peer = tunnel.spec.ends[end].local_addr, _peer_of(tunnel, end)
        out.append(f"{n:<10}{local + '/' + str(port):<22}{peer + '/' + str(port):<22}{'none/none':<21}{'READY':<7}")
        out.append(
            "      Encr: AES-CBC, keysize: 256, PRF: SHA256, Hash: SHA256, DH Grp:19, Auth sign: PSK, Auth verify: PSK"
        )
        out.append(f"      Life/Active Time: {ike.lifetime}/{int(t - ike.established)} sec")
        if detailed:
            initiator = ike.initiator == end
            local_spi, remote_spi = (ike.spi_i, ike.spi_r) if initiator else (ike.spi_r, ike.spi_i)
            dpd = tunnel.dpd_of(end)
            out += [
                f"      CE id: {ike.conn[end]}, Session-id: {ike.session[end]}",
                "      Status Description: Negotiation done",
                f"      Local spi: {local_spi}       Remote spi: {remote_spi}",
                f"      Local id: {local}",
                f"      Remote id: {peer}",
                "      Local req msg id:  2              Remote req msg id:  0",
                "      Local next msg id: 2              Remote next msg id: 0",
                "      Local req queued:  2              Remote req queued:  0",
                "      Local window:      5              Remote window:      5",
                f"      DPD configured for {dpd.interval} seconds, retry {dpd.retries}"
                if dpd
                else "      DPD configured for 0 seconds, retry 0",
                "      Fragmentation not  configured.",
                "      Dynamic Route Update: disabled",
                "      Extended Authentication not configured.",
                "      NAT-T is detected  outside" if tunnel.spec.nat_t else "      NAT-T is not detected  ",
                "      Cisco Trust Security SGT is disabled",
                f"      Initiator of SA : {'Yes' if initiator else 'No'}",
            ]
        out.append("")
    out += [" IPv6 Crypto IKEv2  SA ", ""]
    return "\n".join(out) + "\n"


def _flow(tunnel: TunnelRuntime, end: int) -> str:
    me = tunnel.spec.ends[end]
    lid, rid = me.local_ident, me.remote_ident
    if lid[2] == 47:
        return f"permit 47 host {lid[0]} host {rid[0]}"
    return f"permit ip {lid[0]}/{lid[1]} {rid[0]}/{rid[1]}"


def show_crypto_session(r: Router, detail: bool = False, remote: str | None = None) -> str:
    t = r.now()
    old = r.family == "ios124"
    # 12.4 prints no blank line under the title (genie's IOS ShowCryptoSession golden output 1;
    # tests/fixtures/real/show_crypto_session/ios_ike_sa_ezvpn_server_genie.txt)
    out = ["Crypto session current status"] + ([] if old else [""])
    if detail:
        out = [
            "Crypto session current status",
            "",
            "Code: C - IKE Configuration mode, D - Dead Peer Detection     ",
            "K - Keepalives, N - NAT-traversal, T - cTCP encapsulation     ",
            "X - IKE Extended Authentication, F - IKE Fragmentation",
            "R - IKE Auto Reconnect, U - IKE Dynamic Route Update",
            "S - SIP VPN",
            "",
        ]
    for tunnel, end in r.tunnels:
        peer = _peer_of(tunnel, end)
        if remote is not None and peer != remote:
            continue
        if not _visible(tunnel, end, t):
            continue
        spec = tunnel.spec
        me = spec.ends[end]
        state = tunnel.ends[end]
        ike = state.ike
        sas = state.sas(t)
        port = _port(tunnel)
        status = "UP-ACTIVE" if ike and sas else ("UP-NO-IKE" if sas else "DOWN")
        out.append(f"Interface: {me.interface}")
        if me.profile:
            out.append(f"Profile: {me.profile}")
        if detail and ike is not None:
            out.append(f"Uptime: {uptime_text(t - state.up_since)}")
        out.append(f"Session status: {status}")
        out.append(f"Peer: {peer} port {port} fvrf: (none) ivrf: (none)" if detail else f"Peer: {peer} port {port} ")
        if detail:
            out.append(f"      Phase1_id: {peer if ike else '(none)'}")
            out.append("      Desc: (none)")
        if ike is not None:
            if detail or spec.ike_version == 2:
                out.append(f"  Session ID: {ike.session[end] if spec.ike_version == 2 else 0}  ")
            label = "IKE SA" if old else f"IKEv{spec.ike_version} SA"
            out.append(f"  {label}: local {me.local_addr}/{port} remote {peer}/{port} Active ")
            if detail:
                caps = ("D" if tunnel.dpd_of(end) else "") + ("N" if spec.nat_t else "")
                if me.config_type in (EZVPN_CLIENT, EZVPN_SERVER):
                    caps = "C" + caps + "X"
                remaining = ike.remaining(t)
                out.append(
                    f"          Capabilities:{caps or '(none)'} connid:{ike.conn[end]} lifetime:{_hms(remaining)}"
                )
        out.append(f"  IPSEC FLOW: {_flow(tunnel, end)} ")
        out.append(f"        Active SAs: {2 * len(sas)}, origin: crypto map")
        if detail:
            current = state.sa
            life = f"{_kb_left(tunnel, current, 1 - end, t)}/{current.remaining(t)}" if current else "0/0"
            life_out = f"{_kb_left(tunnel, current, end, t)}/{current.remaining(t)}" if current else "0/0"
            out.append(
                f"        Inbound:  #pkts dec'ed {state.decaps.value(t)} drop {state.invalid.value(t)} life (KB/Sec) {life}"
            )
            out.append(f"        Outbound: #pkts enc'ed {state.encaps.value(t)} drop 0 life (KB/Sec) {life_out}")
        out.append("")
    return "\n".join(out) + "\n"


def show_crypto_map(r: Router) -> str:
    out: list[str] = []
    lifetime = f"        Security association lifetime: {KB_LIFETIME} kilobytes/{r.spec.ipsec_lifetime} seconds"
    common = [
        "        Dualstack (Y/N): N",
        "        Responder-Only (Y/N): N",
        "        PFS (Y/N): N",
        "        Mixed-mode : Disabled",
    ]
    wan = r.spec.platform.wan_if
    static = sorted((v for v in r.ends if v.me.config_type == STATIC_MAP), key=lambda v: v.me.map_seq)
    dynamic = [v for v in r.ends if v.me.config_type in (DYNAMIC_MAP, EZVPN_SERVER)]
    for v in static:
        lid, rid = v.me.local_ident, v.me.remote_ident
        out += [
            f'Crypto Map IPv4 "VPN-MAP" {v.me.map_seq} ipsec-isakmp',
            f"        Peer = {v.peer.public_addr}",
            f"        Extended IP access list {v.me.acl}",
            f"            access-list {v.me.acl} permit ip {lid[0]} {_wild(lid[1])} {rid[0]} {_wild(rid[1])}",
            f"        Current peer: {v.peer.public_addr}",
            lifetime,
            *common,
            "        Transform sets={ ",
            f"                TS-AES256:  {{ {v.tunnel.transform}  }} , ",
            "        }",
            "",
        ]
    if dynamic:
        out += [
            'Crypto Map IPv4 "VPN-MAP" 65535 ipsec-isakmp',
            "        Dynamic map template tag: DYN-MAP",
            "        Dualstack (Y/N): N",
            "",
        ]
    if static or dynamic:
        out += ["        Interfaces using crypto map VPN-MAP:", f"                {wan}", ""]
    heads: dict[str, list] = {}
    for v in r.ends:
        if v.me.config_type in (GRE_P2P, SVTI, MGRE_STATIC, MGRE_DYNAMIC, DVTI):
            heads.setdefault(v.me.tag, []).append(v)
    for tag, views in heads.items():
        v0 = views[0]
        out += [
            f'Crypto Map IPv4 "{tag}" 65536 ipsec-isakmp',
            f"        Profile name: {_profile_name(v0)}",
            lifetime,
            *common,
            "        Transform sets={ ",
            f"                {_ts_name(v0)}:  {{ {v0.tunnel.transform}  }} , ",
            "        }",
            "",
        ]
        for i, v in enumerate(views):
            out += [
                f'Crypto Map IPv4 "{tag}" {65537 + i} ipsec-isakmp',
                "        Map is a PROFILE INSTANCE.",
                f"        Peer = {v.peer.public_addr}",
                "        Extended IP access list ",
                (
                    f"            access-list  permit gre host {v.me.local_addr} host {v.peer.public_addr}"
                    if v.me.local_ident[2] == 47
                    else "            access-list  permit ip any any"
                ),
                f"        Current peer: {v.peer.public_addr}",
                lifetime,
                *common,
                "        Transform sets={ ",
                f"                {_ts_name(v)}:  {{ {v.tunnel.transform}  }} , ",
                "        }",
                "",
            ]
        out += [f"        Interfaces using crypto map {tag}:", f"                {v0.me.interface}", ""]
    return "\n".join(out) + "\n"


def _wild(mask: str) -> str:
    return ".".join(str(255 - int(p)) for p in mask.split("."))


def _profile_name(v) -> str:
    if v.tunnel.ike_version == 2:
        return "FLEX-P2P-IPSEC" if v.me.profile == "FLEX-P2P" else "FLEX-IPSEC"
    return {GRE_P2P: "GRE-PROF", SVTI: "VTI-PROF", MGRE_STATIC: "DMVPN-PROF", MGRE_DYNAMIC: "DMVPN-PROF"}[
        v.me.config_type
    ]


def _ts_name(v) -> str:
    if v.tunnel.ike_version == 2:
        return "TS-FLEX"
    return {GRE_P2P: "TS-GRE", SVTI: "TS-VTI", MGRE_STATIC: "TS-DMVPN", MGRE_DYNAMIC: "TS-DMVPN"}.get(
        v.me.config_type, "TS-AES256"
    )


def show_debugging(r: Router) -> str:
    return r.debug.show_debugging(xe=r.is_xe)


def show_crypto_debug_condition(r: Router) -> str:
    return r.debug.show_condition()


# `show event manager version`: layout of the real capture in
# tests/fixtures/real/show_event_manager_version (IOS 15, EEM 4.00). Versions by family:
# IOS 15 and IOS-XE 16/17 EEM 4.00 (that capture; an ISR4K note: 4.00, `eem: (dev10)1.1.5`),
# IOS 12.4(24)T EEM 3.00 (a public Tcl policy "tested on EEM 3.00, 12.4(24)T8"; no
# `authorization bypass` before 3.1). The component lines other than the captured ones and
# the detector table on IOS-XE and 12.4 are reconstructed (copied from the IOS 15 capture).
_EEM_VERSIONS = {"ios124": "3.00", "ios15": "4.00", "xe": "4.00"}
_EEM_COMPONENTS = {"xe": ("eem: (dev10)1.1.5",)}
_EEM_COMPONENTS_IOS = ("eem: (rel9)1.2.21", "eem-gold: (rel1)1.0.2", "eem-call-home: (rel2)1.0.4")
_EEM_DETECTORS = (
    ("application", "01.00"), ("identity", "01.00"), ("mat", "01.00"), ("neighbor-discovery", "01.00"),
    ("generic", "01.00"), ("routing", "03.00"), ("syslog", "01.00"), ("msp", "03.00"), ("cli", "01.00"),
    ("config", "01.00"), ("counter", "01.00"), ("crash", "01.00"), ("ds", "01.00"), ("env", "01.00"),
    ("gold", "01.00"), ("interface", "01.00"), ("ioswdsysmon", "01.00"), ("ipsla", "01.00"), ("none", "01.00"),
    ("oir", "01.00"), ("rpc", "01.00"), ("snmp", "01.00"), ("snmp-object", "01.00"),
    ("snmp-notification", "01.00"), ("test", "01.00"), ("timer", "01.00"),
)


def show_event_manager_version(r: Router) -> str:
    family = r.spec.platform.family
    out = [f"Embedded Event Manager Version {_EEM_VERSIONS[family]}", "Component Versions:",
           *_EEM_COMPONENTS.get(family, _EEM_COMPONENTS_IOS), "Event Detectors:",
           f"{'Name':<20}{'Version':<10}{'Node':<12}Type"]
    out += [f"{name:<20}{version:<10}{'node0/0':<12}RP" for name, version in _EEM_DETECTORS]
    return "\n".join(out) + "\n"


def show_event_manager_policy_registered(r: Router) -> str:
    out = ["No.  Class     Type    Event Type          Trap  Time Registered           Name"]
    when = r.at(r.now())
    for i, applet in enumerate(r.state.applets.values(), 1):
        event = applet.event
        etype = "none"
        if event is not None:
            etype = event.kind.replace(" ", " ") if event.kind != "syslog" else "syslog"
        out.append(f"{i:<5}applet    user    {etype:<20}Off   {when:%a %b %d %H:%M:%S %Y}  {applet.name}")
        if event is not None:
            out.append(f" {event.text}")
        out.append(" maxrun 20.000")
        for action in applet.ordered_actions():
            out.append(f" action {action.label} {action.text}")
        out.append("")
    return "\n".join(out) + "\n"


# -- QFP (IOS-XE) ------------------------------------------------------------------------------

_QFP_BASE = (("Ipv4NoAdj", 7, 296), ("Ipv4NoRoute", 1523, 98214), ("UidbNotCfgd", 46639, 2931282), ("Ipv4Acl", 12, 720))


def _ipsec_input_drops(r: Router) -> int:
    t = r.now()
    return sum(tunnel.ends[end].invalid.value(t) for tunnel, end in r.tunnels)


def show_qfp_drops(r: Router, all_rows: bool = False) -> str:
    scale = 1 + r.spec.index % 5
    rows = {name: (pk * scale, oc * scale) for name, pk, oc in _QFP_BASE}
    drops = _ipsec_input_drops(r)
    rows["IpsecInput"] = (drops, drops * 160)
    if all_rows:
        for name in (
            "IpsecDenyDrop",
            "IpsecIkeIndicate",
            "IpsecInvalidSa",
            "IpsecOutput",
            "IpsecTailDrop",
            "IpsecTedIndicate",
        ):
            rows.setdefault(name, (0, 0))
    out = [
        "Last clearing of QFP drops statistics : never",
        "",
        "-------------------------------------------------------------------------",
        "Global Drop Stats                         Packets                  Octets  ",
        "-------------------------------------------------------------------------",
    ]
    for name in sorted(rows):
        packets, octets = rows[name]
        if packets or all_rows:
            out.append(f"{name:<26}{packets:>23}{octets:>24}  ")
    return "\n".join(out) + "\n"


_IPSEC_DROP_TYPES = (
    (1, "IN_V4_PKT_HIT_INVALID_SA"),
    (2, "IN_V6_PKT_HIT_INVALID_SA"),
    (3, "IN_V4_PKT_HIT_IKE_START_SP"),
    (4, "IN_US_V4_PKT_SA_NOT_FOUND_SPI"),
    (7, "IN_TRANS_V4_IPSEC_PKT_NOT_FOUND_SPI"),
    (12, "IN_US_V6_PKT_SA_NOT_FOUND_SPI"),
    (19, "IN_OCT_ANTI_REPLAY_FAIL"),
    (20, "IN_OCT_MAC_EXCEED_SEQ"),
    (31, "OUT_OCT_HARD_EXPIRY"),
    (32, "OUT_V4_PKT_HIT_INVALID_SA"),
    (33, "OUT_V6_PKT_HIT_INVALID_SA"),
)


def show_qfp_ipsec_drops(r: Router, all_rows: bool = False) -> str:
    values = {4: _ipsec_input_drops(r), 19: 3 * (r.spec.index % 4)}
    out = [
        "------------------------------------------------------------------------",
        "Drop Type  Name                                     Packets",
        "------------------------------------------------------------------------",
    ]
    for number, name in _IPSEC_DROP_TYPES:
        packets = values.get(number, 0)
        if packets or all_rows:
            out.append(f"{number:>9}  {name}{str(packets).rjust(61 - len(name))}")
    return "\n".join(out) + "\n"


# -- show ip nhrp ----------------------------------------------------------------------------
# Layout of real captures (tests/fixtures/real/show_ip_nhrp: genie's IOS-XE golden output, a
# phase-3 spoke and a hub from public lab write-ups): per entry `TARGET/LEN via ADDR`,
# `   TunnelN created T, expire T|never expire`, `   Type: static|dynamic, Flags: ...`,
# `   NBMA address: A`, and `    (Claimed NBMA address: A)` for a peer behind NAT. A router
# without NHRP prints nothing (reconstructed: docs/lab-fidelity.md).

NHRP_HOLDTIME = 7200  # IOS default `ip nhrp holdtime`; spokes re-register every third of it


def show_ip_nhrp(r: Router) -> str:
    t = r.now()
    entries: list[tuple[tuple[int, ...], list[str]]] = []

    def add(target: str, via: str, ifname: str, created: float, expire: float | None, kind: str, flags: str,
            nbma: str, claimed: str | None = None, no_socket: bool = False) -> None:
        life = "never expire" if expire is None else f"expire {_hms(int(expire))}"
        lines = [f"{target} via {via}", f"   {ifname} created {uptime_text(max(created, 1.0))}, {life}",
                 f"   Type: {kind}, Flags: {flags}".rstrip(), f"   NBMA address: {nbma}"]
        if claimed:
            lines.append(f"    (Claimed NBMA address: {claimed})")
        if no_socket:
            lines.append("    (no-socket)")
        key = tuple(int(p) for p in target.split("/")[0].split(".")) + (int(target.split("/")[1]),)
        entries.append((key, lines))

    uptime = r.spec.boot_age + t
    for v in r.ends:  # `ip nhrp map` in the config (the hub pair's too: it has no SAs modelled)
        if v.me.config_type == MGRE_STATIC and v.peer.tunnel_ip is not None:
            add(f"{v.peer.tunnel_ip}/32", v.peer.tunnel_ip, v.me.tunnel_if or "Tunnel0", uptime, None, "static",
                "used", v.peer.public_addr)
    local_done = False
    for tunnel, end in r.tunnels:
        me, peer = tunnel.spec.ends[end], tunnel.spec.ends[1 - end]
        if me.config_type != MGRE_DYNAMIC or peer.tunnel_ip is None:
            continue
        ifname = me.tunnel_if or "Tunnel0"
        age = max(1.0, t - tunnel.ends[end].up_since)
        claimed = peer.local_addr if peer.local_addr != peer.public_addr else None
        if r.role == "hub":  # a spoke's registration, refreshed every holdtime / 3
            add(f"{peer.tunnel_ip}/32", peer.tunnel_ip, ifname, age, NHRP_HOLDTIME - age % (NHRP_HOLDTIME / 3),
                "dynamic", "unique registered used nhop", peer.public_addr, claimed)
        else:  # a phase-3 shortcut to another spoke: its tunnel address and its LAN
            expire = NHRP_HOLDTIME - age % NHRP_HOLDTIME
            add(f"{peer.tunnel_ip}/32", peer.tunnel_ip, ifname, age, expire, "dynamic", "router nhop rib",
                peer.public_addr, claimed)
            lan = _lan_of(tunnel, 1 - end)
            if lan:
                add(lan, peer.tunnel_ip, ifname, age, expire, "dynamic", "router used rib", peer.public_addr, claimed)
            if not local_done:  # this spoke's own entries, answered to the other spoke
                local_done = True
                add(f"{me.tunnel_ip}/32", me.tunnel_ip, ifname, age, expire, "dynamic", "router unique local",
                    me.public_addr, no_socket=True)
                own = _lan_of(tunnel, end)
                if own:
                    add(own, me.tunnel_ip, ifname, age, expire, "dynamic", "router unique local", me.public_addr,
                        no_socket=True)
    return "".join("\n".join(lines) + "\n" for _, lines in sorted(entries))


# `show dmvpn`: the layout of the real captures in tests/fixtures/real/show_dmvpn (ntc's IOS
# spoke raw, genie's IOS-XE golden outputs): the legend, then per mGRE interface its type
# and a table of peers, one row per NHRP entry, rows of one NBMA peer grouped under it.
_DMVPN_LEGEND = """Legend: Attrb --> S - Static, D - Dynamic, I - Incomplete
        N - NATed, L - Local, X - No Socket
        T1 - Route Installed, T2 - Nexthop-override
        C - CTS Capable
        # Ent --> Number of NHRP entries with same NBMA peer
        NHS Status: E --> Expecting Replies, R --> Responding, W --> Waiting
        UpDn Time --> Up or Down Time for a Tunnel
==========================================================================
"""


def show_dmvpn(r: Router) -> str:
    """The same NHRP cache as `show ip nhrp`, in the `show dmvpn` table. A static map is
    `S`; a spoke registered with a hub `D`; a phase-3 shortcut two rows `DT2` (the peer's
    tunnel address, next-hop override) and `DT1` (its LAN, route installed), as in genie's
    golden output 1. Not printed (no capture at hand): the `N` (NATed) attribute and the
    spoke's own `L`/`X` entries. A router without NHRP prints nothing."""
    t = r.now()
    uptime = r.spec.boot_age + t
    peers: dict[str, dict[str, list[tuple[str, float, str]]]] = {}  # ifname -> nbma -> rows
    up_since = {(tunnel.spec.ends[1 - end].public_addr): max(1.0, t - tunnel.ends[end].up_since)
                for tunnel, end in r.tunnels}
    for v in r.ends:
        if v.me.config_type == MGRE_STATIC and v.peer.tunnel_ip is not None:
            age = up_since.get(v.peer.public_addr, uptime)  # the hub pair: up since boot (GRE only)
            peers.setdefault(v.me.tunnel_if or "Tunnel0", {}).setdefault(v.peer.public_addr, []).append(
                (v.peer.tunnel_ip, age, "S"))
    for tunnel, end in r.tunnels:
        me, peer = tunnel.spec.ends[end], tunnel.spec.ends[1 - end]
        if me.config_type != MGRE_DYNAMIC or peer.tunnel_ip is None:
            continue
        age = max(1.0, t - tunnel.ends[end].up_since)
        rows = peers.setdefault(me.tunnel_if or "Tunnel0", {}).setdefault(peer.public_addr, [])
        if r.role == "hub":
            rows.append((peer.tunnel_ip, age, "D"))
        else:
            rows += [(peer.tunnel_ip, age, "DT2"), (peer.tunnel_ip, age, "DT1")]
    if not peers:
        return ""
    out = [_DMVPN_LEGEND]
    for ifname in sorted(peers):
        table = peers[ifname]
        out.append(f"\nInterface: {ifname}, IPv4 NHRP Details \n"
                   f"Type:{'Hub' if r.role == 'hub' else 'Spoke'}, NHRP Peers:{len(table)}, \n\n"
                   " # Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb\n"
                   " ----- --------------- --------------- ----- -------- -----\n")
        for nbma in sorted(table, key=_address_key):
            rows = sorted(table[nbma], key=lambda row: _address_key(row[0]))
            for n, (tunnel_ip, age, attrb) in enumerate(rows):
                head = f"{len(rows):>6} {nbma:<15}" if n == 0 else " " * 22
                out.append(f"{head} {tunnel_ip:>15} {'UP':>5} {uptime_text(age):>8} {attrb:>5}\n")
    return "".join(out) + "\n"


def _address_key(address: str) -> tuple[int, ...]:
    return tuple(int(p) for p in address.split("."))


def _lan_of(tunnel: TunnelRuntime, end: int) -> str | None:
    """`172.16.1.0/24` for the LAN behind one end of a tunnel (the router's plan)."""
    spec = tunnel.routers[end].spec
    bits = sum(bin(int(p)).count("1") for p in spec.lan_mask.split("."))
    return f"{spec.lan_net}/{bits}"
