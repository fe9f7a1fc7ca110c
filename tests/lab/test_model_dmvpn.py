"""DMVPN as deployed (issue 11 item 7): dual-hub hubs, phase-3 spokes, dynamic shortcuts.

The lab's `show ip nhrp` is read back with the parser the diagnosis uses (collector/nhrp.py,
held to real captures in tests/unit/test_nhrp.py), and the per-flow decision on the lab's
own configuration and cache gives the table of Cisco 115801 per mapping."""

from __future__ import annotations

from collector.cryptoconfig import Recovery, classify_config
from collector.nhrp import flow_mapping, parse_show_ip_nhrp
from test_model_helpers import build, priv


def test_default_fleet_has_dual_hub_hubs_and_a_phase3_spoke() -> None:
    fleet = build(realism="default")
    for hub, other in (("hub1", "hub2"), ("hub2", "hub1")):
        config = priv(fleet.routers[hub]).execute("show running-config")
        tunnel0 = config[config.index("interface Tunnel0"):].split("!")[0]
        assert " ip nhrp map multicast dynamic" in tunnel0
        other_ip = fleet.routers[other].spec.public_ip
        assert f" ip nhrp map 10.100.0.{other[3:]} {other_ip}\n" in tunnel0
        assert " ip nhrp redirect" in tunnel0
    spoke = priv(fleet.routers["spoke2"]).execute("show running-config")
    tunnel0 = spoke[spoke.index("interface Tunnel0"):].split("!")[0]
    assert " ip nhrp shortcut" in tunnel0 and " ip nhrp nhs 10.100.0.2" in tunnel0
    # a router without NHRP prints nothing
    assert priv(fleet.routers["spoke1"]).execute("show ip nhrp").strip() == ""


def test_spoke_to_spoke_entries_are_dynamic_and_the_hub_map_static() -> None:
    fleet = build(12)  # spokes 2 and 10 are DMVPN spokes (of hub2 and hub1): one shortcut
    spoke2, spoke10, hub2 = (fleet.routers[n] for n in ("spoke2", "spoke10", "hub2"))
    entries = parse_show_ip_nhrp(priv(spoke2).execute("show ip nhrp"))
    by_nbma = {(e.target, e.nbma): e for e in entries}
    static = by_nbma[("10.100.0.2/32", hub2.spec.public_ip)]
    assert (static.type, static.flags, static.interface) == ("static", ("used",), "Tunnel0")
    shortcut = by_nbma[("10.100.1.10/32", spoke10.spec.public_ip)]
    assert (shortcut.type, shortcut.flags) == ("dynamic", ("router", "nhop", "rib"))
    assert by_nbma[(f"{spoke10.spec.lan_net}/24", spoke10.spec.public_ip)].type == "dynamic"
    own = by_nbma[("10.100.1.2/32", spoke2.spec.public_ip)]
    assert own.flags == ("router", "unique", "local")

    profile = classify_config(priv(spoke2).execute("show running-config"))
    to_hub = flow_mapping(profile, hub2.spec.public_ip, entries)
    to_spoke = flow_mapping(profile, spoke10.spec.public_ip, entries)
    assert to_hub is not None and to_hub.mapping == "static" and to_hub.tunnel.recovery is Recovery.YES
    assert to_spoke is not None and to_spoke.mapping == "dynamic" and to_spoke.tunnel.recovery is Recovery.NO

    # our TextFSM template (what `collect` stores) reads the lab's text as the parser does
    from collector.parsing import default_registry

    parsed = default_registry().parse("cisco_xe", "show ip nhrp", priv(spoke2).execute("show ip nhrp"))
    assert parsed.error is None
    assert [(r["target"], r["type"], r["nbma"]) for r in parsed.records] == [(e.target, e.type, e.nbma) for e in entries]

    hub_entries = parse_show_ip_nhrp(priv(hub2).execute("show ip nhrp"))
    registered = [e for e in hub_entries if e.nbma == spoke2.spec.public_ip]
    assert [(e.type, e.flags) for e in registered] == [("dynamic", ("unique", "registered", "used", "nhop"))]
    hub_profile = classify_config(priv(hub2).execute("show running-config"))
    from_spoke = flow_mapping(hub_profile, spoke2.spec.public_ip, hub_entries)
    assert from_spoke is not None and from_spoke.mapping == "dynamic"
    # hub1 is also a GRE peer of hub2: that flow is the GRE tunnel's, not a DMVPN mapping
    assert flow_mapping(hub_profile, fleet.routers["hub1"].spec.public_ip, hub_entries) is None


def test_the_lab_model_recovers_per_mapping() -> None:
    fleet = build(12, ["desync-dmvpn-static", "desync-dmvpn-dynamic"], seed=16)
    by_scenario = {p.scenario: p for p in fleet.pairs() if p.scenario != "healthy"}
    static, dynamic = by_scenario["desync-dmvpn-static"], by_scenario["desync-dmvpn-dynamic"]
    assert (static.kind, static.sender, static.receiver) == ("dmvpn", "hub2", "spoke2")
    assert (dynamic.kind, dynamic.b_type) == ("dmvpn-shortcut", "mgre-dynamic-nhrp")
    # invalid-spi-recovery would help the spoke over its static map, never over a shortcut
    assert dynamic.recovery is False
    assert static.recovery is (True if fleet.routers["spoke2"].state.invalid_spi_recovery else False)


