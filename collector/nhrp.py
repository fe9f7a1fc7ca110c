"""DMVPN per flow: is the flow's peer reached over a static or a dynamic NHRP mapping?

Cisco 115801's table (the seed note) says `crypto isakmp invalid-spi-recovery` works for mGRE
tunnel protection with a static NHRP mapping and not with a dynamic one. One mGRE interface
holds both: a dual-hub hub maps the other hub statically and learns its spokes from their
registrations (`ip nhrp map multicast dynamic`); a phase-3 spoke maps its hub statically and
learns other spokes from NHRP resolution (`ip nhrp shortcut`). So the answer belongs to the
flow's peer (its srcaddr, the sender's NBMA address), not to the tunnel interface.

Sources of the answer, best first: the receiver's NHRP cache (`show ip nhrp`, or the `Attrb`
column of `show dmvpn`), then its configuration (a static `ip nhrp map` / `ip nhrp nhs ...
nbma` naming the peer). A peer of an mGRE tunnel that no static mapping names can only have
been learned by NHRP: a dynamic mapping.

Layouts (real captures in tests/fixtures/real/show_ip_nhrp and show_dmvpn): `show ip nhrp`
prints per entry `TARGET/LEN via TUNNEL-ADDR`, `   TunnelN created T, expire T|never expire`,
`   Type: static|dynamic|incomplete, Flags: ...`, `   NBMA address: A`, and under NAT
`    (Claimed NBMA address: A)`. `show dmvpn` prints one row per peer with `S`/`D` in `Attrb`
(a continuation row leaves `# Ent` and the NBMA address blank; a long IPv6 NBMA address
wraps the rest of its row onto the next line).

Everything here is a pure function of text; nothing raises on odd device output.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Iterable, Literal, Sequence

from collector.cryptoconfig import CryptoProfile, Evidence, TunnelConfig, TunnelKind, recovery_for, recovery_reason

Mapping = Literal["static", "dynamic"]
MGRE_KINDS = (TunnelKind.MGRE_STATIC_NHRP, TunnelKind.MGRE_DYNAMIC_NHRP)


@dataclass(frozen=True, slots=True)
class NhrpEntry:
    """One NHRP cache entry (a `show ip nhrp` block or a `show dmvpn` row)."""

    interface: str | None
    target: str  # `10.0.0.3/32` (show ip nhrp) or the peer's tunnel address (show dmvpn)
    type: str  # static | dynamic | incomplete | ... as printed (show dmvpn: from Attrb S/D/I)
    nbma: str | None
    claimed_nbma: str | None = None  # the address the peer registered from, behind NAT
    flags: tuple[str, ...] = ()  # `Flags:` words, or the Attrb letters of show dmvpn
    lines: tuple[tuple[int, str], ...] = ()  # (1-based line number, stripped text) to cite

    def reaches(self, peer: str) -> bool:
        return _same(peer, self.nbma) or _same(peer, self.claimed_nbma)


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


# --------------------------------------------------------------------------------------------
# show ip nhrp [detail]

_ADDR = r"[0-9A-Fa-f:.]+"
_HEAD = re.compile(rf"^\s*(?P<target>{_ADDR}/\d+)\s+via\s+(?P<via>{_ADDR})(?:,\s*(?P<iface>\S+)\s+created\b.*)?$")
_CREATED = re.compile(r"^\s*(?P<iface>\S+)\s+created\s+\S+")
_TYPE = re.compile(r"^\s*Type:\s*(?P<type>[\w-]+),\s*Flags:\s*(?P<flags>.*?)\s*$")
_NBMA = re.compile(rf"^\s*NBMA address:\s*(?P<nbma>{_ADDR})")
_CLAIMED = re.compile(rf"^\s*\(Claimed NBMA address:\s*(?P<nbma>{_ADDR})\)")


def parse_show_ip_nhrp(text: str) -> tuple[NhrpEntry, ...]:
    """Entries of `show ip nhrp [detail]`, each with the lines it was read from."""
    out: list[NhrpEntry] = []
    cur: dict | None = None

    def close() -> None:
        if cur is not None and cur["type"]:
            out.append(NhrpEntry(cur["iface"], cur["target"], cur["type"], cur["nbma"], cur["claimed"],
                                 cur["flags"], tuple(cur["lines"])))

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if m := _HEAD.match(line):
            close()
            cur = {"iface": m.group("iface"), "target": m.group("target"), "type": "", "nbma": None,
                   "claimed": None, "flags": (), "lines": [(number, line.strip())]}
            continue
        if cur is None:
            continue
        if m := _TYPE.match(line):
            cur["type"] = m.group("type").lower()
            cur["flags"] = tuple(m.group("flags").split())
        elif m := _NBMA.match(line):
            cur["nbma"] = m.group("nbma")
        elif m := _CLAIMED.match(line):
            cur["claimed"] = m.group("nbma")
        elif (m := _CREATED.match(line)) and cur["iface"] is None:
            cur["iface"] = m.group("iface")
        else:
            continue
        cur["lines"].append((number, line.strip()))
    close()
    return tuple(out)


# --------------------------------------------------------------------------------------------
# show dmvpn

_DMVPN_IFACE = re.compile(r"^\s*Interface:\s*(?P<iface>[^,\s]+),")
_DMVPN_ROW = re.compile(
    rf"^\s*(?:(?P<ent>\d+)\s+(?P<nbma>{_ADDR}|UNKNOWN)\s+)?(?P<tunnel>\d+\.\d+\.\d+\.\d+|[0-9A-Fa-f]*:[0-9A-Fa-f:]+)"
    r"\s+(?P<state>\S+)\s+(?P<updn>\S+)\s+(?P<attrb>[A-Z0-9]+)\s*$"
)
_DMVPN_WRAPPED_NBMA = re.compile(rf"^\s*(?P<ent>\d+)\s+(?P<nbma>{_ADDR})\s*$")


def parse_show_dmvpn(text: str) -> tuple[NhrpEntry, ...]:
    """Peers of `show dmvpn`: Attrb `S` -> static, `D` -> dynamic, `I` -> incomplete."""
    out: list[NhrpEntry] = []
    iface: str | None = None
    nbma: str | None = None
    pending: tuple[int, str] | None = None  # a wrapped IPv6 NBMA line waiting for its row
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if m := _DMVPN_IFACE.match(line):
            iface, nbma, pending = m.group("iface"), None, None
            continue
        if iface is None:
            continue
        if m := _DMVPN_WRAPPED_NBMA.match(line):
            nbma, pending = m.group("nbma"), (number, line.strip())
            continue
        m = _DMVPN_ROW.match(line)
        if m is None:
            continue
        if m.group("nbma"):
            nbma = None if m.group("nbma") == "UNKNOWN" else m.group("nbma")
            pending = None
        attrb = m.group("attrb")
        kind = "static" if "S" in attrb else "dynamic" if "D" in attrb else "incomplete" if "I" in attrb else attrb
        lines = ((pending,) if pending else ()) + ((number, line.strip()),)
        out.append(NhrpEntry(iface, m.group("tunnel"), kind, nbma, None, (attrb,), lines))
    return tuple(out)


def parse_nhrp(text: str) -> tuple[NhrpEntry, ...]:
    """Either layout, told apart by the `show dmvpn` table heading."""
    if "Peer NBMA Addr" in text or re.search(r"^\s*Interface:\s*\S+,\s*IPv[46] NHRP Details", text, re.M):
        return parse_show_dmvpn(text)
    return parse_show_ip_nhrp(text)


# --------------------------------------------------------------------------------------------
# The per-flow decision


@dataclass(frozen=True, slots=True)
class FlowMapping:
    """How the receiver reaches the flow's peer over DMVPN, and what 115801 says for it."""

    peer: str
    mapping: Mapping
    tunnel: TunnelConfig  # the mGRE tunnel, kind and recovery set for THIS mapping
    how: str  # one sentence for the report: which entry or config line decided it
    nhrp_lines: tuple[tuple[int, str], ...] = ()  # NHRP cache lines that decided it
    config_evidence: tuple[Evidence, ...] = ()  # config lines that decided it (static maps)


