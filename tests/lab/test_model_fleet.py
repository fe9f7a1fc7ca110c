"""Fleet plan: names, platforms, addresses, credentials, config types, inventory, reboot."""

from __future__ import annotations

import ipaddress
import re

import pytest
from test_model_helpers import build, configure, priv, step

from collector.lab.fleet import Fleet, ScenarioSpec, parse_scenarios


def test_default_fleet_is_two_hubs_and_four_spokes_on_mixed_platforms() -> None:
    fleet = build()
    assert list(fleet.routers) == ["hub1", "hub2", "spoke1", "spoke2", "spoke3", "spoke4"]
    platforms = {r.name: (r.platform, r.model) for r in fleet.routers.values()}
    assert platforms["hub2"] == ("cisco_xe", "ASR1001-X")
    assert {p for p, _ in platforms.values()} == {"cisco_xe", "cisco_ios"}
    versions = {r.spec.platform.family for r in fleet.routers.values()}
    assert versions == {"xe", "ios15", "ios124"}
    assert "Version 12.4(24)T8" in priv(fleet.routers["spoke4"]).execute("show version")
    assert "Virtual XE Software" in priv(fleet.routers["spoke2"]).execute("show version")


def test_credentials_are_per_lab_and_follow_the_seed() -> None:
    a, b = build(seed=0), build(seed=1)
    creds = {(r.username, r.password, r.enable_secret) for r in a.routers.values()}
    assert len(creds) == 1
    user, password, secret = creds.pop()
    assert user == "lab" and password.startswith("lab-") and password != secret
    assert build(seed=0).routers["hub1"].password == password
    assert b.routers["hub1"].password != password


