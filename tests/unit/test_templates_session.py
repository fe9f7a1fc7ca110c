"""Own template: show crypto session [detail] — tolerant of unknown lines."""

from __future__ import annotations

from pathlib import Path

from collector.parsing import default_registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"


def parse(command: str, fixture: str) -> list[dict]:
    result = default_registry().parse("cisco_xe", command, (FIXTURES / fixture).read_text())
    assert result.error is None, result.error
    assert result.template == "cisco_ios_show_crypto_session.textfsm"
    return result.records


def test_plain_sessions() -> None:
    recs = parse("show crypto session", "show_crypto_session.txt")
    assert [(r["interface"], r["session_status"], r["peer"], r["peer_port"]) for r in recs] == [
        ("Tunnel0", "UP-ACTIVE", "1.1.1.1", "500"),
        ("Virtual-Access2", "UP-ACTIVE", "10.1.1.2", "500"),
        ("Tunnel1", "UP-ACTIVE", "2001:DB8:ACAD:1::2", "500"),
        ("FastEthernet0/0", "DOWN-NEGOTIATING", "203.0.113.10", "500"),
    ]
    tunnel0, ezvpn, v6, down = recs
    assert (tunnel0["profile"], tunnel0["ike_version"], tunnel0["ike_local"], tunnel0["ike_remote"],
            tunnel0["ike_status"]) == ("FLEX-IKEV2", ["IKEv2"], ["2.2.2.2/500"], ["1.1.1.1/500"], ["Active"])
    assert tunnel0["ipsec_flow"] == ["permit 47 host 2.2.2.2 host 1.1.1.1"]
    assert (tunnel0["active_sas"], tunnel0["sa_origin"]) == (["2"], ["crypto map"])
    # EzVPN / remote access, older `IKE SA:` wording, two IKE SAs around a rekey
    assert (ezvpn["username"], ezvpn["group"], ezvpn["assigned_address"]) == ("cisco", "easy", "10.3.3.4")
    assert (ezvpn["ike_version"], ezvpn["ike_status"]) == (["IKE", "IKE"], ["Active", "Inactive"])
    assert ezvpn["ipsec_flow"] == ["permit ip 0.0.0.0/0.0.0.0 host 3.3.3.4"]
    # IPv6 peer: the IKE SA line wraps before `remote`; the SD-WAN `Interface: Tu1` mid-line is no new session
    assert (v6["ike_local"], v6["ike_remote"], v6["ike_status"]) == (
        ["2001:DB8:ACAD:1::1/500"], ["2001:DB8:ACAD:1::2/500"], ["Active"])
    assert v6["session_id"] == "15" and v6["ipsec_flow"] == ["permit ipv6 ::/0 ::/0"]
    assert (down["ike_version"], down["ike_status"], down["active_sas"]) == (["IKEv1"], ["Inactive"], ["0"])
    assert all(r["uptime"] == "" and r["ike_capabilities"] == [] for r in recs)  # no detail fields


def test_detail_sessions_with_unknown_line() -> None:
    recs = parse("show crypto session detail", "show_crypto_session_detail.txt")
    assert [r["interface"] for r in recs] == ["Tunnel13", "Tunnel14"]
    t13, t14 = recs
    assert (t13["profile"], t13["uptime"], t13["fvrf"], t13["ivrf"], t13["phase1_id"], t13["description"],
            t13["session_id"]) == ("GS-GRE:ISAKMP", "3d18h", "(none)", "(none)", "11.0.2.1", "(none)", "0")
    assert (t13["ike_capabilities"], t13["ike_conn_id"], t13["ike_lifetime"]) == (["D"], ["1042"], ["05:50:03"])
    assert (t13["inbound_pkts"], t13["inbound_drop"], t13["inbound_life"]) == (
        ["449282"], ["0"], ["KB Vol Rekey Disabled/3060"])
    assert (t13["outbound_pkts"], t13["outbound_drop"]) == (["772730"], ["0"])
    assert (t14["peer_port"], t14["fvrf"], t14["ivrf"], t14["description"]) == ("4500", "INET", "CORP",
                                                                               "branch 14 backup link")
    assert t14["ike_status"] == ["Active", "Inactive"] and t14["ike_capabilities"] == ["DN", "DN"]
    assert t14["ike_conn_id"] == ["1051", "1043"]
    assert t14["ipsec_flow"] == ["permit 47 host 11.0.2.2 host 11.0.3.1", "permit 47 host 11.0.2.2 host 11.0.3.2"]
    assert (t14["active_sas"], t14["inbound_drop"], t14["inbound_life"]) == (
        ["4", "0"], ["3", "0"], ["4607999/3469", "0/0"])


def test_only_legend_or_nothing() -> None:
    text = (FIXTURES / "show_crypto_session_detail.txt").read_text().split("Interface:")[0]
    for sample in (text, "", "Crypto session current status\n"):
        result = default_registry().parse("cisco_ios", "show crypto session detail", sample)
        assert result.error is None and result.records == []
