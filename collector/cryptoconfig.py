"""Which crypto configuration each IPsec tunnel of a router uses, read from `show running-config`.

The point of the classification is Cisco 115801's table (the project's seed note): whether
`crypto isakmp invalid-spi-recovery` can help depends on the tunnel type, because the feature
makes the router that receives an unknown SPI open an IKE SA *towards the sender* — which is
only possible when the peer is configured (static map peer, tunnel destination, static NHRP
NBMA). `recovery_for()` is the one place that table lives.

Everything here is a pure function of text. A running-config is hierarchical (top-level lines,
children indented by one space per level), so `config_blocks()` turns it into a tree once and
the classifier reads facts off that tree. Anything that does not parse is skipped, never raised:
the config comes from a device and may be truncated or odd.

Evidence texts have secrets masked (`redact_secrets`), because they end up in reports.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum
from typing import Any, Iterable, Literal

IkeVersion = Literal["IKEv1", "IKEv2", "unknown"]


# --------------------------------------------------------------------------------------------
# Public values


class TunnelKind(str, Enum):
    STATIC_CRYPTO_MAP = "static-crypto-map"
    DYNAMIC_CRYPTO_MAP = "dynamic-crypto-map"
    GRE_P2P_TUNNEL_PROTECTION = "gre-p2p-tunnel-protection"
    MGRE_STATIC_NHRP = "mgre-static-nhrp"
    MGRE_DYNAMIC_NHRP = "mgre-dynamic-nhrp"
    SVTI = "svti"
    DYNAMIC_VTI = "dynamic-vti"
    EZVPN_CLIENT = "ezvpn-client"


class Recovery(str, Enum):
    """Does `crypto isakmp invalid-spi-recovery` work for a tunnel (Cisco 115801's table)?"""

    YES = "yes"
    NO = "no"
    NOT_APPLICABLE = "not-applicable"
    UNKNOWN_IKEV2 = "unknown-ikev2"  # the command is an ISAKMP (IKEv1) feature


@dataclass(frozen=True, slots=True)
class Evidence:
    line: int  # 1-based line number in the running-config text that was classified
    text: str  # that line, stripped, secrets masked


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    kind: TunnelKind
    name: str  # interface name, "map NAME SEQ", or the EzVPN client name
    peers: tuple[str, ...]  # configured peer addresses (or hostnames); () when learned at run time
    ike_version: IkeVersion
    recovery: Recovery
    recovery_reason: str
    dpd: bool  # IKE DPD / keepalive configured for this tunnel (GRE keepalive does not count)
    evidence: tuple[Evidence, ...]  # the lines that make it this kind, in config order
    interfaces: tuple[str, ...] = ()  # interfaces carrying it (tunnel itself, or where a map is applied)
    ike_reason: str = ""  # why this IKE version
    ike_profile: str | None = None  # the ISAKMP / IKEv2 profile in use, when known
    dpd_evidence: tuple[Evidence, ...] = ()  # the line(s) deciding DPD (a profile `no keepalive` too)
    gre_keepalive: Evidence | None = None  # ` keepalive` under a GRE tunnel: GRE-level, not DPD
    observed_peers: tuple[str, ...] = ()  # peers seen in `show crypto session` (refine_with_session)
    # mGRE: the line that lets dynamic NHRP mappings in (`ip nhrp map multicast dynamic` on a
    # hub, `ip nhrp shortcut` on a phase-3 spoke); one interface can hold static and dynamic
    # mappings, and collector/nhrp.py decides per peer
    dynamic_nhrp: Evidence | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, slots=True)
class CryptoProfile:
    tunnels: tuple[TunnelConfig, ...]
    invalid_spi_recovery: Evidence | None  # `crypto isakmp invalid-spi-recovery`
    isakmp_keepalive: Evidence | None  # global `crypto isakmp keepalive ...` (IKEv1 DPD)
    ikev2_dpd: tuple[Evidence, ...]  # global `crypto ikev2 dpd ...` and IKEv2 profile ` dpd ...`
    isakmp_profile_keepalives: tuple[Evidence, ...] = ()  # ISAKMP profile ` keepalive ...`
    nat_keepalive: Evidence | None = None  # `crypto isakmp nat keepalive`: NAT-T, not DPD
    hostname: str | None = None
    uses_isakmp: bool = False  # ISAKMP policy / key / keyring / profile present
    uses_ikev2: bool = False  # IKEv2 profile / proposal / policy / keyring present
    notes: tuple[str, ...] = ()  # crypto config seen but not classified, and why

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def tunnels_of_kind(self, kind: TunnelKind) -> tuple[TunnelConfig, ...]:
        return tuple(t for t in self.tunnels if t.kind is kind)


# --------------------------------------------------------------------------------------------
# Seed table (Cisco 115801) — the one place it lives

_TABLE: dict[TunnelKind, Recovery] = {
    TunnelKind.STATIC_CRYPTO_MAP: Recovery.YES,
    TunnelKind.DYNAMIC_CRYPTO_MAP: Recovery.NO,
    TunnelKind.GRE_P2P_TUNNEL_PROTECTION: Recovery.YES,
    TunnelKind.MGRE_STATIC_NHRP: Recovery.YES,
    TunnelKind.MGRE_DYNAMIC_NHRP: Recovery.NO,
    TunnelKind.SVTI: Recovery.YES,
    # Not in the table; a virtual template is cloned per connecting peer, like a dynamic map.
    TunnelKind.DYNAMIC_VTI: Recovery.NO,
    TunnelKind.EZVPN_CLIENT: Recovery.NOT_APPLICABLE,
}

