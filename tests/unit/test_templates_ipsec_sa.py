"""Own template: show crypto ipsec sa [peer X] [detail] — one record per SA.

The consumer question the shape must answer: per peer, the current outbound SPI and the
set of inbound SPIs with their status (domain.md §2.5, out-of-sync check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.parsing import default_registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"
FIXTURE_FILES = [
    "show_crypto_ipsec_sa_detail_full_counters.txt",
    "show_crypto_ipsec_sa_unindented_csr.txt",
    "show_crypto_ipsec_sa_peer_lifetime_text.txt",
    "show_crypto_ipsec_sa_rekey_crypto_map_ios15.txt",
]


def parse(fixture: str, command: str = "show crypto ipsec sa") -> list[dict]:
    result = default_registry().parse("cisco_xe", command, (FIXTURES / fixture).read_text())
    assert result.error is None, result.error
    assert result.template == "cisco_ios_show_crypto_ipsec_sa.textfsm"
    return result.records


def peer_view(records: list[dict]) -> dict[str, dict]:
    """What the diagnosis needs, built only from the records."""
    view: dict[str, dict] = {}
    for r in records:
        peer = view.setdefault(r["current_peer"], {"outbound": set(), "inbound": {}})
        peer["outbound"].add(r["current_outbound_spi"])
        if r["direction"] == "inbound":
            peer["inbound"][r["spi"]] = r["status"]
    return view


def pick(records: list[dict], *keys: str) -> list[tuple]:
    return [tuple(r[k] for k in keys) for r in records]


def test_full_counters_indented_two_interfaces() -> None:
    recs = parse("show_crypto_ipsec_sa_detail_full_counters.txt", "show crypto ipsec sa detail")
    assert pick(recs, "interface", "crypto_map_tag", "local_addr", "current_peer", "current_peer_port",
                "direction", "protocol", "spi", "spi_dec", "conn_id", "flow_id", "sa_crypto_map", "status") == [
        ("Tunnel1", "Tunnel1-head-0", "1.2.3.4", "2.2.2.2", "4500", "inbound", "esp", "0xABCD1234", "2882343476",
         "124", "Onboard VPN:124", "Tunnel1-head-0", "ACTIVE(ACTIVE)"),
        ("Tunnel1", "Tunnel1-head-0", "1.2.3.4", "2.2.2.2", "4500", "outbound", "esp", "0x1234ABCD", "305441741",
         "123", "Onboard VPN:123", "Tunnel1-head-0", "ACTIVE(ACTIVE)"),
        ("Tunnel2", "Tunnel2-head-0", "1.2.3.4", "3.3.3.3", "4500", "inbound", "esp", "0x1234DCBA", "305454266",
         "457", "Onboard VPN:457", "Tunnel2-head-0", "ACTIVE(ACTIVE)"),
        ("Tunnel2", "Tunnel2-head-0", "1.2.3.4", "3.3.3.3", "4500", "outbound", "esp", "0x4321DCBA", "1126292666",
         "456", "Onboard VPN:456", "Tunnel2-head-0", "ACTIVE(ACTIVE)"),
    ]
    t1 = recs[0]
    assert (t1["pkts_encaps"], t1["pkts_decaps"], t1["pkts_invalid_sa_rcv"], t1["pkts_replay_failed_rcv"]) == (
        "4981028", "4112421", "17", "3")
    assert (t1["send_errors"], t1["recv_errors"]) == ("", "")  # the full set has no #send errors line
    assert (t1["local_ident_addr"], t1["local_ident_mask"], t1["local_ident_prot"], t1["remote_ident_addr"]) == (
        "1.2.3.4", "255.255.255.255", "47", "2.2.2.2")
    assert (t1["in_use_settings"], t1["transform"], t1["sibling_flags"]) == (
        "Transport UDP-Encaps", "esp-256-aes esp-sha-hmac", "80000000")
    assert (t1["remaining_kb"], t1["remaining_sec"], t1["replay_window"], t1["iv_size"]) == (
        "4332650", "3205", "1024", "16")
    assert (t1["path_mtu"], t1["ip_mtu_idb"], t1["pfs"], t1["dh_group"]) == ("1500", "GigabitEthernet8", "N", "none")
    assert recs[2]["pkts_invalid_sa_rcv"] == "0"  # block values do not leak across interfaces


def test_unindented_short_counters_and_block_without_sa() -> None:
    recs = parse("show_crypto_ipsec_sa_unindented_csr.txt")
    assert pick(recs, "interface", "local_ident_addr", "remote_ident_addr", "current_outbound_spi",
                "direction", "protocol", "spi", "flow_id") == [
        ("GigabitEthernet3", "20.20.20.0", "10.10.10.0", "0x397C36EE", "inbound", "esp", "0x658F7C11", "CSR:76"),
        ("GigabitEthernet3", "20.20.20.0", "10.10.10.0", "0x397C36EE", "outbound", "esp", "0x397C36EE", "CSR:75"),
        # second proxy pair of the same interface: no phase 2, one record with empty SA fields
        ("GigabitEthernet3", "40.40.40.0", "30.30.30.0", "0x0", "", "", "", ""),
        ("Tunnel0", "0.0.0.0", "0.0.0.0", "0x2E8482F8", "inbound", "esp", "0xA54D38A4", "CSR:77"),
        ("Tunnel0", "0.0.0.0", "0.0.0.0", "0x2E8482F8", "outbound", "esp", "0x2E8482F8", "CSR:78"),
    ]
    assert {r["send_errors"] for r in recs} == {"0"} and {r["recv_errors"] for r in recs} == {"0"}
    assert recs[2]["crypto_map_tag"] == "vpn-crypto-map" and recs[2]["status"] == ""
    assert recs[3]["crypto_map_tag"] == "Tunnel0-head-0"  # Tunnel protection on Tunnel0


def test_peer_command_lifetime_text_and_gcm() -> None:
    recs = parse("show_crypto_ipsec_sa_peer_lifetime_text.txt", "show crypto ipsec sa peer 17.0.1.1")
    assert pick(recs, "protected_vrf", "direction", "spi", "flow_id", "remaining_lifetime", "remaining_kb",
                "transform", "replay_detection", "pfs", "dh_group") == [
        ("VRF_CLOUD_11", "inbound", "0x46959245", "HW:16001", "1 hours, 10 mins", "", "esp-gcm 256", "N", "Y", "group20"),
        ("VRF_CLOUD_11", "outbound", "0x6DE5239C", "HW:16002", "1 hours, 10 mins", "", "esp-gcm 256", "N", "Y",
         "group20"),
    ]
    assert recs[0]["ip_mtu_idb"] == "TenGigabitEthernet0/0/9.11"


def test_rekey_two_inbound_sas_ah_and_peer_without_sa() -> None:
    recs = parse("show_crypto_ipsec_sa_rekey_crypto_map_ios15.txt", "sh cry ips sa")
    assert pick(recs, "interface", "direction", "protocol", "spi", "conn_id", "status", "remaining_sec") == [
        ("FastEthernet0/0", "inbound", "esp", "0x5D7E1F00", "2003", "ACTIVE", "38"),
        ("FastEthernet0/0", "inbound", "esp", "0xC0FFEE01", "2005", "ACTIVE", "3597"),
        ("FastEthernet0/0", "inbound", "ah", "0x0BADF00D", "2007", "ACTIVE", "3597"),
        ("FastEthernet0/0", "outbound", "esp", "0x9A1B2C3D", "2006", "ACTIVE", "3597"),
        ("FastEthernet0/0", "outbound", "ah", "0x0DEFACED", "2008", "ACTIVE", "3597"),
        ("Serial0/1", "", "", "", "", "", ""),
    ]
    assert recs[0]["recv_errors"] == "42" and recs[0]["path_mtu"] == "1500" and recs[0]["iv_size"] == "16"
    assert recs[2]["iv_size"] == ""  # AH has no IV line


def test_consumer_view_per_peer() -> None:
    view = peer_view(parse("show_crypto_ipsec_sa_rekey_crypto_map_ios15.txt"))
    assert view == {
        "203.0.113.10": {"outbound": {"0x9A1B2C3D"},
                         "inbound": {"0x5D7E1F00": "ACTIVE", "0xC0FFEE01": "ACTIVE", "0x0BADF00D": "ACTIVE"}},
        "198.51.100.20": {"outbound": {"0x0"}, "inbound": {}},
    }
    view = peer_view(parse("show_crypto_ipsec_sa_unindented_csr.txt"))
    assert view["1.1.1.1"] == {"outbound": {"0x397C36EE", "0x0"}, "inbound": {"0x658F7C11": "ACTIVE(ACTIVE)"}}


@pytest.mark.parametrize("fixture", FIXTURE_FILES)
def test_spi_hex_and_decimal_agree_and_every_record_has_a_block(fixture: str) -> None:
    for r in parse(fixture):
        assert r["interface"] and r["current_peer"] and r["current_outbound_spi"].startswith("0x")
        assert int(r["current_outbound_spi"], 16) == int(r["current_outbound_spi_dec"])
        if r["spi"]:
            assert int(r["spi"], 16) == int(r["spi_dec"]) and r["direction"] in ("inbound", "outbound")
        else:
            assert r["direction"] == "" and r["current_outbound_spi"] == "0x0"


def test_sa_without_status_line_is_closed_by_the_next_sa() -> None:
    # Old images (or a cut capture) may lack `Status:`: the next spi/section still closes it.
    text = (FIXTURES / "show_crypto_ipsec_sa_rekey_crypto_map_ios15.txt").read_text()
    text = "\n".join(line for line in text.splitlines() if "Status:" not in line)
    result = default_registry().parse("cisco_ios", "show crypto ipsec sa", text)
    assert pick(result.records, "direction", "protocol", "spi", "status")[:5] == [
        ("inbound", "esp", "0x5D7E1F00", ""),
        ("inbound", "esp", "0xC0FFEE01", ""),
        ("inbound", "ah", "0x0BADF00D", ""),
        ("outbound", "esp", "0x9A1B2C3D", ""),
        ("outbound", "ah", "0x0DEFACED", ""),
    ]


def test_no_sas_and_empty_output() -> None:
    reg = default_registry()
    for text in ("", "\n\n", "No SAs found\n"):
        result = reg.parse("cisco_ios", "show crypto ipsec sa", text)
        assert result.error is None and result.records == []
