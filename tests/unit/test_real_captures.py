"""Our templates on real public captures (tests/fixtures/real, sources in its README.md).

Every expected value below was read by hand off the capture file named in the test, not
produced by running the parser. Where ntc-templates has a template for the same command,
it is run on the same text and must agree on the fields both read (or the disagreement is
asserted and explained).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.parsing import default_registry

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


def parse(command: str, name: str, platform: str = "cisco_xe") -> list[dict]:
    result = default_registry().parse(platform, command, (REAL / name).read_text())
    assert result.error is None, result.error
    assert result.template is not None and result.template.startswith("cisco_ios_"), result.template
    return result.records


def ntc(command: str, name: str) -> list[dict]:
    from ntc_templates.parse import parse_output

    return parse_output(platform="cisco_ios", command=command, data=(REAL / name).read_text())


def pick(records: list[dict], *keys: str) -> list[tuple]:
    return [tuple(r[k] for k in keys) for r in records]


# --------------------------------------------------------------------------- every file is used

COVERED = {
    "show_crypto_ipsec_sa", "show_crypto_isakmp_sa", "show_crypto_ikev2_sa", "show_crypto_session",
    "show_platform_qfp", "show_debugging", "show_logging", "show_version", "show_clock", "debug", "syslog",
    "show_ip_nhrp", "show_dmvpn",  # collector/nhrp.py: tests/unit/test_nhrp.py
    "show_event_manager_version",
}


def test_every_fixture_has_a_source_and_a_test_folder() -> None:
    readme = (REAL / "README.md").read_text()
    files = sorted(p for p in REAL.rglob("*.txt"))
    assert len(files) >= 50
    for path in files:
        rel = path.relative_to(REAL).as_posix()
        assert f"`{rel}`" in readme, f"{rel} has no SOURCE row in README.md"
        assert rel.split("/")[0] in COVERED, rel


# --------------------------------------------------------------------------- show crypto ipsec sa

IPSEC = {
    # (interface, current_peer, peer port, direction, spi, current outbound spi) per SA
    "show_crypto_ipsec_sa/xe_plain.txt": ("show crypto ipsec sa", [
        ("GigabitEthernet3", "1.1.1.1", "500", "inbound", "0x658F7C11", "0x397C36EE"),
        ("GigabitEthernet3", "1.1.1.1", "500", "outbound", "0x397C36EE", "0x397C36EE"),
        ("GigabitEthernet3", "1.1.1.1", "500", "", "", "0x0"),  # a second ident pair, no SA
        ("Tunnel0", "2.2.2.1", "500", "inbound", "0xA54D38A4", "0x2E8482F8"),
        ("Tunnel0", "2.2.2.1", "500", "outbound", "0x2E8482F8", "0x2E8482F8"),
    ]),
    "show_crypto_ipsec_sa/xe_detail_1.txt": ("show crypto ipsec sa detail", [
        ("Tunnel2", "71.71.71.71", "500", "inbound", "0x50A0FB1C", "0xBFD0E7BA"),
        ("Tunnel2", "71.71.71.71", "500", "outbound", "0xBFD0E7BA", "0xBFD0E7BA"),
    ]),
    "show_crypto_ipsec_sa/xe_detail_2.txt": ("show crypto ipsec sa detail", [
        ("GigabitEthernet0/0/0", "17.0.0.1", "500", "", "", "0x0"),
    ]),
    "show_crypto_ipsec_sa/xe_peer.txt": ("show crypto ipsec sa peer 17.0.1.1", [
        ("Tunnel11", "17.0.1.1", "500", "inbound", "0x46959245", "0x6DE5239C"),
        ("Tunnel11", "17.0.1.1", "500", "outbound", "0x6DE5239C", "0x6DE5239C"),
    ]),
    "show_crypto_ipsec_sa/xe_peer_detail.txt": ("show crypto ipsec sa peer 17.0.1.1 detail", [
        ("Tunnel11", "17.0.1.1", "500", "inbound", "0x46959245", "0x6DE5239C"),
        ("Tunnel11", "17.0.1.1", "500", "outbound", "0x6DE5239C", "0x6DE5239C"),
    ]),
    "show_crypto_ipsec_sa/ios_detail_ntc.txt": ("show crypto ipsec sa detail", [
        ("Tunnel1", "2.2.2.2", "4500", "inbound", "0xABCD1234", "0x1234ABCD"),
        ("Tunnel1", "2.2.2.2", "4500", "outbound", "0x1234ABCD", "0x1234ABCD"),
        ("Tunnel2", "3.3.3.3", "4500", "inbound", "0x1234DCBA", "0x4321DCBA"),
        ("Tunnel2", "3.3.3.3", "4500", "outbound", "0x4321DCBA", "0x4321DCBA"),
    ]),
}


IPSEC["show_crypto_ipsec_sa/xe_ipv6_detailed_2.txt"] = ("show crypto ipsec sa ipv6 detail", [
    ("Tunnel1", "2001:DB8:1202::123", "500", "inbound", "0x7D6FAAB9", "0x6064CAD7"),
    ("Tunnel1", "2001:DB8:1202::123", "500", "outbound", "0x6064CAD7", "0x6064CAD7"),
    ("Tunnel1", "2001:DB8:1201::122", "500", "inbound", "0x6236E68", "0x3F4B6DE0"),
    ("Tunnel1", "2001:DB8:1201::122", "500", "outbound", "0x3F4B6DE0", "0x3F4B6DE0"),
])


@pytest.mark.parametrize("name", sorted(IPSEC))
def test_ipsec_sa(name: str) -> None:
    command, expected = IPSEC[name]
    records = parse(command, name)
    assert pick(records, "interface", "current_peer", "current_peer_port", "direction", "spi",
                "current_outbound_spi") == expected


def test_ipsec_sa_counters_and_settings() -> None:
    (inbound, _outbound) = parse("show crypto ipsec sa detail", "show_crypto_ipsec_sa/xe_detail_1.txt")
    # `#pkts decaps: 12, #pkts decrypt: 915, #pkts verify: 915` / `#pkts invalid sa (rcv) 0`
    assert (inbound["pkts_decaps"], inbound["pkts_decrypt"], inbound["pkts_invalid_sa_rcv"]) == ("12", "915", "0")
    assert (inbound["local_crypto_endpt"], inbound["in_use_settings"]) == ("70.70.70.70", "Tunnel, esn")
    (peer_in, _) = parse("show crypto ipsec sa peer 17.0.1.1", "show_crypto_ipsec_sa/xe_peer.txt")
    assert (peer_in["protected_vrf"], peer_in["pfs"], peer_in["dh_group"]) == ("VRF_CLOUD_11", "Y", "group20")
    (nat_in, *_rest) = parse("show crypto ipsec sa detail", "show_crypto_ipsec_sa/ios_detail_ntc.txt")
    assert nat_in["in_use_settings"] == "Transport UDP-Encaps"


def test_ntc_ipsec_sa_detail_agrees_or_fails_on_real_text() -> None:
    from textfsm import TextFSMError

    rows = ntc("show crypto ipsec sa detail", "show_crypto_ipsec_sa/ios_detail_ntc.txt")
    ours = parse("show crypto ipsec sa detail", "show_crypto_ipsec_sa/ios_detail_ntc.txt")
    assert {r["current_outbound_spi"] for r in ours} == {"0x1234ABCD", "0x4321DCBA"}
    assert "0x1234ABCD" in repr(rows) and "0x4321DCBA" in repr(rows)
    # ntc's template stops on IOS-XE's `in use settings ={Tunnel, esn}` (xe_detail_1), which ours reads
    with pytest.raises(Exception) as info:
        ntc("show crypto ipsec sa detail", "show_crypto_ipsec_sa/xe_detail_1.txt")
    assert isinstance(info.value, TextFSMError) or "esn" in str(info.value)


# --------------------------------------------------------------------------- isakmp / ikev2


def test_isakmp_sa_plain() -> None:
    records = parse("show crypto isakmp sa", "show_crypto_isakmp_sa/xe_plain.txt")
    assert pick(records, "address_family", "dst", "src", "state", "conn_id", "status", "deleted") == [
        ("IPv4", "100.0.10.2", "100.13.220.2", "QM_IDLE", "29609", "ACTIVE", ""),
        ("IPv4", "100.0.10.2", "100.12.82.2", "MM_NO_STATE", "29188", "ACTIVE", "deleted"),
        ("IPv4", "100.0.10.2", "100.11.106.2", "QM_IDLE", "29362", "ACTIVE", ""),
        ("IPv6", "100.0.10::2", "100.13.220::2", "QM_IDLE", "29610", "ACTIVE", ""),
        ("IPv6", "100.0.10::2", "100.12.82::2", "MM_NO_STATE", "29189", "ACTIVE", "deleted"),
        ("IPv6", "100.0.10::2", "100.11.106::2", "QM_IDLE", "29363", "ACTIVE", ""),
    ]


def test_isakmp_sa_detail() -> None:
    records = parse("show crypto isakmp sa detail", "show_crypto_isakmp_sa/xe_detail.txt")
    assert pick(records, "conn_id", "local", "remote", "ivrf", "status", "dh_group", "lifetime", "engine_conn_id") == [
        ("29609", "100.0.10.2", "100.13.220.2", "RED", "ACTIVE", "16", "00:01:47", "12609"),
        ("29493", "100.0.10.2", "100.12.134.2", "", "ACTIVE", "16", "00:01:12", "12493"),
        ("29610", "100.0.10::2", "100.13.220::2", "BLUE", "ACTIVE", "16", "00:01:47", "12609"),
        ("29494", "100.0.10::2", "100.12.134::2", "", "ACTIVE", "16", "00:01:12", ""),  # `Conn-id =  ????`
    ]


def test_ikev2_sa_plain_and_detailed() -> None:
    (plain,) = parse("show crypto ikev2 sa", "show_crypto_ikev2_sa/xe_plain.txt")
    assert (plain["tunnel_id"], plain["local"], plain["remote"], plain["status"], plain["dh_group"],
            plain["lifetime"], plain["active_time"]) == ("1", "66.66.66.1", "66.66.66.2", "READY", "16", "86400", "735")
    v6 = parse("show crypto ikev2 sa", "show_crypto_ikev2_sa/xe_plain_2.txt")
    assert v6[0]["address_family"] == "IPv6" and v6[0]["local"] == "2001:DB8:1101::131"
    (detail,) = parse("show crypto ikev2 sa detailed", "show_crypto_ikev2_sa/xe_detailed.txt")
    assert (detail["tunnel_id"], detail["local"], detail["local_port"], detail["remote"], detail["ivrf"],
            detail["local_spi"], detail["remote_spi"], detail["remote_id"], detail["dpd_interval"],
            detail["nat_t"]) == ("973", "92.1.121.1", "500", "22.1.1.2", "121", "000D3669857A0F82",
                                 "E0419B1DB02DE6AE", "22.1.1.2", "60", "not detected")


# --------------------------------------------------------------------------- show crypto session


def test_crypto_session_forms() -> None:
    (plain,) = parse("show crypto session", "show_crypto_session/xe_plain.txt")
    assert (plain["interface"], plain["session_status"], plain["peer"], plain["ike_version"]) == (
        "Tunnel13", "UP-ACTIVE", "11.0.1.1", ["IKEv1"])
    (detail,) = parse("show crypto session detail", "show_crypto_session/xe_detail.txt")
    assert (detail["uptime"], detail["phase1_id"], detail["ike_conn_id"], detail["inbound_pkts"],
            detail["outbound_pkts"]) == ("3d18h", "11.0.2.1", ["1042"], ["449282"], ["772730"])
    (remote,) = parse("show crypto session remote 1.1.1.1", "show_crypto_session/xe_remote.txt")
    assert (remote["profile"], remote["peer"], remote["ike_version"], remote["active_sas"]) == (
        "ASM-PROFILE", "1.1.1.1", ["IKEv2"], ["2", "0"])
    first, _second = parse("show crypto session remote 17.27.1.11 detail",
                           "show_crypto_session/xe_remote_detail_ikev1.txt")
    # NAT-T remote access: `Peer: 17.27.1.11 port 38452`, `IKEv1 SA: local 1.1.1.1/4500 remote 17.27.1.11/38452`
    assert (first["interface"], first["peer"], first["peer_port"], first["ivrf"], first["ike_local"],
            first["ike_capabilities"]) == ("Virtual-Access1325", "17.27.1.11", "38452", "10", ["1.1.1.1/4500"], ["DN"])


def test_crypto_session_ios_detail_and_ntc_agree() -> None:
    records = parse("show crypto session detail", "show_crypto_session/ios_detail_ikev2_ntc.txt", "cisco_ios")
    (rec,) = records
    assert (rec["peer"], rec["peer_port"], rec["fvrf"], rec["inbound_drop"]) == ("21.16.95.23", "4500", "INET", ["33920"])
    down = parse("show crypto session detail", "show_crypto_session/ios_detail_ntc.txt", "cisco_ios")
    assert [r["session_status"] for r in down][0] == "DOWN-NEGOTIATING"
    (theirs,) = ntc("show crypto session detail", "show_crypto_session/xe_detail.txt")
    (ours,) = parse("show crypto session detail", "show_crypto_session/xe_detail.txt")
    assert (theirs["peer"], theirs["session_status"], theirs["conn_id"]) == (ours["peer"], ours["session_status"],
                                                                           ours["ike_conn_id"][0])


def test_crypto_session_old_ike_sa_form() -> None:
    """IOS 12.4-era output (genie's IOS `ShowCryptoSession` golden output 1, an EzVPN server):
    `IKE SA:` lines with no version, one Active and one Inactive SA of the same peer.
    ntc-templates has no template for the plain command and its `detail` template stops at
    `Username:`; ours reads every field."""
    name = "show_crypto_session/ios_ike_sa_ezvpn_server_genie.txt"
    (rec,) = parse("show crypto session", name, "cisco_ios")
    assert (rec["interface"], rec["username"], rec["profile"], rec["group"], rec["assigned_address"],
            rec["session_status"], rec["peer"], rec["peer_port"]) == (
        "Virtual-Access2", "cisco", "prof", "easy", "10.3.3.4", "UP-ACTIVE", "10.1.1.2", "500")
    assert (rec["ike_version"], rec["ike_local"], rec["ike_remote"], rec["ike_status"]) == (
        ["IKE", "IKE"], ["10.1.1.1/500", "10.1.1.1/500"], ["10.1.1.2/500", "10.1.1.2/500"], ["Active", "Inactive"])
    assert (rec["ipsec_flow"], rec["active_sas"], rec["sa_origin"]) == (
        ["permit ip 0.0.0.0/0.0.0.0 host 3.3.3.4"], ["2"], ["crypto map"])
    (detail,) = parse("show crypto session detail", name, "cisco_ios")
    assert detail == rec
    from textfsm import TextFSMError
    from ntc_templates.parse import ParsingException

    for command in ("show crypto session", "show crypto session detail"):
        with pytest.raises((ParsingException, TextFSMError)):
            ntc(command, name)


def test_crypto_session_old_ike_sa_form_read_by_the_diagnosis() -> None:
    from collector.cryptoconfig import classify_config, parse_crypto_sessions, refine_with_session

    text = (REAL / "show_crypto_session/ios_ike_sa_ezvpn_server_genie.txt").read_text()
    (session,) = parse_crypto_sessions(text)  # two IKE SA lines, one session
    assert (session.interface, session.peer, session.ike_version, session.status) == (
        "Virtual-Access2", "10.1.1.2", "IKEv1", "UP-ACTIVE")
    # a virtual template both an ISAKMP and an IKEv2 profile use: only the session tells
    profile = classify_config(
        "crypto isakmp profile prof\n match identity group easy\n virtual-template 1\n"
        "crypto ikev2 profile P2\n match identity remote any\n virtual-template 1\n"
        "crypto ipsec profile vi\n set transform-set TS\n"
        "interface Virtual-Template1 type tunnel\n tunnel mode ipsec ipv4\n tunnel protection ipsec profile vi\n")
    assert profile.tunnels[0].ike_version == "unknown"
    (tunnel,) = refine_with_session(profile, text).tunnels
    assert (tunnel.ike_version, tunnel.observed_peers) == ("IKEv1", ("10.1.1.2",))
    assert tunnel.ike_reason.endswith("show crypto session shows IKEv1 SAs")


# --------------------------------------------------------------------------- QFP drops


def test_qfp_global_drops() -> None:
    records = parse("show platform hardware qfp active statistics drop", "show_platform_qfp/xe_statistics_drop.txt")
    assert pick(records, "drop_name", "packets", "octets") == [
        ("Ipv4NoAdj", "7", "296"), ("Ipv4NoRoute", "181", "7964"), ("PuntPerCausePolicerDrops", "2003", "184230"),
        ("UidbNotCfgd", "466391", "29312827"), ("UnconfiguredIpv4Fia", "6", "360"),
    ]


def test_qfp_ipsec_drops() -> None:
    short = parse("show platform hardware qfp active feature ipsec datapath drops",
                  "show_platform_qfp/xe_ipsec_data_drop.txt")
    assert pick(short, "drop_type", "drop_name", "packets")[:2] == [
        ("4", "IN_US_V4_PKT_SA_NOT_FOUND_SPI", "67643"), ("8", "IN_US_CL_V4_PKT_FAILED_POLICY", "11019")]
    assert len(short) == 7 and short[-1]["drop_name"] == "OCT_PKT_HIT_INVALID_SA"
    full = parse("show platform hardware qfp active feature ipsec datapath drops all",
                 "show_platform_qfp/xe_ipsec_datapath_drops_all.txt")
    by_name = {r["drop_name"]: r["packets"] for r in full}
    assert by_name["IN_US_V4_PKT_SA_NOT_FOUND_SPI"] == "0" and by_name["IN_TUNNEL_US_V4_PKT_IPSEC_NO_KEEP"] == "1"
    assert len(full) == 73


# --------------------------------------------------------------------------- show version / clock

VERSION = {
    "show_version/ios_12_4_c1800_ntc.txt": ("12.4(6)T2", "IOS", False, "1801", "stud-adsl"),
    "show_version/ios_15_1_c1900.txt": ("15.1(4)M8", "IOS", False, "CISCO1941/K9", "C1900"),
    "show_version/iosv_15_8_ntc.txt": ("15.8(3)M2", "IOS", False, "IOSv", "rtr-01"),
    "show_version/xe_15_3_asr1k_ntc.txt": ("15.3(2)S1", "IOS-XE", True, "ASR1001", "my_device"),
    "show_version/xe_16_3_asr1k.txt": ("16.3.20170410:103306", "IOS-XE", True, "ASR1006", "PE1"),
    "show_version/xe_16_6_isr4k.txt": ("16.6.5", "IOS-XE", False, "ISR4451-X/K9", "isr4k"),
    "show_version/xe_16_9_ntc.txt": ("16.9.3", "IOS-XE", False, "C9500-40X", "AKBTESTW01"),
    "show_version/xe_17_c8000v.txt": ("17.15.20240326:010319", "IOS-XE", False, "C8000V", "ott-mdt-vm7"),
}


@pytest.mark.parametrize("name", sorted(VERSION))
def test_show_version(name: str) -> None:
    (rec,) = parse("show version", name, "cisco_ios")
    assert (rec["version"], rec["os_family"], rec["is_asr1000"], rec["model"], rec["hostname"]) == VERSION[name]


@pytest.mark.parametrize("name", ["show_version/ios_12_4_c1800_ntc.txt", "show_version/xe_16_6_isr4k.txt"])
def test_show_version_ntc_agrees(name: str) -> None:
    (theirs,) = ntc("show version", name)
    (ours,) = parse("show version", name, "cisco_ios")
    assert (theirs["version"], theirs["hostname"], theirs["hardware"][0], theirs["serial"][0]) == (
        ours["version"], ours["hostname"], ours["model"], ours["serial"])


CLOCK = {
    "show_clock/xe_flag_star.txt": ("*", "04:45:00.857", "UTC", "Aug", "7", "2025"),
    "show_clock/xe_flag_dot.txt": (".", "04:37:54.849", "UTC", "Aug", "7", "2025"),
    "show_clock/xe_ntp_header.txt": ("", "18:56:04.554", "EST", "Oct", "17", "2016"),
    "show_clock/ios_ntc.txt": ("*", "18:57:38.347", "UTC", "Oct", "19", "2015"),
    "show_clock/ios_ntc_2.txt": (".", "18:57:38.347", "UTC", "Oct", "19", "2015"),
}


@pytest.mark.parametrize("name", sorted(CLOCK))
def test_show_clock(name: str) -> None:
    (rec,) = parse("show clock", name)
    assert (rec["flag"], rec["time"], rec["timezone"], rec["month"], rec["day"], rec["year"]) == CLOCK[name]
    (theirs,) = ntc("show clock", name)
    assert (theirs["time"], theirs["timezone"], theirs["year"]) == (rec["time"], rec["timezone"], rec["year"])


def test_ipsec_sa_ipv6_spi_not_available() -> None:
    # `spi: [Not Available]` SAs, endpoints on two lines, `ipv6 mtu idb`, `, initiator : False`
    records = parse("show crypto ipsec sa ipv6 detail", "show_crypto_ipsec_sa/xe_ipv6_detailed.txt")
    assert len(records) == 14 and {r["spi"] for r in records} == {""}
    first = records[0]
    assert (first["current_peer"], first["current_peer_port"], first["direction"], first["current_outbound_spi"],
            first["local_crypto_endpt"], first["remote_crypto_endpt"], first["ip_mtu_idb"], first["conn_id"],
            first["in_use_settings"], first["status"]) == (
        "4180::151:0:1", "12426", "inbound", "0x11C", "4180::56:0:1", "4180::151:0:1", "Tunnel2002", "2071",
        "Transport UDP-Encaps, esn", "ACTIVE(ACTIVE)")
    assert [r["current_peer"] for r in records[::2]] == [
        "4180::151:0:1", "4180::60:0:1", "4180::11:0:1", "4180::2:0:1", "4180::226:0:1", "4180::221:0:1", "4180::20:0:1"]


def test_show_event_manager_version() -> None:
    from collector.respond.facts import parse_eem_version

    text = (REAL / "show_event_manager_version" / "ios15_c3750x.txt").read_text()
    assert parse_eem_version(text) == 4.0
    assert parse_eem_version(text.replace("Version 4.00", "Version 3.00")) == 3.0
    assert parse_eem_version("% Invalid input detected at '^' marker.") is None