_TABLE_REASON: dict[TunnelKind, str] = {
    TunnelKind.STATIC_CRYPTO_MAP: "static crypto map: the peer is configured (set peer), so the "
    "router can open an IKE SA to it to deliver the INVALID SPI notify",
    TunnelKind.DYNAMIC_CRYPTO_MAP: "dynamic crypto map: the router only answers peers that connect; "
    "it has no configured peer to open an IKE SA to",
    TunnelKind.GRE_P2P_TUNNEL_PROTECTION: "GRE point-to-point with tunnel protection: the peer is "
    "the configured tunnel destination",
    TunnelKind.MGRE_STATIC_NHRP: "mGRE with static NHRP mapping: the peer's NBMA address is "
    "configured (peers of the same interface learned from NHRP are dynamic and not covered; "
    "collector/nhrp.py decides per flow)",
    TunnelKind.MGRE_DYNAMIC_NHRP: "mGRE with dynamic NHRP mapping: the peer is learned from NHRP at "
    "run time (a spoke's registration at its hub, or a resolution / phase-3 shortcut between "
    "spokes), not configured",
    TunnelKind.SVTI: "static VTI: the peer is the configured tunnel destination",
    TunnelKind.DYNAMIC_VTI: "dynamic VTI (virtual template): sessions are cloned for peers that "
    "connect, like a dynamic crypto map (115801's table does not list it; treated as a dynamic map)",
    TunnelKind.EZVPN_CLIENT: "Easy VPN client: Cisco 115801 marks the command not applicable",
}


def recovery_for(kind: TunnelKind, ike_version: str) -> Recovery:
    """Cisco 115801's answer for a tunnel kind; IKEv2 tunnels get UNKNOWN_IKEV2 because
    `crypto isakmp invalid-spi-recovery` is an ISAKMP (IKEv1) command whose effect on IKEv2 is
    not confirmed. An undetermined IKE version falls back to the table (it assumes ISAKMP)."""
    if kind is TunnelKind.EZVPN_CLIENT:
        return Recovery.NOT_APPLICABLE
    if ike_version == "IKEv2":
        return Recovery.UNKNOWN_IKEV2
    return _TABLE[kind]


def recovery_reason(kind: TunnelKind, ike_version: str) -> str:
    """Human wording for `recovery_for(kind, ike_version)`."""
    if kind is not TunnelKind.EZVPN_CLIENT and ike_version == "IKEv2":
        return (
            "IKEv2 tunnel: crypto isakmp invalid-spi-recovery is an ISAKMP (IKEv1) command and "
            "its effect on IKEv2 is not confirmed — treat as unknown / not applicable"
        )
    reason = _TABLE_REASON[kind]
    if ike_version == "unknown" and kind is not TunnelKind.EZVPN_CLIENT:
        reason += " (IKE version not determined from the config; the table assumes ISAKMP/IKEv1)"
    return reason


# --------------------------------------------------------------------------------------------
# Block parser


@dataclass(frozen=True, slots=True)
class ConfigNode:
    """One configuration line with the lines indented under it."""

    line: int  # 1-based
    text: str  # stripped
    children: tuple["ConfigNode", ...] = ()

    @property
    def words(self) -> list[str]:
        return self.text.split()

    def evidence(self) -> Evidence:
        return Evidence(self.line, redact_secrets(self.text))


@dataclass
class _OpenNode:
    line: int
    text: str
    indent: int
    children: list["_OpenNode"] = field(default_factory=list)

    def freeze(self) -> ConfigNode:
        return ConfigNode(self.line, self.text, tuple(c.freeze() for c in self.children))


def config_blocks(running_config: str) -> tuple[ConfigNode, ...]:
    """Parse config text into top-level nodes with their indented children.

    `!` comment lines and blank lines are dropped; banner bodies are skipped (their free text
    could look like config). Line numbers count every physical line of the input.
    """
    lines = running_config.splitlines()
    roots: list[_OpenNode] = []
    stack: list[_OpenNode] = []
    skip_until = -1
    for index, raw in enumerate(lines):
        if index <= skip_until:
            continue
        expanded = raw.replace("\t", " ").rstrip()
        text = expanded.strip()
        if not text or text.startswith("!"):
            continue
        indent = len(expanded) - len(expanded.lstrip(" "))
        if indent == 0 and text.startswith("banner "):
            skip_until = _banner_end(lines, index)
        node = _OpenNode(index + 1, text, indent)
        while stack and stack[-1].indent >= indent:
            stack.pop()
        if stack:
            stack[-1].children.append(node)
        else:
            roots.append(node)
        stack.append(node)
    return tuple(n.freeze() for n in roots)


def _banner_end(lines: list[str], start: int) -> int:
    """Index of the last line of a `banner TYPE <delim>...<delim>` block (start if one line or
    unterminated, so a stray `banner` word never swallows the rest of the text)."""
    words = lines[start].strip().split(None, 2)
    if len(words) < 3:
        return start
    rest = words[2]
    delim = "^C" if rest.startswith("^C") else rest[0]
    if delim in rest[len(delim) :]:
        return start
    for j in range(start + 1, len(lines)):
        if delim in lines[j]:
            return j
    return start


# --------------------------------------------------------------------------------------------
# Secrets

