"""Formats of the crypto show commands not covered by ntc-templates."""

from __future__ import annotations

import re

from test_model_helpers import build, configure, priv, step


def test_show_crypto_isakmp_sa_lists_ikev1_peers_with_dst_src() -> None:
    fleet = build()
    s = priv(fleet.routers["spoke1"])
    text = s.execute("show crypto isakmp sa")
    lines = text.splitlines()
    assert lines[:2] == ["IPv4 Crypto ISAKMP SA", "dst             src             state          conn-id status"]
    row = re.match(r"^([\d.]+)\s+([\d.]+)\s+QM_IDLE\s+(\d+) ACTIVE$", lines[2])
    assert row and {row.group(1), row.group(2)} == {"192.0.2.3", "198.51.100.1"}
    old = priv(fleet.routers["spoke4"]).execute("show crypto isakmp sa")
    assert "conn-id slot status" in old  # the 12.4 layout


def test_show_crypto_isakmp_sa_detail_shows_dpd_capability() -> None:
    fleet = build()
    r = fleet.routers["hub1"]
    text = priv(r).execute("show crypto isakmp sa detail")
    assert "C-id  Local           Remote          I-VRF  Status Encr Hash   Auth DH Lifetime Cap." in text
    rows = re.findall(
        r"^(\d+)\s+198\.51\.100\.1\s+([\d.]+)\s+ACTIVE aes\s+sha256 psk\s+14\s+(\d\d:\d\d:\d\d)\s*(\S*)$", text, re.M
    )
    assert rows
    has_dpd = r.state.isakmp_keepalive is not None
    assert all(("D" in cap) == has_dpd for *_, cap in rows)


def test_show_crypto_ikev2_sa() -> None:
    fleet = build()
    s = priv(fleet.routers["spoke3"])
    text = s.execute("show crypto ikev2 sa")
    assert re.search(r"^1\s+192\.0\.2\.5/500\s+198\.51\.100\.1/500\s+none/none\s+READY", text, re.M)
    life = re.search(r"Life/Active Time: (\d+)/(\d+) sec", text)
    step(fleet, 10)
    life2 = re.search(r"Life/Active Time: (\d+)/(\d+) sec", s.execute("show crypto ikev2 sa"))
    assert int(life2.group(2)) == int(life.group(2)) + 10
    detailed = s.execute("show crypto ikev2 sa detailed")
    assert re.search(r"Local spi: [0-9A-F]{16}\s+Remote spi: [0-9A-F]{16}", detailed)
    hub = priv(fleet.routers["hub1"]).execute("show crypto ikev2 sa detailed")
    spoke_spis = re.search(r"Local spi: (\w+)\s+Remote spi: (\w+)", detailed).groups()
    hub_spis = re.search(r"Local spi: (\w+)\s+Remote spi: (\w+)", hub).groups()
    assert spoke_spis == hub_spis[::-1]


def test_show_crypto_session_remote_filters_one_peer() -> None:
    fleet = build()
    s = priv(fleet.routers["hub1"])
    everything = s.execute("show crypto session")
    assert everything.count("Interface: ") == 3
    one = s.execute("show crypto session remote 192.0.2.5")
    assert one.count("Interface: ") == 1 and "Interface: Virtual-Access1" in one
    assert "Profile: FLEX-HUB" in one and "IKEv2 SA: local 198.51.100.1/500 remote 192.0.2.5/500 Active" in one


def test_show_crypto_map_shows_maps_and_tunnel_heads() -> None:
    fleet = build()
    spoke = priv(fleet.routers["spoke1"]).execute("show crypto map")
    assert 'Crypto Map IPv4 "VPN-MAP" 10 ipsec-isakmp' in spoke
    assert "        Peer = 198.51.100.1" in spoke
    assert "Interfaces using crypto map VPN-MAP:\n                GigabitEthernet0/0" in spoke
    hub = priv(fleet.routers["hub1"]).execute("show crypto map")
    assert "Dynamic map template tag: DYN-MAP" in hub
    assert re.search(r'Crypto Map IPv4 "Tunnel\d+-head-0" 65537 ipsec-isakmp\n        Map is a PROFILE INSTANCE\.', hub)


def test_desynced_receiver_shows_no_sa_and_the_sender_still_does() -> None:
    fleet = build(scenarios=["desync:7"])  # every tunnel of the six routers
    gre = next(p for p in fleet.pairs() if p.id == "t5")  # GRE P2P hub1 -> hub2
    assert gre.kind == "hub-gre-p2p" and {p.scenario for p in fleet.pairs()} == {"desync"}
    configure(fleet.routers[gre.receiver], "no crypto isakmp invalid-spi-recovery")
    configure(fleet.routers[gre.sender], "no crypto isakmp keepalive")
    step(fleet, 40)
    dmvpn = next(p for p in fleet.pairs() if p.id == "t2")  # DMVPN spoke2 -> hub2
    rx = priv(fleet.routers[dmvpn.receiver]).execute(f"show crypto session remote {dmvpn.sender_addr} detail")
    assert rx.strip().endswith("S - SIP VPN")  # a dynamic hub end vanishes with its SAs
    tx = priv(fleet.routers[dmvpn.sender]).execute(f"show crypto session remote {dmvpn.receiver_addr} detail")
    assert "Session status: UP-ACTIVE" in tx
    # a static end (tunnel interface) stays listed, without SAs
    rx = priv(fleet.routers[gre.receiver])
    session = rx.execute(f"show crypto session remote {gre.sender_addr} detail")
    assert "Session status: DOWN" in session and "Active SAs: 0, origin: crypto map" in session
    sa = rx.execute(f"show crypto ipsec sa peer {gre.sender_addr}")
    assert "current outbound spi: 0x0(0)" in sa and "Status: ACTIVE" not in sa


def test_ios124_show_crypto_session_reads_like_the_real_ike_sa_capture() -> None:
    """The 12.4 EzVPN client prints the older `IKE SA:` line (no version) and no blank line
    under the title, like the real capture in tests/fixtures/real/show_crypto_session/
    ios_ike_sa_ezvpn_server_genie.txt; our template reads both to the same fields."""
    from pathlib import Path

    from collector.parsing import default_registry

    fleet = build()
    step(fleet, 30)
    lab = priv(fleet.routers["spoke4"]).execute("show crypto session")
    assert lab.splitlines()[:2] == ["Crypto session current status", "Interface: FastEthernet0/0"]
    assert re.search(r"^  IKE SA: local [\d.]+/4500 remote 198\.51\.100\.2/4500 Active $", lab, re.M)
    real = (Path(__file__).resolve().parents[1] / "fixtures" / "real" / "show_crypto_session"
            / "ios_ike_sa_ezvpn_server_genie.txt").read_text()
    registry = default_registry()
    (ours,) = registry.parse("cisco_ios", "show crypto session", lab).records
    (theirs,) = registry.parse("cisco_ios", "show crypto session", real).records
    server_only = {"username", "profile", "group", "assigned_address"}  # an EzVPN server's session
    filled = {k for k, v in theirs.items() if v not in ("", [])} - server_only
    assert filled <= {k for k, v in ours.items() if v not in ("", [])}
    assert ours["ike_version"] == ["IKE"] and ours["ike_status"] == ["Active"]