# Tunnels that accept a peer no line of the configuration names, beside dynamic NHRP.
_ANY_PEER_KINDS = (TunnelKind.DYNAMIC_CRYPTO_MAP, TunnelKind.DYNAMIC_VTI)


def _names(t: TunnelConfig, peer: str) -> bool:
    return any(_same(peer, p) for p in (*t.peers, *t.observed_peers))


def _static_lines(t: TunnelConfig, peer: str) -> tuple[Evidence, ...]:
    """The tunnel's `ip nhrp map ... <peer>` / `ip nhrp nhs ... nbma <peer>` lines."""
    return tuple(e for e in t.evidence if "nhrp" in e.text.split()
                 and any(_same(peer, w) for w in e.text.split()))


def flow_mapping(profile: CryptoProfile, peer: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
                 entries: Sequence[NhrpEntry] | None = None, *, over_gre: bool | None = None) -> FlowMapping | None:
    """The NHRP mapping that carries traffic between this router and `peer`, or None when
    the flow is not on an mGRE tunnel (no mGRE tunnel, or another tunnel names the peer).

    `entries`: the router's NHRP cache (parse_nhrp), None when it was not read. `over_gre`:
    whether the flow's SAs protect GRE, None when not known."""
    peer = str(peer)
    mgre = [t for t in profile.tunnels if t.kind in MGRE_KINDS]
    if not mgre or any(_names(t, peer) for t in profile.tunnels if t.kind not in MGRE_KINDS):
        return None
    found = [e for e in entries or () if e.reaches(peer) and e.type in ("static", "dynamic")]
    static_entries = [e for e in found if e.type == "static"]
    by_config = [t for t in mgre if any(_same(peer, p) for p in t.peers)]
    if not found and not by_config and not over_gre and any(t.kind in _ANY_PEER_KINDS for t in profile.tunnels):
        # nothing ties the peer to the mGRE tunnel (its SAs are not known to carry GRE), and
        # a dynamic crypto map or virtual template on the same router takes any peer too (a
        # hub with both): not decidable here
        return None
    config_lines = tuple(e for t in by_config for e in _static_lines(t, peer))
    mapping: Mapping = "static" if static_entries or by_config else "dynamic"
    decided = static_entries if mapping == "static" else found
    nhrp_lines = tuple(line for e in decided for line in e.lines)
    tunnel = _tunnel_for(mgre, decided, by_config)
    entry = decided[0] if decided else None
    shown = f"NHRP entry {entry.target} (NBMA {peer}, {entry.interface or 'tunnel'}) is {entry.type}" if entry else ""
    if mapping == "static" and entry is not None:
        how = f"{shown} (a static NHRP mapping)"
    elif mapping == "static":
        where = f" (config line {config_lines[0].line}: {config_lines[0].text})" if config_lines else ""
        how = f"the configuration maps {peer} statically on {tunnel.name}{where} (a static NHRP mapping)"
        if entries is not None:
            how += "; the NHRP cache has no entry for it now"
    elif entry is not None:
        flags = f" (flags: {' '.join(entry.flags)})" if entry.flags else ""
        learned = ("a spoke's registration" if "registered" in entry.flags else
                   "an NHRP resolution (a spoke-to-spoke shortcut)" if "router" in entry.flags else
                   "a registration or a resolution")
        how = f"{shown}{flags}, learned from {learned} and named by no static mapping (a dynamic NHRP mapping)"
    else:
        cache = "the NHRP cache has no entry for it and " if entries is not None else ""
        how = (f"{cache}no static NHRP mapping in the configuration names {peer}; a peer of {tunnel.name} "
               "that is not mapped statically is learned by NHRP (a dynamic NHRP mapping)")
    kind = TunnelKind.MGRE_STATIC_NHRP if mapping == "static" else TunnelKind.MGRE_DYNAMIC_NHRP
    # the flow's view of the interface: its peers are this flow's peer only where the
    # configuration names it (a report listing the hub as a peer of a shortcut's flow misleads)
    per_flow = replace(tunnel, kind=kind, recovery=recovery_for(kind, tunnel.ike_version),
                       recovery_reason=recovery_reason(kind, tunnel.ike_version),
                       peers=tuple(p for p in tunnel.peers if _same(peer, p)),
                       observed_peers=tuple(p for p in tunnel.observed_peers if _same(peer, p)),
                       evidence=tuple(e for e in tunnel.evidence if not _about_another_peer(e, peer)))
    return FlowMapping(peer, mapping, per_flow, how, nhrp_lines, config_lines)