_SECRET_RE = re.compile(
    r"(?<![\w-])(key|password|secret|nhrp\s+authentication|pre-shared-key(?:\s+(?:local|remote))?)"
    r"(\s+)(?:([0-7])(\s+))?"
    r"(?!(?:address|hostname|ipv6|generate|zeroize|chain|pubkey-chain|storage|config-key)\b)"
    r"(\S+)"
)


def redact_secrets(text: str) -> str:
    """Mask the value after key / password / secret / pre-shared-key (keeping an encryption
    type digit), so evidence lines can go into reports. `<removed>` stays as it is."""
    return _SECRET_RE.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{(m.group(3) or '')}{m.group(4) or ''}<removed>", text
    )


# --------------------------------------------------------------------------------------------
# Facts read off the tree


@dataclass
class _AddressMatch:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    node: ConfigNode
    profile: str | None  # the profile that holds the match, None for a global key / keyring

    @property
    def wildcard(self) -> bool:
        return self.network.prefixlen == 0


@dataclass
class _IkeProfile:
    name: str
    node: ConfigNode
    matches: list[_AddressMatch] = field(default_factory=list)
    virtual_template: int | None = None
    vt_node: ConfigNode | None = None
    dpd: ConfigNode | None = None  # ` keepalive ...` (ISAKMP) / ` dpd ...` (IKEv2)
    no_keepalive: ConfigNode | None = None


@dataclass
class _Interface:
    node: ConfigNode
    name: str
    crypto_maps: list[tuple[str, ConfigNode]] = field(default_factory=list)
    mode: tuple[list[str], ConfigNode] | None = None
    destination: tuple[str, ConfigNode] | None = None
    protection: ConfigNode | None = None
    nhrp_static: list[tuple[str, ConfigNode]] = field(default_factory=list)
    nhrp_dynamic: ConfigNode | None = None
    nhrp_shortcut: ConfigNode | None = None
    ezvpn: list[tuple[str, str, ConfigNode]] = field(default_factory=list)  # name, role, node
    gre_keepalive: ConfigNode | None = None


@dataclass
class _MapEntry:
    name: str
    seq: int
    node: ConfigNode
    dynamic_ref: str | None
    peers: list[tuple[str, ConfigNode]] = field(default_factory=list)
    isakmp_profile: tuple[str, ConfigNode] | None = None
    ikev2_profile: tuple[str, ConfigNode] | None = None


@dataclass
class _Facts:
    hostname: str | None = None
    interfaces: list[_Interface] = field(default_factory=list)
    map_entries: list[_MapEntry] = field(default_factory=list)
    map_isakmp_profile: dict[str, tuple[str, ConfigNode]] = field(default_factory=dict)
    dynamic_maps: dict[str, list[_MapEntry]] = field(default_factory=dict)
    ipsec_profiles: dict[str, tuple[ConfigNode, tuple[str, ConfigNode] | None, tuple[str, ConfigNode] | None]] = field(
        default_factory=dict
    )  # name -> (header, isakmp-profile, ikev2-profile)
    isakmp_profiles: dict[str, _IkeProfile] = field(default_factory=dict)
    ikev2_profiles: dict[str, _IkeProfile] = field(default_factory=dict)
    isakmp_global_matches: list[_AddressMatch] = field(default_factory=list)
    ezvpn: dict[str, tuple[ConfigNode, list[tuple[str, ConfigNode]]]] = field(default_factory=dict)
    flexvpn_clients: list[tuple[ConfigNode, list[tuple[str, ConfigNode]], list[str]]] = field(
        default_factory=list
    )  # header, peers, tunnels it connects
    invalid_spi_recovery: ConfigNode | None = None
    isakmp_keepalive: ConfigNode | None = None
    ikev2_dpd: ConfigNode | None = None
    nat_keepalive: ConfigNode | None = None
    uses_isakmp: bool = False
    uses_ikev2: bool = False
    notes: list[str] = field(default_factory=list)


def _network(words: list[str]) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """`A.B.C.D [MASK]`, `ipv6 X::/N` or `X::/N` at the start of `words`; a bare 0.0.0.0 is the
    usual wildcard."""
    if not words:
        return None
    if words[0] == "ipv6" and len(words) > 1:
        words = words[1:]
    try:
        if "/" in words[0]:
            return ipaddress.ip_network(words[0], strict=False)
        address = ipaddress.ip_address(words[0])
        if len(words) > 1:
            try:
                return ipaddress.ip_network(f"{words[0]}/{words[1]}", strict=False)
            except ValueError:
                pass
        if isinstance(address, ipaddress.IPv4Address) and int(address) == 0:
            return ipaddress.ip_network("0.0.0.0/0")
        return ipaddress.ip_network(address)
    except ValueError:
        return None


def _after(words: list[str], keyword: str) -> list[str]:
    """The words following the first `keyword` (empty if absent)."""
    try:
        return words[words.index(keyword) + 1 :]
    except ValueError:
        return []


