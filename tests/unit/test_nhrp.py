"""DMVPN per flow: NHRP cache layouts (real captures) and the static/dynamic decision."""

from __future__ import annotations

from pathlib import Path

from collector.cryptoconfig import Recovery, TunnelKind, classify_config
from collector.nhrp import flow_mapping, parse_nhrp, parse_show_dmvpn, parse_show_ip_nhrp

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


def _read(rel: str) -> str:
    return (REAL / rel).read_text(encoding="utf-8")


# -- layouts -----------------------------------------------------------------------------------


def test_show_ip_nhrp_genie_xe_entries() -> None:
    entries = parse_show_ip_nhrp(_read("show_ip_nhrp/xe_genie.txt"))
    assert [(e.target, e.interface, e.type, e.nbma) for e in entries] == [
        ("100.0.0.2/32", "Tunnel100", "dynamic", "103.1.1.1"),
        ("100.0.0.100/32", "Tunnel100", "static", "101.1.1.1"),
        ("123.1.1.0/24", "Tunnel100", "dynamic", "103.1.1.1"),
        ("100.0.0.1/32", "Tunnel100", "dynamic", "102.1.1.1"),
        ("111.0.0.100/32", "Tunnel111", "static", "111.1.1.1"),
    ]
    assert entries[0].flags == ("router", "nhop", "rib")
    assert entries[1].flags == ()  # `Type: static, Flags:` with nothing after it
    assert entries[1].lines == ((6, "100.0.0.100/32 via 100.0.0.100"), (7, "Tunnel100 created 10w2d, never expire"),
                                (8, "Type: static, Flags:"), (9, "NBMA address: 101.1.1.1"))


def test_show_ip_nhrp_phase3_spoke_and_hub_registrations() -> None:
    spoke = parse_nhrp(_read("show_ip_nhrp/ios_phase3_spoke_excerpt.txt"))
    assert [(e.target, e.type, e.nbma, " ".join(e.flags)) for e in spoke] == [
        ("172.16.1.1/32", "dynamic", "202.100.2.1", "router unique local"),
        ("172.16.1.2/32", "dynamic", "202.100.3.1", "router nhop rib"),
        ("172.16.1.100/32", "static", "202.100.1.100", "used"),
        ("192.168.2.0/24", "dynamic", "202.100.2.1", "router unique local"),
        ("192.168.3.0/24", "dynamic", "202.100.3.1", "router used rib"),
    ]
    hub = parse_nhrp(_read("show_ip_nhrp/ios_hub_registered_excerpt.txt"))
    assert [(e.target, e.interface, e.type, e.nbma, e.flags) for e in hub] == [
        ("10.15.0.2/32", "Tunnel15", "dynamic", "100.4.0.27", ("unique", "registered", "used", "nhop")),
        ("10.15.0.28/32", "Tunnel15", "dynamic", "100.5.0.28", ("unique", "registered", "used", "nhop")),
    ]


def test_claimed_nbma_behind_nat_and_one_line_header() -> None:
    text = ("10.0.0.11/32 via 10.0.0.11, Tunnel0 created 00:00:08, expire 01:59:51\n"
            "   Type: dynamic, Flags: unique registered used nhop\n"
            "   NBMA address: 198.51.100.20\n"
            "    (Claimed NBMA address: 10.251.0.3)\n")
    (entry,) = parse_show_ip_nhrp(text)
    assert (entry.interface, entry.nbma, entry.claimed_nbma) == ("Tunnel0", "198.51.100.20", "10.251.0.3")
    assert entry.reaches("198.51.100.20") and entry.reaches("10.251.0.3") and not entry.reaches("10.0.0.11")