def _about_another_peer(e: Evidence, peer: str) -> bool:
    """A static NHRP map / NHS line or an ISAKMP key for some other address: true of the
    interface, but no evidence about this flow's mapping."""
    words = e.text.split()
    if "nhrp" in words and ("map" in words or "nhs" in words) and "dynamic" not in words:
        return not any(_same(peer, w) for w in words)
    if words[:3] == ["crypto", "isakmp", "key"] and "address" in words:
        after = words[words.index("address") + 1:]
        return bool(after) and after[0] != "0.0.0.0" and not _same(peer, after[0])
    return False


def _tunnel_for(mgre: list[TunnelConfig], decided: Iterable[NhrpEntry], by_config: list[TunnelConfig]) -> TunnelConfig:
    for e in decided:
        for t in mgre:
            if e.interface is not None and e.interface in t.interfaces:
                return t
    if by_config:
        return by_config[0]
    return mgre[0]


def per_mapping(tunnel: TunnelConfig, entries: Sequence[NhrpEntry] | None = None) -> tuple[TunnelConfig, ...]:
    """An mGRE tunnel as its mappings, for a fleet audit: the statically mapped peers
    (recovery applies) and, where the interface learns peers (`ip nhrp map multicast
    dynamic`, `ip nhrp shortcut`, or dynamic entries in its cache), the dynamic ones (it does
    not). Any other tunnel is returned as it is."""
    if tunnel.kind not in MGRE_KINDS:
        return (tunnel,)
    cache = [e for e in entries or () if e.interface is None or e.interface in tunnel.interfaces]
    static_peers = tuple(p for p in tunnel.peers if p)
    learned = [e.nbma for e in cache if e.type == "dynamic" and e.nbma and "local" not in e.flags
               and not any(_same(e.nbma, p) for p in static_peers)]
    seen = [p for p in tunnel.observed_peers if not any(_same(p, s) for s in static_peers)]
    out: list[TunnelConfig] = []
    if static_peers:
        kind = TunnelKind.MGRE_STATIC_NHRP
        out.append(replace(tunnel, kind=kind, recovery=recovery_for(kind, tunnel.ike_version),
                           recovery_reason=recovery_reason(kind, tunnel.ike_version),
                           observed_peers=tuple(p for p in tunnel.observed_peers if p in static_peers),
                           evidence=tuple(e for e in tunnel.evidence
                                          if not any(_about_another_peer(e, p) for p in static_peers)
                                          or any(_same(p, w) for p in static_peers for w in e.text.split()))))
    if not static_peers or tunnel.dynamic_nhrp is not None or learned:
        kind = TunnelKind.MGRE_DYNAMIC_NHRP
        extra = (tunnel.dynamic_nhrp,) if tunnel.dynamic_nhrp is not None else ()
        evidence = tuple(e for e in tunnel.evidence if not any(_same(p, w) for p in static_peers
                                                                 for w in e.text.split()))
        out.append(replace(tunnel, kind=kind, peers=(), recovery=recovery_for(kind, tunnel.ike_version),
                           recovery_reason=recovery_reason(kind, tunnel.ike_version),
                           observed_peers=tuple(dict.fromkeys([*learned, *seen])),
                           evidence=tuple(sorted({e.line: e for e in (*evidence, *extra)}.values(),
                                                 key=lambda e: e.line))))
    return tuple(out)