def _read_facts(nodes: tuple[ConfigNode, ...]) -> _Facts:
    facts = _Facts()
    for node in nodes:
        w = node.words
        if w[0] == "hostname" and len(w) > 1:
            facts.hostname = w[1]
        elif w[0] == "interface" and len(w) > 1:
            facts.interfaces.append(_read_interface(node, w[1]))
        elif w[:2] == ["crypto", "map"]:
            _read_crypto_map(node, w, facts)
        elif w[:2] == ["crypto", "dynamic-map"] and len(w) >= 4 and w[3].isdigit():
            entry = _MapEntry(w[2], int(w[3]), node, None)
            _read_map_children(entry)
            facts.dynamic_maps.setdefault(w[2], []).append(entry)
        elif w[:3] == ["crypto", "ipsec", "profile"] and len(w) > 3:
            isakmp = ikev2 = None
            for child in node.children:
                cw = child.words
                if cw[:2] == ["set", "isakmp-profile"] and len(cw) > 2:
                    isakmp = (cw[2], child)
                elif cw[:2] == ["set", "ikev2-profile"] and len(cw) > 2:
                    ikev2 = (cw[2], child)
            facts.ipsec_profiles[w[3]] = (node, isakmp, ikev2)
        elif w[:4] == ["crypto", "ipsec", "client", "ezvpn"] and len(w) > 4:
            peers = [(c.words[1], c) for c in node.children if c.words[0] == "peer" and len(c.words) > 1]
            facts.ezvpn[w[4]] = (node, peers)
        elif w[:2] == ["crypto", "isakmp"]:
            _read_isakmp(node, w, facts)
        elif w[:2] == ["crypto", "keyring"] and len(w) > 2:
            facts.uses_isakmp = True
            for child in node.children:
                cw = child.words
                if cw[:2] == ["pre-shared-key", "address"]:
                    net = _network(cw[2:])
                    if net is not None:
                        facts.isakmp_global_matches.append(_AddressMatch(net, child, None))
        elif w[:2] == ["crypto", "ikev2"]:
            _read_ikev2(node, w, facts)
    return facts


def _read_interface(node: ConfigNode, name: str) -> _Interface:
    ifc = _Interface(node, name)
    for child in node.children:
        w = child.words
        if w[:2] in (["crypto", "map"], ["ipv6", "crypto"]):
            rest = w[2:] if w[0] == "crypto" else w[3:]
            if rest:
                ifc.crypto_maps.append((rest[0], child))
        elif w[:2] == ["tunnel", "mode"]:
            ifc.mode = (w[2:], child)
        elif w[:2] == ["tunnel", "destination"] and len(w) > 2:
            ifc.destination = (w[2], child)
        elif w[:4] == ["tunnel", "protection", "ipsec", "profile"] and len(w) > 4:
            ifc.protection = child
        elif w[0] in ("ip", "ipv6") and len(w) > 2 and w[1] == "nhrp":
            _read_nhrp(ifc, w[2:], child)
        elif w[:4] == ["crypto", "ipsec", "client", "ezvpn"] and len(w) > 4:
            role = w[5] if len(w) > 5 else "outside"
            ifc.ezvpn.append((w[4], role, child))
        elif w[0] == "keepalive":
            ifc.gre_keepalive = child
    return ifc


def _read_nhrp(ifc: _Interface, w: list[str], node: ConfigNode) -> None:
    if w[:1] == ["map"] and len(w) >= 2:
        if w[1] == "multicast":
            if w[2:3] == ["dynamic"]:
                ifc.nhrp_dynamic = node
            elif len(w) > 2:
                ifc.nhrp_static.append((w[2], node))
        elif len(w) >= 3:
            ifc.nhrp_static.append((w[2], node))
    elif w[:1] == ["shortcut"]:
        ifc.nhrp_shortcut = node
    elif w[:1] == ["nhs"]:
        nbma = _after(w, "nbma")
        if nbma:
            ifc.nhrp_static.append((nbma[0], node))


def _read_map_children(entry: _MapEntry) -> None:
    for child in entry.node.children:
        cw = child.words
        if cw[:2] == ["set", "peer"] and len(cw) > 2:
            entry.peers.append((cw[2], child))
        elif cw[:2] == ["set", "isakmp-profile"] and len(cw) > 2:
            entry.isakmp_profile = (cw[2], child)
        elif cw[:2] == ["set", "ikev2-profile"] and len(cw) > 2:
            entry.ikev2_profile = (cw[2], child)


def _read_crypto_map(node: ConfigNode, w: list[str], facts: _Facts) -> None:
    rest = w[3:] if w[2:3] == ["ipv6"] else w[2:]
    if len(rest) < 2:
        return
    name, second = rest[0], rest[1]
    if second == "isakmp-profile" and len(rest) > 2:
        facts.map_isakmp_profile[name] = (rest[2], node)
        return
    if not second.isdigit():
        return  # local-address, redundancy, client ...: map-wide options
    mode = rest[2] if len(rest) > 2 else "ipsec-isakmp"
    if mode != "ipsec-isakmp":
        facts.notes.append(f"line {node.line}: crypto map {name} {second} {mode} is not classified "
                           "(only ipsec-isakmp maps are in Cisco 115801's table)")
        return
    dynamic = _after(rest, "dynamic")
    entry = _MapEntry(name, int(second), node, dynamic[0] if dynamic else None)
    _read_map_children(entry)
    facts.map_entries.append(entry)


def _read_profile_body(profile: _IkeProfile, ikev2: bool) -> None:
    for child in profile.node.children:
        cw = child.words
        if ikev2 and cw[:4] == ["match", "identity", "remote", "address"]:
            net = _network(cw[4:])
        elif not ikev2 and cw[:3] == ["match", "identity", "address"]:
            net = _network(cw[3:])
        else:
            net = None
            if cw[0] == "virtual-template" and len(cw) > 1 and cw[1].isdigit():
                profile.virtual_template, profile.vt_node = int(cw[1]), child
            elif (ikev2 and cw[0] == "dpd") or (not ikev2 and cw[0] == "keepalive"):
                profile.dpd = child
            elif not ikev2 and cw[:2] == ["no", "keepalive"]:
                profile.no_keepalive = child
        if net is not None:
            profile.matches.append(_AddressMatch(net, child, profile.name))