def test_show_dmvpn_reads_like_the_real_captures_and_agrees_with_show_ip_nhrp() -> None:
    """`show dmvpn` (layout: tests/fixtures/real/show_dmvpn) parses, with the diagnosis's
    parser, ntc-templates and what `collect` stores, to the fields the real captures give,
    and says per peer what `show ip nhrp` says: static or dynamic, the same NBMA address."""
    from pathlib import Path

    from ntc_templates.parse import parse_output

    from collector.nhrp import parse_nhrp, parse_show_dmvpn
    from collector.parsing import default_registry

    real = Path(__file__).parents[1] / "fixtures" / "real" / "show_dmvpn" / "ios_spoke_ntc.txt"
    real_fields = {frozenset(r) for r in parse_output(platform="cisco_ios", command="show dmvpn",
                                                      data=real.read_text())}
    fleet = build(12)  # spoke2 has a static map to hub2 and a shortcut to spoke10
    for name in ("spoke2", "hub2", "hub1", "spoke10"):
        router = fleet.routers[name]
        text = priv(router).execute("show dmvpn")
        assert text.startswith("Legend: Attrb --> S - Static, D - Dynamic, I - Incomplete\n")
        assert f"Type:{'Hub' if router.role == 'hub' else 'Spoke'}, NHRP Peers:2, \n" in text
        rows = parse_show_dmvpn(text)
        assert parse_nhrp(text) == rows  # told apart from `show ip nhrp` by its heading
        by_ip_nhrp = {(e.nbma, e.type) for e in parse_nhrp(priv(router).execute("show ip nhrp"))
                      if "local" not in e.flags}
        assert {(e.nbma, e.type) for e in rows} == by_ip_nhrp, name
        ntc = parse_output(platform="cisco_ios", command="show dmvpn", data=text)
        assert {frozenset(r) for r in ntc} == real_fields
        assert {(r["peer_nbma"], r["peer_tunnel"], r["attribute"]) for r in ntc} <= {
            (e.nbma, e.target, e.flags[0]) for e in rows}
        stored = default_registry().parse(router.spec.platform.device_type, "show dmvpn", text)
        assert stored.error is None and stored.records == ntc
    spoke2 = parse_show_dmvpn(priv(fleet.routers["spoke2"]).execute("show dmvpn"))
    assert [(e.nbma, e.type, e.flags) for e in spoke2] == [
        (fleet.routers["spoke10"].spec.public_ip, "dynamic", ("DT2",)),
        (fleet.routers["spoke10"].spec.public_ip, "dynamic", ("DT1",)),
        (fleet.routers["hub2"].spec.public_ip, "static", ("S",))]
    # the per-flow decision reads the same from either command
    profile = classify_config(priv(fleet.routers["spoke2"]).execute("show running-config"))
    for peer in ("spoke10", "hub2"):
        address = fleet.routers[peer].spec.public_ip
        assert flow_mapping(profile, address, spoke2).mapping == flow_mapping(
            profile, address, parse_show_ip_nhrp(priv(fleet.routers["spoke2"]).execute("show ip nhrp"))).mapping
    assert priv(fleet.routers["spoke1"]).execute("show dmvpn") == ""


def test_the_default_six_router_fleet_has_a_spoke_to_spoke_shortcut() -> None:
    """`collector lab up`'s default size: spoke2 is the one DMVPN spoke of the slot table, so
    spoke3 joins the cloud too (beside its FlexVPN tunnel to hub1, registered with hub2) and
    the two have a phase-3 shortcut, dynamic at both ends; spoke1 stays plain."""
    fleet = build(6)
    kinds = {(p.kind, p.a, p.b) for p in fleet.pairs()}
    assert {("dmvpn", "spoke2", "hub2"), ("dmvpn", "spoke3", "hub2"), ("dmvpn-shortcut", "spoke2", "spoke3"),
            ("flexvpn", "spoke3", "hub1")} <= kinds
    assert not any("spoke1" in (p.a, p.b) for p in fleet.pairs() if p.kind.startswith("dmvpn"))
    spoke3 = priv(fleet.routers["spoke3"])
    entries = parse_show_ip_nhrp(spoke3.execute("show ip nhrp"))
    spoke2_ip, hub2_ip = fleet.routers["spoke2"].spec.public_ip, fleet.routers["hub2"].spec.public_ip
    profile = classify_config(spoke3.execute("show running-config"))
    assert flow_mapping(profile, spoke2_ip, entries).mapping == "dynamic"
    assert flow_mapping(profile, hub2_ip, entries).mapping == "static"
    # a 12-router fleet has two DMVPN spokes of its own: nothing added there
    assert sum(p.kind == "dmvpn" for p in build(12).pairs()) == 2
    (flow,) = [p for p in build(6, ["desync-dmvpn-dynamic"]).pairs() if p.scenario == "desync-dmvpn-dynamic"]
    assert (flow.kind, {flow.sender, flow.receiver}) == ("dmvpn-shortcut", {"spoke2", "spoke3"})