def test_show_dmvpn_rows_continuations_and_wrapped_ipv6_nbma() -> None:
    rows = parse_nhrp(_read("show_dmvpn/xe_genie1.txt"))
    assert [(e.interface, e.nbma, e.target, e.type, e.flags) for e in rows] == [
        ("Tunnel84", "172.30.84.1", "172.29.0.1", "static", ("SC",)),
        ("Tunnel90", "172.29.0.1", "172.30.90.1", "static", ("S",)),
        ("Tunnel90", "172.29.0.2", "172.30.90.2", "static", ("S",)),
        ("Tunnel90", "172.29.0.2", "172.30.90.25", "static", ("S",)),
        ("Tunnel90", "172.29.134.1", "172.30.72.72", "dynamic", ("DT2",)),
        ("Tunnel90", "172.29.134.1", "172.30.72.72", "dynamic", ("DT1",)),
    ]
    hub = parse_show_dmvpn(_read("show_dmvpn/xe_genie3_hub_ipv6_nbma.txt"))
    assert [(e.nbma, e.target, e.type) for e in hub] == [
        ("2001:DB8:1201::122", "192.2.1.122", "dynamic"), ("2001:DB8:1202::123", "192.3.1.123", "dynamic")]
    assert hub[0].lines[0][1] == "1 2001:DB8:1201::122"
    ntc = parse_nhrp(_read("show_dmvpn/ios_spoke_ntc.txt"))
    assert [(e.nbma, e.target, e.type) for e in ntc] == [
        ("10.200.0.3", "10.253.0.1", "static"), ("10.202.0.170", "10.253.0.2", "static")]


def test_show_dmvpn_incomplete_row_is_neither_static_nor_dynamic() -> None:
    """genie's golden output 2: `UNKNOWN` NBMA, Attrb `IX` (incomplete, no socket), the heading
    without `#`. An incomplete entry names no NBMA address and decides no flow's mapping."""
    (row,) = parse_nhrp(_read("show_dmvpn/xe_genie2_incomplete.txt"))
    assert (row.interface, row.nbma, row.target, row.type, row.flags) == (
        "Tunnel2238", None, "172.28.172.30", "incomplete", ("IX",))
    assert not row.reaches("172.28.172.30")


def test_attribute_letters_decide_per_peer_on_one_interface() -> None:
    # Tunnel90 of genie's golden output 1 holds both kinds: S rows (its hubs) and DT1/DT2 rows
    # of a shortcut to 172.29.134.1. Each peer gets its own answer from its own rows.
    rows = parse_show_dmvpn(_read("show_dmvpn/xe_genie1.txt"))
    by_peer = {}
    for e in rows:
        if e.interface == "Tunnel90":
            by_peer.setdefault(e.nbma, set()).add(e.type)
    assert by_peer == {"172.29.0.1": {"static"}, "172.29.0.2": {"static"}, "172.29.134.1": {"dynamic"}}


def test_odd_text_gives_no_entries() -> None:
    for text in ("", "% Invalid input detected at '^' marker.", "Type: static, Flags:\nNBMA address: 1.2.3.4"):
        assert parse_nhrp(text) == ()


# -- the decision ------------------------------------------------------------------------------

# R2 of the phase-3 capture, written to match it: hub 172.16.1.100 at NBMA 202.100.1.100.
PHASE3_SPOKE = """hostname R2
crypto isakmp policy 10
 encr aes 256
 authentication pre-share
 group 14
crypto isakmp key DmvpnKey address 0.0.0.0 0.0.0.0
crypto ipsec transform-set TS esp-aes 256 esp-sha256-hmac
 mode transport
crypto ipsec profile DMVPN-PROF
 set transform-set TS
interface Tunnel0
 ip address 172.16.1.1 255.255.255.0
 ip nhrp map 172.16.1.100 202.100.1.100
 ip nhrp map multicast 202.100.1.100
 ip nhrp network-id 1
 ip nhrp nhs 172.16.1.100
 ip nhrp shortcut
 tunnel source GigabitEthernet0/0
 tunnel mode gre multipoint
 tunnel protection ipsec profile DMVPN-PROF
interface GigabitEthernet0/0
 ip address 202.100.2.1 255.255.255.0
"""