def _read_isakmp(node: ConfigNode, w: list[str], facts: _Facts) -> None:
    sub = w[2] if len(w) > 2 else ""
    if sub == "invalid-spi-recovery":
        facts.invalid_spi_recovery = node
    elif sub == "keepalive":
        facts.isakmp_keepalive = node
    elif sub == "nat" and w[3:4] == ["keepalive"]:
        facts.nat_keepalive = node
    elif sub == "policy":
        facts.uses_isakmp = True
    elif sub == "key":
        facts.uses_isakmp = True
        net = _network(_after(w, "address"))
        if net is not None:
            facts.isakmp_global_matches.append(_AddressMatch(net, node, None))
    elif sub == "profile" and len(w) > 3:
        facts.uses_isakmp = True
        profile = _IkeProfile(w[3], node)
        _read_profile_body(profile, ikev2=False)
        facts.isakmp_profiles[w[3]] = profile


def _read_ikev2(node: ConfigNode, w: list[str], facts: _Facts) -> None:
    sub = w[2] if len(w) > 2 else ""
    if sub == "dpd":
        facts.ikev2_dpd = node
    elif sub in ("proposal", "policy", "keyring"):
        facts.uses_ikev2 = True
    elif sub == "profile" and len(w) > 3:
        facts.uses_ikev2 = True
        profile = _IkeProfile(w[3], node)
        _read_profile_body(profile, ikev2=True)
        facts.ikev2_profiles[w[3]] = profile
    elif sub == "client" and w[3:4] == ["flexvpn"]:
        facts.uses_ikev2 = True
        peers: list[tuple[str, ConfigNode]] = []
        connects: list[str] = []
        for child in node.children:
            cw = child.words
            # ` peer 1 10.0.0.1` (a `fqdn NAME` form also exists; keep the address form only)
            if cw[0] == "peer" and len(cw) > 2 and _network(cw[2:3]) is not None:
                peers.append((cw[2], child))
            elif cw[:2] == ["client", "connect"] and len(cw) > 2:
                connects.append(cw[2])
        facts.flexvpn_clients.append((node, peers, connects))


# --------------------------------------------------------------------------------------------
# IKE version and DPD per tunnel


@dataclass
class _IkeChoice:
    version: IkeVersion
    reason: str
    profile: _IkeProfile | None
    evidence: list[ConfigNode]