def test_addresses_are_documentation_ranges_and_syslog_sources_are_distinct_loopbacks() -> None:
    fleet = build()
    sources = [r.syslog_source for r in fleet.routers.values()]
    assert len(set(sources)) == len(sources)
    assert all(ipaddress.ip_address(s).is_loopback and s.startswith("127.20.") for s in sources)
    for r in fleet.routers.values():
        wan = ipaddress.ip_address(r.spec.public_ip)
        assert any(wan in ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


def test_five_hundred_routers() -> None:
    fleet = Fleet.build(500, ["desync:50", "asr-silent:3"], seed=3, time_scale=0.0)
    names = list(fleet.routers)
    assert len(names) == 500 and names[:2] == ["hub1", "hub2"] and names[-1] == "spoke490"
    publics = [r.spec.public_ip for r in fleet.routers.values()]
    assert len(set(publics)) == 500
    assert sum(p.scenario == "desync" for p in fleet.pairs()) == 50
    assert all(p.persistent for p in fleet.pairs() if p.scenario == "desync")
    fleet.clock.step(60)
    fleet.tick()
    receivers = {p.receiver for p in fleet.pairs() if p.scenario == "desync"}
    logged = {n for n in receivers if any("RECVD_PKT_INV_SPI" in ln for ln in fleet.routers[n].log.lines())}
    assert logged == receivers


def test_inventory_data_and_port_rule() -> None:
    fleet = build()
    inv = fleet.inventory_data("127.0.0.1", base_port=10022)
    assert list(inv) == list(fleet.routers)
    hub2 = inv["hub2"]
    assert hub2["port"] == 10023 and hub2["hostname"] == "127.0.0.1" and hub2["platform"] == "cisco_xe"
    assert hub2["groups"] == ["lab", "hubs"] and inv["spoke1"]["groups"] == ["lab", "spokes"]
    assert hub2["data"] == {"model": "ASR1001-X", "role": "hub"}
    assert fleet.routers["hub2"].syslog_source in hub2["addresses"]
    assert hub2["secret"] == fleet.routers["hub2"].enable_secret
    assert inv["spoke4"]["addresses"][:2] == [
        fleet.routers["spoke4"].spec.wan_ip,
        fleet.routers["spoke4"].spec.public_ip,
    ]


def test_parse_scenarios() -> None:
    assert parse_scenarios(["desync", "healthy:3"]) == [ScenarioSpec("desync", 1), ScenarioSpec("healthy", 3)]
    assert [s.name for s in parse_scenarios(["mix"])] == [
        "desync",
        "rekey-transient",
        "asr-silent",
        "nat-t-silent",
        "healthy",
    ]
    with pytest.raises(ValueError, match="unknown scenario 'desynk'"):
        parse_scenarios(["desynk"])
    with pytest.raises(ValueError, match="count 'x' is not a whole number"):
        parse_scenarios(["desync:x"])
    # hub2 (the ASR1000) receives on its spokes' tunnels, its GRE link and its DMVPN hub-pair map
    with pytest.raises(ValueError, match=r"asr-silent:5 needs 5 free tunnel\(s\) whose receiver is an ASR1000"):
        build(scenarios=["asr-silent:5"])
    with pytest.raises(ValueError, match="at least 2 routers"):
        Fleet.build(1, [])


CONFIG_MARKERS = {
    "static crypto map": r"^crypto map VPN-MAP 10 ipsec-isakmp\n set peer [\d.]+\n set transform-set \S+\n match address \S+",
    "dynamic crypto map": r"^crypto dynamic-map DYN-MAP 10\n(?:.*\n)*?crypto map VPN-MAP 65535 ipsec-isakmp dynamic DYN-MAP",
    "wildcard key": r"^crypto isakmp key \S+ address 0\.0\.0\.0 0\.0\.0\.0$",
    "GRE P2P": r"^interface Tunnel1\d\d\n(?: .*\n)*? tunnel destination [\d.]+\n tunnel protection ipsec profile GRE-PROF",
    "DMVPN static NHRP": r" ip nhrp map [\d.]+ [\d.]+\n ip nhrp map multicast [\d.]+\n(?: .*\n)*? tunnel mode gre multipoint",
    "DMVPN dynamic NHRP": r" ip nhrp map multicast dynamic\n(?: .*\n)*? tunnel mode gre multipoint",
    "sVTI": r" tunnel mode ipsec ipv4\n tunnel destination [\d.]+\n tunnel protection ipsec profile",
    "dynamic VTI": r"^interface Virtual-Template1 type tunnel\n(?: .*\n)*? tunnel mode ipsec ipv4",
    "EzVPN client": r"^crypto ipsec client ezvpn EZVPN\n connect auto\n group EZVPN-GRP key \S+\n mode network-extension",
    "IKEv2 profile": r"^crypto ikev2 profile FLEX-\w+\n",
    "IKEv1 policy": r"^crypto isakmp policy 10\n",
}


def test_every_config_type_appears_in_running_config() -> None:
    fleet = build()
    text = "\n".join(priv(r).execute("show running-config") for r in fleet.routers.values())
    for label, pattern in CONFIG_MARKERS.items():
        assert re.search(pattern, text, re.M), label


def test_running_config_holds_realistic_secrets() -> None:
    fleet = build()
    for r in fleet.routers.values():
        run = priv(r).execute("show running-config")
        assert re.search(r"^enable secret [59] \$[19]\$", run, re.M)
        assert re.search(r"^username admin privilege 15 secret [59] \S+", run, re.M)
        assert re.search(r"^snmp-server community \S+ RO", run, re.M)
        assert re.search(r"key tac-\w+", run)
        assert re.search(r"crypto isakmp key \S+ address|pre-shared-key \S+|group EZVPN-GRP key", run)
        for secret in r.secrets():
            assert secret in run, (r.name, secret)


def test_recovery_and_dpd_settings_vary_with_the_seed() -> None:
    def settings(seed: int) -> list[tuple[bool, bool]]:
        return [
            (r.state.invalid_spi_recovery, r.state.isakmp_keepalive is not None)
            for r in Fleet.build(40, [], seed=seed, time_scale=0.0).routers.values()
        ]

    first = settings(0)
    assert first == settings(0)
    assert {rec for rec, _ in first} == {True, False} and {dpd for _, dpd in first} == {True, False}
    assert first != settings(1)


def test_reboot_clears_debugs_log_and_unsaved_config_and_renegotiates() -> None:
    fleet = build()
    r = fleet.routers["hub1"]
    s = priv(r)
    s.execute("debug crypto condition peer ipv4 192.0.2.3")
    s.execute("debug crypto isakmp")
    configure(r, "logging buffered 200000 debugging")
    configure(r, "event manager applet SAVED", " event timer countdown time 600", ' action 1 syslog msg "x"')
    s.execute("write memory")
    configure(r, "crypto isakmp invalid-spi-recovery", "event manager applet UNSAVED", " event none")
    peer_info = fleet.pairs()[0]
    before = fleet.tunnel(peer_info.id).ends[1].sa.spi_in
    r.reboot()
    assert s.closed
    s2 = priv(r)
    assert "debugging is on" not in s2.execute("show debugging")
    assert "turned OFF" in s2.execute("show crypto debug-condition")
    run = s2.execute("show running-config")
    assert "event manager applet SAVED" in run and "UNSAVED" not in run
    assert "crypto isakmp invalid-spi-recovery" not in run
    assert "logging buffered 200000" in run
    lines = r.log.lines()
    assert lines[0].split(": ", 1)[1].startswith("%SYS-5-RESTART") or "%SYS-5-RESTART" in lines[0]
    assert not any("CONFIG_I" in ln for ln in lines)
    assert "uptime is 0 minutes" in s2.execute("show version")
    assert "QM_IDLE" not in s2.execute("show crypto isakmp sa")  # nothing negotiated yet
    step(fleet, 6)
    after = fleet.tunnel(peer_info.id).ends[1].sa.spi_in
    assert after != before
    hub_view = s2.execute(f"show crypto ipsec sa peer {peer_info.a_addr}")
    spoke_view = priv(fleet.routers[peer_info.a]).execute(f"show crypto ipsec sa peer {peer_info.b_addr}")
    hub_out = re.search(r"current outbound spi: (0x[0-9A-F]+)", hub_view).group(1)
    assert f"spi: {hub_out}(" in spoke_view.split("outbound esp sas:")[0]  # the spoke receives on it