# A dual-hub hub: spokes register (map multicast dynamic), the other hub is mapped statically.
DUAL_HUB = """hostname R15
crypto isakmp policy 10
 authentication pre-share
crypto isakmp key DmvpnKey address 0.0.0.0 0.0.0.0
crypto ipsec profile DMVPN-PROF
 set transform-set TS
interface Tunnel15
 ip address 10.15.0.1 255.255.255.0
 ip nhrp map multicast dynamic
 ip nhrp map 10.15.0.254 100.9.0.16
 ip nhrp map multicast 100.9.0.16
 ip nhrp network-id 15
 ip nhrp redirect
 tunnel source Ethernet0/1
 tunnel mode gre multipoint
 tunnel protection ipsec profile DMVPN-PROF
"""


def test_phase3_spoke_hub_flow_is_static_and_shortcut_flow_is_dynamic() -> None:
    profile = classify_config(PHASE3_SPOKE)
    entries = parse_nhrp(_read("show_ip_nhrp/ios_phase3_spoke_excerpt.txt"))
    hub = flow_mapping(profile, "202.100.1.100", entries)
    assert hub is not None and hub.mapping == "static"
    assert (hub.tunnel.kind, hub.tunnel.recovery) == (TunnelKind.MGRE_STATIC_NHRP, Recovery.YES)
    assert (13, "Type: static, Flags: used") in hub.nhrp_lines
    assert "172.16.1.100/32" in hub.how and "static" in hub.how
    spoke = flow_mapping(profile, "202.100.3.1", entries)
    assert spoke is not None and spoke.mapping == "dynamic"
    assert (spoke.tunnel.kind, spoke.tunnel.recovery) == (TunnelKind.MGRE_DYNAMIC_NHRP, Recovery.NO)
    assert (9, "Type: dynamic, Flags: router nhop rib") in spoke.nhrp_lines
    assert "Type: static" not in " ".join(t for _, t in spoke.nhrp_lines)


def test_without_the_cache_the_config_decides() -> None:
    profile = classify_config(PHASE3_SPOKE)
    hub = flow_mapping(profile, "202.100.1.100", None)
    assert hub is not None and hub.mapping == "static" and hub.nhrp_lines == ()
    assert [e.text for e in hub.config_evidence] == ["ip nhrp map 172.16.1.100 202.100.1.100",
                                                     "ip nhrp map multicast 202.100.1.100"]
    other = flow_mapping(profile, "202.100.3.1", None)
    assert other is not None and other.mapping == "dynamic" and other.tunnel.recovery is Recovery.NO
    assert "no static NHRP mapping" in other.how


def test_dual_hub_hub_decides_per_peer_not_per_interface() -> None:
    profile = classify_config(DUAL_HUB)
    # the interface alone reads as static (it has a static map): the bug this module fixes
    assert [t.kind for t in profile.tunnels] == [TunnelKind.MGRE_STATIC_NHRP]
    entries = parse_nhrp(_read("show_ip_nhrp/ios_hub_registered_excerpt.txt"))
    spoke = flow_mapping(profile, "100.4.0.27", entries)
    assert spoke is not None and spoke.mapping == "dynamic" and spoke.tunnel.recovery is Recovery.NO
    assert "unique registered used nhop" in spoke.how
    other_hub = flow_mapping(profile, "100.9.0.16", entries)
    assert other_hub is not None and other_hub.mapping == "static" and other_hub.tunnel.recovery is Recovery.YES
    assert "no entry for it now" in other_hub.how


def test_not_a_dmvpn_flow() -> None:
    static_map = (Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "static_map.cfg").read_text()
    assert flow_mapping(classify_config(static_map), "203.0.113.1", ()) is None
    mixed = PHASE3_SPOKE + """crypto map VPN 10 ipsec-isakmp
 set peer 192.0.2.50
 set transform-set TS
 match address 101
interface GigabitEthernet0/1
 crypto map VPN
"""
    assert flow_mapping(classify_config(mixed), "192.0.2.50", ()) is None
    assert flow_mapping(classify_config(mixed), "202.100.3.1", ()).mapping == "dynamic"