def _addresses(peers: Iterable[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out = []
    for p in peers:
        try:
            out.append(ipaddress.ip_address(p))
        except ValueError:
            continue
    return out


def _covering(matches: Iterable[_AddressMatch], peers: list[str]) -> list[_AddressMatch]:
    """Matches that cover one of the peers; for a tunnel with no known peer, the wildcards."""
    matches = list(matches)
    addresses = _addresses(peers)
    if not peers:
        return [m for m in matches if m.wildcard]
    return [m for m in matches if any(a.version == m.network.version and a in m.network for a in addresses)]


def _choose_ike(
    facts: _Facts,
    peers: list[str],
    isakmp_profile: tuple[str, ConfigNode] | None = None,
    ikev2_profile: tuple[str, ConfigNode] | None = None,
    virtual_template: int | None = None,
) -> _IkeChoice:
    if ikev2_profile is not None:
        name, node = ikev2_profile
        return _IkeChoice("IKEv2", f"IKEv2 profile {name} is set (line {node.line})",
                          facts.ikev2_profiles.get(name), [node])
    if isakmp_profile is not None:
        name, node = isakmp_profile
        return _IkeChoice("IKEv1", f"ISAKMP profile {name} is set (line {node.line})",
                          facts.isakmp_profiles.get(name), [node])
    if virtual_template is not None:
        v1 = [p for p in facts.isakmp_profiles.values() if p.virtual_template == virtual_template]
        v2 = [p for p in facts.ikev2_profiles.values() if p.virtual_template == virtual_template]
        if v1 and not v2:
            p = v1[0]
            return _IkeChoice("IKEv1", f"ISAKMP profile {p.name} uses virtual-template {virtual_template}",
                              p, [p.node, p.vt_node] if p.vt_node else [p.node])
        if v2 and not v1:
            p = v2[0]
            return _IkeChoice("IKEv2", f"IKEv2 profile {p.name} uses virtual-template {virtual_template}",
                              p, [p.node, p.vt_node] if p.vt_node else [p.node])
        if v1 and v2:
            return _IkeChoice("unknown", f"both an ISAKMP and an IKEv2 profile use virtual-template "
                              f"{virtual_template}", None, [])
    v2_matches = _covering((m for p in facts.ikev2_profiles.values() for m in p.matches), peers)
    v1_matches = _covering(
        [*facts.isakmp_global_matches, *(m for p in facts.isakmp_profiles.values() for m in p.matches)], peers
    )
    what = "the peer" if peers else "any peer (wildcard)"
    if v2_matches and not v1_matches:
        m = v2_matches[0]
        return _IkeChoice("IKEv2", f"IKEv2 profile {m.profile} matches {what} (line {m.node.line}); "
                          "no profile is attached explicitly", facts.ikev2_profiles.get(m.profile or ""), [m.node])
    if v1_matches and not v2_matches:
        m = v1_matches[0]
        profile = facts.isakmp_profiles.get(m.profile) if m.profile else None
        return _IkeChoice("IKEv1", f"ISAKMP configuration matches {what} (line {m.node.line})", profile, [m.node])
    if v1_matches and v2_matches:
        return _IkeChoice(
            "unknown",
            f"both ISAKMP (line {v1_matches[0].node.line}) and an IKEv2 profile (line "
            f"{v2_matches[0].node.line}) match {what}; no profile is attached explicitly",
            None, [],
        )
    if facts.uses_isakmp:
        return _IkeChoice("IKEv1", "no IKEv2 profile is set or matches; ISAKMP is configured", None, [])
    if facts.uses_ikev2:
        return _IkeChoice("IKEv2", "only IKEv2 is configured", None, [])
    return _IkeChoice("unknown", "no ISAKMP or IKEv2 configuration found", None, [])


def _dpd_for(facts: _Facts, choice: _IkeChoice) -> tuple[bool, list[ConfigNode]]:
    profile = choice.profile
    if choice.version == "IKEv1":
        if profile is not None and profile.no_keepalive is not None:
            return False, [profile.no_keepalive]
        if profile is not None and profile.dpd is not None:
            return True, [profile.dpd]
        return (True, [facts.isakmp_keepalive]) if facts.isakmp_keepalive else (False, [])
    if choice.version == "IKEv2":
        if profile is not None and profile.dpd is not None:
            return True, [profile.dpd]
        return (True, [facts.ikev2_dpd]) if facts.ikev2_dpd else (False, [])
    found = [n for n in (facts.isakmp_keepalive, facts.ikev2_dpd) if n is not None]
    return bool(found), found


# --------------------------------------------------------------------------------------------
# Classification


def _tunnel(
    facts: _Facts,
    kind: TunnelKind,
    name: str,
    peers: list[str],
    evidence_nodes: Iterable[ConfigNode | None],
    interfaces: list[str],
    choice: _IkeChoice,
    gre_keepalive: ConfigNode | None = None,
) -> TunnelConfig:
    dpd, dpd_nodes = _dpd_for(facts, choice)
    nodes = {n.line: n for n in [*evidence_nodes, *choice.evidence] if n is not None}
    return TunnelConfig(
        kind=kind,
        name=name,
        peers=tuple(dict.fromkeys(peers)),
        ike_version=choice.version,
        recovery=recovery_for(kind, choice.version),
        recovery_reason=recovery_reason(kind, choice.version),
        dpd=dpd,
        evidence=tuple(nodes[k].evidence() for k in sorted(nodes)),
        interfaces=tuple(dict.fromkeys(interfaces)),
        ike_reason=choice.reason,
        ike_profile=choice.profile.name if choice.profile else None,
        dpd_evidence=tuple(n.evidence() for n in dpd_nodes),
        gre_keepalive=gre_keepalive.evidence() if gre_keepalive else None,
    )


def _protected_tunnel(facts: _Facts, ifc: _Interface) -> TunnelConfig | None:
    assert ifc.protection is not None
    pw = ifc.protection.words
    profile_name = pw[4]
    isakmp = (pw[pw.index("isakmp-profile") + 1], ifc.protection) if "isakmp-profile" in pw[5:-1] else None
    ikev2 = (pw[pw.index("ikev2-profile") + 1], ifc.protection) if "ikev2-profile" in pw[5:-1] else None
    evidence: list[ConfigNode | None] = [ifc.node, ifc.protection]
    ipsec = facts.ipsec_profiles.get(profile_name)
    if ipsec is not None:
        evidence.append(ipsec[0])
        isakmp = isakmp or ipsec[1]
        ikev2 = ikev2 or ipsec[2]
    elif profile_name == "default":
        # IKEv2 smart defaults: a built-in IPsec profile `default` exists and uses the IKEv2
        # profile named `default` when there is one.
        if "default" in facts.ikev2_profiles:
            ikev2 = ("default", facts.ikev2_profiles["default"].node)
    else:
        facts.notes.append(f"line {ifc.protection.line}: {ifc.name} uses IPsec profile {profile_name}, "
                           "which is not in the config")
    mode_words, mode_node = ifc.mode if ifc.mode else ([], None)
    evidence.append(mode_node)
    destination = ifc.destination[0] if ifc.destination else None
    peers = [destination] if destination and destination != "dynamic" else []
    if ifc.destination:
        evidence.append(ifc.destination[1])
    flexvpn: ConfigNode | None = None
    for header, flex_peers, connects in facts.flexvpn_clients:
        if ifc.name in connects:
            flexvpn = header
            peers += [p for p, _ in flex_peers]
            evidence += [header, *(n for _, n in flex_peers)]

    if ifc.name.lower().startswith("virtual-template"):
        vt = re.search(r"(\d+)$", ifc.name)
        choice = _choose_ike(facts, [], isakmp, ikev2, int(vt.group(1)) if vt else None)
        return _tunnel(facts, TunnelKind.DYNAMIC_VTI, ifc.name, [], evidence, [ifc.name], choice)

    if mode_words[:1] == ["ipsec"]:
        kind = TunnelKind.SVTI
    elif mode_words in ([], ["gre", "ip"], ["gre", "ipv6"]):
        kind = TunnelKind.GRE_P2P_TUNNEL_PROTECTION
    elif mode_words[:2] == ["gre", "multipoint"]:
        if ifc.nhrp_static:
            kind = TunnelKind.MGRE_STATIC_NHRP
            peers = [nbma for nbma, _ in ifc.nhrp_static if nbma != "dynamic"]
            evidence += [n for _, n in ifc.nhrp_static]
        else:
            kind = TunnelKind.MGRE_DYNAMIC_NHRP
            peers = []
            evidence.append(ifc.nhrp_dynamic)
    else:
        facts.notes.append(f"line {ifc.node.line}: {ifc.name} has tunnel protection with tunnel mode "
                           f"'{' '.join(mode_words)}', which is not classified")
        return None
    if kind is TunnelKind.SVTI and ifc.destination is None and not peers:
        facts.notes.append(f"line {ifc.node.line}: {ifc.name} is an IPsec VTI without a tunnel destination")
    if flexvpn is not None and ikev2 is None and isakmp is None:
        choice = _IkeChoice("IKEv2", f"FlexVPN client {flexvpn.words[-1]} (line {flexvpn.line}) connects "
                            f"{ifc.name}; FlexVPN is IKEv2 only", facts.ikev2_profiles.get("default"), [flexvpn])
    else:
        choice = _choose_ike(facts, peers, isakmp, ikev2)
    keepalive = ifc.gre_keepalive if kind is not TunnelKind.SVTI else None
    tunnel = _tunnel(facts, kind, ifc.name, peers, evidence, [ifc.name], choice, keepalive)
    learns = ifc.nhrp_dynamic or ifc.nhrp_shortcut
    if kind in (TunnelKind.MGRE_STATIC_NHRP, TunnelKind.MGRE_DYNAMIC_NHRP) and learns is not None:
        tunnel = replace(tunnel, dynamic_nhrp=learns.evidence())
    return tunnel


def _map_tunnels(facts: _Facts) -> list[tuple[int, TunnelConfig]]:
    applied: dict[str, list[tuple[str, ConfigNode, ConfigNode]]] = {}
    for ifc in facts.interfaces:
        for map_name, node in ifc.crypto_maps:
            applied.setdefault(map_name, []).append((ifc.name, ifc.node, node))
    tunnels = []
    unapplied: set[str] = set()
    for entry in facts.map_entries:
        where = applied.get(entry.name)
        if not where:
            unapplied.add(entry.name)
            continue
        evidence: list[ConfigNode | None] = [entry.node]
        for _, ifc_node, map_node in where:
            evidence += [ifc_node, map_node]
        interfaces = [name for name, _, _ in where]
        map_profile = facts.map_isakmp_profile.get(entry.name)
        label = f"map {entry.name} {entry.seq}"
        if entry.dynamic_ref is None:
            peers = [p for p, _ in entry.peers]
            evidence += [n for _, n in entry.peers]
            choice = _choose_ike(facts, peers, entry.isakmp_profile or map_profile, entry.ikev2_profile)
            if not peers:
                facts.notes.append(f"line {entry.node.line}: {label} has no set peer")
            tunnels.append((entry.node.line, _tunnel(facts, TunnelKind.STATIC_CRYPTO_MAP, label, peers,
                                                     evidence, interfaces, choice)))
            continue
        dyn = facts.dynamic_maps.get(entry.dynamic_ref, [])
        if not dyn:
            facts.notes.append(f"line {entry.node.line}: {label} references dynamic map "
                               f"{entry.dynamic_ref}, which is not in the config")
        isakmp = next((d.isakmp_profile for d in dyn if d.isakmp_profile), None) or map_profile
        ikev2 = next((d.ikev2_profile for d in dyn if d.ikev2_profile), None)
        evidence += [d.node for d in dyn]
        choice = _choose_ike(facts, [], isakmp, ikev2)
        tunnels.append((entry.node.line, _tunnel(facts, TunnelKind.DYNAMIC_CRYPTO_MAP, label, [],
                                                 evidence, interfaces, choice)))
    for name in sorted(unapplied):
        facts.notes.append(f"crypto map {name} is not applied to any interface; not classified")
    return tunnels


def _ezvpn_tunnels(facts: _Facts) -> list[tuple[int, TunnelConfig]]:
    tunnels = []
    for name, (header, peers) in facts.ezvpn.items():
        outside = [(ifc, node) for ifc in facts.interfaces for n, role, node in ifc.ezvpn
                   if n == name and role == "outside"]
        if not outside:
            facts.notes.append(f"line {header.line}: EzVPN client {name} is not applied to an outside interface")
            continue
        evidence: list[ConfigNode | None] = [header, *(n for _, n in peers)]
        for ifc, node in outside:
            evidence += [ifc.node, node]
        choice = _IkeChoice("IKEv1", "Easy VPN client uses ISAKMP (IKEv1) with mode config", None, [])
        tunnels.append((header.line, _tunnel(facts, TunnelKind.EZVPN_CLIENT, name, [p for p, _ in peers],
                                             evidence, [ifc.name for ifc, _ in outside], choice)))
    return tunnels


def classify_config(running_config: str) -> CryptoProfile:
    """Classify every IPsec tunnel in a running-config. Never raises on odd text."""
    facts = _read_facts(config_blocks(running_config))
    anchored: list[tuple[int, TunnelConfig]] = []  # (line that defines it, tunnel): config order
    for ifc in facts.interfaces:
        if ifc.protection is not None:
            tunnel = _protected_tunnel(facts, ifc)
            if tunnel is not None:
                anchored.append((ifc.node.line, tunnel))
    anchored += _map_tunnels(facts)
    anchored += _ezvpn_tunnels(facts)
    tunnels = [t for _, t in sorted(anchored, key=lambda pair: pair[0])]

    profile_keepalives = [p.dpd for p in facts.isakmp_profiles.values() if p.dpd is not None]
    ikev2_dpd = [facts.ikev2_dpd] if facts.ikev2_dpd else []
    ikev2_dpd += [p.dpd for p in facts.ikev2_profiles.values() if p.dpd is not None]
    return CryptoProfile(
        tunnels=tuple(tunnels),
        invalid_spi_recovery=facts.invalid_spi_recovery.evidence() if facts.invalid_spi_recovery else None,
        isakmp_keepalive=facts.isakmp_keepalive.evidence() if facts.isakmp_keepalive else None,
        ikev2_dpd=tuple(n.evidence() for n in sorted(ikev2_dpd, key=lambda n: n.line)),
        isakmp_profile_keepalives=tuple(n.evidence() for n in sorted(profile_keepalives, key=lambda n: n.line)),
        nat_keepalive=facts.nat_keepalive.evidence() if facts.nat_keepalive else None,
        hostname=facts.hostname,
        uses_isakmp=facts.uses_isakmp,
        uses_ikev2=facts.uses_ikev2,
        notes=tuple(dict.fromkeys(facts.notes)),
    )


# --------------------------------------------------------------------------------------------
# Run-time refinement from `show crypto session`


@dataclass(frozen=True, slots=True)
class CryptoSession:
    """One `Interface:` block of `show crypto session [detail]`."""

    interface: str
    peer: str | None
    ike_version: IkeVersion  # from the `IKEv1 SA:` / `IKE SA:` / `IKEv2 SA:` line
    status: str | None


_SESSION_IFACE = re.compile(r"^\s*Interface:\s*(\S+)")
_SESSION_PEER = re.compile(r"^\s*Peer:\s*(\S+)")
_SESSION_IKE = re.compile(r"^\s*(IKEv2|IKEv1|IKE) SA:")
_SESSION_STATUS = re.compile(r"^\s*Session status:\s*(\S+)")


def parse_crypto_sessions(text: str) -> tuple[CryptoSession, ...]:
    """Sessions from `show crypto session [detail]`. Each `Interface:` line starts a session;
    a new `Peer:` under the same interface (several peers on one crypto-map interface) starts
    another one on that interface."""
    sessions: list[dict[str, Any]] = []
    interface: str | None = None
    for line in text.splitlines():
        if m := _SESSION_IFACE.match(line):
            interface = m.group(1)
            sessions.append({"interface": interface, "peer": None, "ike": "unknown", "status": None})
        elif interface is None:
            continue
        elif m := _SESSION_PEER.match(line):
            if sessions[-1]["peer"] is not None:
                sessions.append({"interface": interface, "peer": None, "ike": "unknown",
                                 "status": sessions[-1]["status"]})
            sessions[-1]["peer"] = m.group(1)
        elif m := _SESSION_IKE.match(line):
            sessions[-1]["ike"] = "IKEv2" if m.group(1) == "IKEv2" else "IKEv1"
        elif m := _SESSION_STATUS.match(line):
            sessions[-1]["status"] = m.group(1)
    return tuple(CryptoSession(s["interface"], s["peer"], s["ike"], s["status"]) for s in sessions)


def refine_with_session(profile: CryptoProfile, show_crypto_session_text: str) -> CryptoProfile:
    """Use `show crypto session` to fill in what the config alone leaves open.

    * an undetermined IKE version is taken from the session's `IKEv1 SA` / `IKEv2 SA` line
      (and the recovery answer is recomputed);
    * peers seen at run time are recorded in `observed_peers` (dynamic maps, DVTI, hubs);
    * a session on `Virtual-AccessN` with no dynamic VTI or EzVPN in the config is noted:
      the router has a dynamic (cloned) tunnel the config shapes above do not explain.
    """
    sessions = parse_crypto_sessions(show_crypto_session_text)
    tunnels = []
    for tunnel in profile.tunnels:
        mine = [s for s in sessions if _session_belongs(tunnel, s)]
        observed = tuple(dict.fromkeys([*tunnel.observed_peers, *(s.peer for s in mine if s.peer)]))
        versions = {s.ike_version for s in mine} - {"unknown"}
        updated = replace(tunnel, observed_peers=observed)
        if tunnel.ike_version == "unknown" and len(versions) == 1:
            version = versions.pop()
            updated = replace(
                updated,
                ike_version=version,
                ike_reason=f"{tunnel.ike_reason}; show crypto session shows {version} SAs",
                recovery=recovery_for(tunnel.kind, version),
                recovery_reason=recovery_reason(tunnel.kind, version),
            )
        tunnels.append(updated)
    notes = list(profile.notes)
    dynamic_kinds = {TunnelKind.DYNAMIC_VTI, TunnelKind.EZVPN_CLIENT}
    if not any(t.kind in dynamic_kinds for t in profile.tunnels):
        for s in sessions:
            if s.interface.startswith("Virtual-Access"):
                notes.append(f"show crypto session: peer {s.peer} is on {s.interface}, a cloned (dynamic) "
                             "interface, but no dynamic VTI or EzVPN client is in the config")
    return replace(profile, tunnels=tuple(tunnels), notes=tuple(dict.fromkeys(notes)))


def _session_belongs(tunnel: TunnelConfig, session: CryptoSession) -> bool:
    if tunnel.kind is TunnelKind.DYNAMIC_VTI:
        return session.interface.startswith("Virtual-Access")
    if session.interface not in tunnel.interfaces:
        return False
    if tunnel.kind is TunnelKind.STATIC_CRYPTO_MAP:
        # several map entries share the interface; the peer tells them apart
        return session.peer in tunnel.peers
    return True


# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Dataclass / enum / tuple tree -> JSON-ready dicts, lists and scalars."""
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