def test_a_hub_with_a_dynamic_crypto_map_too_does_not_claim_an_unmapped_peer_for_dmvpn() -> None:
    """Both the dynamic map and dynamic NHRP take any peer: with no NHRP entry and no static
    map for it, nothing says the flow is on the mGRE tunnel (the lab's hub1: a crypto-map
    spoke's desync was reported as a "DMVPN peer on Tunnel0")."""
    with_dynamic_map = DUAL_HUB + """crypto dynamic-map DYN 10
 set transform-set TS
crypto map VPN 65535 ipsec-isakmp dynamic DYN
interface Ethernet0/1
 crypto map VPN
"""
    profile = classify_config(with_dynamic_map)
    entries = parse_nhrp(_read("show_ip_nhrp/ios_hub_registered_excerpt.txt"))
    assert flow_mapping(profile, "192.0.2.3", entries) is None  # no entry, no static map
    assert flow_mapping(profile, "192.0.2.3", None) is None
    registered = flow_mapping(profile, "100.4.0.27", entries)  # a spoke's registration still decides
    assert registered is not None and registered.mapping == "dynamic"
    assert flow_mapping(profile, "100.9.0.16", entries).mapping == "static"
    # without the dynamic map, an unmapped peer of the hub is still taken as dynamic NHRP
    assert flow_mapping(classify_config(DUAL_HUB), "192.0.2.3", entries).mapping == "dynamic"


def test_ikev2_dmvpn_stays_unknown_even_when_static() -> None:
    config = PHASE3_SPOKE.replace("crypto ipsec profile DMVPN-PROF\n set transform-set TS\n",
                                  "crypto ikev2 profile IKEV2-PROF\n match identity remote address 0.0.0.0\n"
                                  "crypto ipsec profile DMVPN-PROF\n set transform-set TS\n set ikev2-profile IKEV2-PROF\n")
    hub = flow_mapping(classify_config(config), "202.100.1.100", None)
    assert hub is not None and hub.mapping == "static" and hub.tunnel.recovery is Recovery.UNKNOWN_IKEV2


# -- the diagnosis states the per-flow verdict with the NHRP entry as evidence ------------------


def _recovery_findings(src: str, entries, recovery_line: str = ""):
    from ipaddress import ip_address

    from collector.detect.events import Flow
    from collector.diagnose.checks import DiagnosisInputs, RouterSide, check_recovery

    config = DUAL_HUB + recovery_line
    rx = RouterSide("hub", config_text=config, nhrp_file="hub/09_show_ip_nhrp.txt", nhrp_entries=entries)
    flow = Flow(router="hub", src=ip_address(src), dst=ip_address("100.9.0.15"), spi=0x1DB73BBB, prot=50)
    return check_recovery(DiagnosisInputs(flow=flow, receiver=rx, sender=RouterSide("spoke"), occurrences=2))


def test_check_recovery_on_a_dual_hub_hub_decides_per_flow() -> None:
    entries = parse_nhrp(_read("show_ip_nhrp/ios_hub_registered_excerpt.txt"))
    (spoke,) = _recovery_findings("100.4.0.27", entries)
    assert spoke.id == "recovery-not-applicable"
    assert spoke.title == "Invalid SPI recovery would not help for this flow (dynamic NHRP mapping)"
    assert "NHRP entry 10.15.0.2/32" in spoke.detail and "dynamic" in spoke.detail
    cited = [(r.file, r.line, r.text) for r in spoke.evidence]
    assert ("hub/09_show_ip_nhrp.txt", 4, "Type: dynamic, Flags: unique registered used nhop") in cited
    assert ("hub/09_show_ip_nhrp.txt", 5, "NBMA address: 100.4.0.27") in cited

    (hub,) = _recovery_findings("100.9.0.16", entries)
    assert hub.id == "recovery-missing"
    assert hub.title.endswith("it would apply to this flow (static NHRP mapping)")
    assert any(r.text == "ip nhrp map 10.15.0.254 100.9.0.16" for r in hub.evidence)

    # configured: it helps the flow from the other hub, not the one from a spoke
    (configured,) = _recovery_findings("100.9.0.16", entries, "crypto isakmp invalid-spi-recovery\n")
    assert configured.id == "recovery-configured"
    (no_effect,) = _recovery_findings("100.4.0.27", entries, "crypto isakmp invalid-spi-recovery\n")
    assert no_effect.id == "recovery-cannot-help" and "dynamic NHRP mapping" in no_effect.title


def test_a_flows_tunnel_cites_no_other_peers_mapping() -> None:
    profile = classify_config(PHASE3_SPOKE)
    shortcut = flow_mapping(profile, "202.100.3.1", None)
    cited = [e.text for e in shortcut.tunnel.evidence]
    assert "interface Tunnel0" in cited and "tunnel mode gre multipoint" in cited
    assert not any("202.100.1.100" in t for t in cited)  # the hub's static map is not this flow's
    hub = flow_mapping(profile, "202.100.1.100", None)
    assert "ip nhrp map 172.16.1.100 202.100.1.100" in [e.text for e in hub.tunnel.evidence]


# -- the fleet audit lists a DMVPN interface per mapping ---------------------------------------


def test_audit_lists_a_dual_hub_interface_per_mapping() -> None:
    from collector.collect import CommandResult, HostOutcome
    from collector.diagnose.audit import Verdict, audit_outcome

    nhrp = _read("show_ip_nhrp/ios_hub_registered_excerpt.txt").replace("R15>sh ip nhrp\n", "")
    results = (CommandResult("hub", "show running-config", DUAL_HUB, None, None, "parse: no template", "parse", 0.1),
               CommandResult("hub", "show ip nhrp", nhrp, None, None, "parse: no template", "parse", 0.1))
    audit = audit_outcome(HostOutcome("hub", results, None, None))
    rows = [(t.name, t.kind, t.peers, t.observed_peers, t.recovery, t.verdict) for t in audit.tunnels]
    assert rows == [
        ("Tunnel15", TunnelKind.MGRE_STATIC_NHRP, ("100.9.0.16",), (), Recovery.YES, Verdict.MISSING),
        ("Tunnel15", TunnelKind.MGRE_DYNAMIC_NHRP, (), ("100.4.0.27", "100.5.0.28"), Recovery.NO,
         Verdict.NOT_APPLICABLE),
    ]
    dynamic = audit.tunnels[1]
    assert dynamic.recovery_reason.startswith("mGRE with dynamic NHRP mapping")
    # without the cache the dynamic row still stands (map multicast dynamic), its peers unknown
    audit = audit_outcome(HostOutcome("hub", results[:1], None, None))
    assert [(t.kind, t.observed_peers) for t in audit.tunnels] == [
        (TunnelKind.MGRE_STATIC_NHRP, ()), (TunnelKind.MGRE_DYNAMIC_NHRP, ())]
    assert any("show ip nhrp not read" in n for n in audit.notes)


def test_a_phase1_spoke_with_only_its_hub_map_is_one_static_row() -> None:
    from collector.nhrp import per_mapping

    config = PHASE3_SPOKE.replace(" ip nhrp shortcut\n", "")
    (row,) = per_mapping(classify_config(config).tunnels[0], ())
    assert (row.kind, row.peers, row.recovery) == (TunnelKind.MGRE_STATIC_NHRP, ("202.100.1.100",), Recovery.YES)
    rows = per_mapping(classify_config(PHASE3_SPOKE).tunnels[0], parse_nhrp(
        _read("show_ip_nhrp/ios_phase3_spoke_excerpt.txt")))
    # the spoke's own `unique local` entries are not peers
    assert [(r.kind, r.observed_peers) for r in rows] == [
        (TunnelKind.MGRE_STATIC_NHRP, ()), (TunnelKind.MGRE_DYNAMIC_NHRP, ("202.100.3.1",))]


def test_ntc_templates_reads_the_same_show_dmvpn_rows() -> None:
    # ntc's `show dmvpn` template (what `collector parse` uses) agrees with our reading on the
    # rows it keeps: it skips continuation rows, which we keep (a second entry, same NBMA)
    from ntc_templates.parse import parse_output

    for name in ("show_dmvpn/ios_spoke_ntc.txt", "show_dmvpn/xe_genie1.txt"):
        text = _read(name)
        ntc_rows = {(r["peer_nbma"], r["peer_tunnel"], r["attribute"]) for r in
                    parse_output(platform="cisco_ios", command="show dmvpn", data=text)}
        ours = {(e.nbma, e.target, e.flags[0]) for e in parse_show_dmvpn(text)}
        assert ntc_rows and ntc_rows <= ours, (name, ntc_rows - ours)


def test_our_textfsm_template_reads_the_real_captures_like_the_parser() -> None:
    from collector.parsing import default_registry

    for name in ("show_ip_nhrp/xe_genie.txt", "show_ip_nhrp/ios_phase3_spoke_excerpt.txt",
                 "show_ip_nhrp/ios_hub_registered_excerpt.txt"):
        text = _read(name)
        result = default_registry().parse("cisco_ios", "show ip nhrp", text)
        assert result.error is None and result.template == "cisco_ios_show_ip_nhrp.textfsm", result.error
        records = [(r["target"], r["interface"], r["type"], r["nbma"], r["flags"]) for r in result.records]
        assert records == [(e.target, e.interface, e.type, e.nbma, " ".join(e.flags))
                           for e in parse_show_ip_nhrp(text)], name
    phase3 = default_registry().parse("cisco_ios", "sh ip nh", _read("show_ip_nhrp/ios_phase3_spoke_excerpt.txt"))
    assert [r["no_socket"] for r in phase3.records] == ["no-socket", "", "", "no-socket", ""]
    assert phase3.records[2]["expire"] == "never expire" and phase3.records[0]["expire"] == "00:04:10"


# A spoke written to match Tunnel90 of genie's `show dmvpn` golden output 1: two hubs mapped
# statically (172.29.0.1, 172.29.0.2), a shortcut learned to 172.29.134.1.
TUNNEL90_SPOKE = """hostname spoke90
crypto isakmp policy 10
 authentication pre-share
crypto isakmp key DmvpnKey address 0.0.0.0 0.0.0.0
crypto ipsec profile DMVPN-PROF
 set transform-set TS
interface Tunnel90
 ip address 172.30.90.10 255.255.255.0
 ip nhrp map 172.30.90.1 172.29.0.1
 ip nhrp map 172.30.90.2 172.29.0.2
 ip nhrp nhs 172.30.90.1
 ip nhrp nhs 172.30.90.2
 ip nhrp shortcut
 tunnel source GigabitEthernet0/0
 tunnel mode gre multipoint
 tunnel protection ipsec profile DMVPN-PROF
"""


def test_flow_mapping_from_the_show_dmvpn_attribute_column() -> None:
    profile = classify_config(TUNNEL90_SPOKE)
    rows = parse_show_dmvpn(_read("show_dmvpn/xe_genie1.txt"))
    hub = flow_mapping(profile, "172.29.0.2", rows)
    spoke = flow_mapping(profile, "172.29.134.1", rows)
    assert hub is not None and spoke is not None
    assert (hub.mapping, hub.tunnel.kind, hub.tunnel.recovery) == ("static", TunnelKind.MGRE_STATIC_NHRP, Recovery.YES)
    assert (spoke.mapping, spoke.tunnel.kind, spoke.tunnel.recovery) == (
        "dynamic", TunnelKind.MGRE_DYNAMIC_NHRP, Recovery.NO)
    # each answer cites the rows of its own peer, as printed in the capture
    assert [text.split()[-1] for _, text in spoke.nhrp_lines] == ["DT2", "DT1"]
    assert all(text.endswith(" S") for _, text in hub.nhrp_lines) and len(hub.nhrp_lines) == 2
    # the interface seen from each flow: the static flow's peer is mapped, the other hub is not its peer
    assert (hub.tunnel.peers, spoke.tunnel.peers) == (("172.29.0.2",), ())
