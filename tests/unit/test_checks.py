"""Diagnosis checks: each fires on matching evidence and stays quiet otherwise."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from ipaddress import ip_address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.detect.events import Flow
from collector.diagnose.checks import (
    DiagnosisInputs,
    RouterSide,
    check_asr_logging,
    check_capture_timing,
    check_dpd,
    check_ikev2_invalid_syntax,
    check_nat_t_logging,
    check_new_spi_deleted,
    check_no_ike_sa_for_notify,
    check_occurrences,
    check_qfp_drops,
    check_recovery,
    check_rekey_bugs,
    check_sa_sync,
    check_spi_ff,
    qfp_growth,
    run_checks,
    side_tunnels,
    xe_release_before_2_3_2,
)
from collector.diagnose.findings import EvidenceRef, Severity, lines_as_evidence

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"

# Seed note's example: the branch 10.1.1.1 keeps sending on SPI 0xB761863E, the hub 10.10.1.2 drops it.
SPI = 0xB761863E
FLOW = Flow(router="hub", src=ip_address("10.1.1.1"), dst=ip_address("10.10.1.2"), spi=SPI, prot=50)
LOG = ("Sep  2 13:27:57.707: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
       "destaddr=10.10.1.2, prot=50, spi=0xB761863E(3076621886), srcaddr=10.1.1.1")


def cfg(name: str) -> str:
    return (CONFIGS / name).read_text()


# The hub's config seen as a static map towards the branch (the dynamic-map fixture, rewritten).
STATIC_HUB = """hostname hub
crypto isakmp policy 10
 authentication pre-share
crypto isakmp key k address 10.1.1.1
crypto map VPN-MAP 10 ipsec-isakmp
 set peer 10.1.1.1
 set transform-set TS
 match address ACL
interface GigabitEthernet0/0
 ip address 10.10.1.2 255.255.255.0
 crypto map VPN-MAP
"""


def side(name: str, config: str | None = None, **kw) -> RouterSide:
    return RouterSide(name=name, config_text=config, config_file=f"{name}/show_running-config.txt" if config else None,
                      debug_file=kw.pop("debug_file", f"{name}/debug.log"), **kw)


def make(**kw) -> DiagnosisInputs:
    base = dict(
        flow=FLOW,
        receiver=side("hub", cfg("dynamic_map.cfg")),
        sender=side("branch", cfg("static_map.cfg")),
        occurrences=2,
        occurrence_times=(datetime(2019, 9, 2, 13, 27, 57, tzinfo=timezone.utc),
                          datetime(2019, 9, 2, 13, 28, 58, tzinfo=timezone.utc)),
        log_file="hub/show_logging.txt",
        log_lines=(EvidenceRef("hub/show_logging.txt", 40, LOG), EvidenceRef("hub/show_logging.txt", 41, LOG)),
    )
    base.update(kw)
    return DiagnosisInputs(**base)


def ids(findings) -> list[str]:
    return [f.id for f in findings]


def only(findings, fid):
    hits = [f for f in findings if f.id == fid]
    assert len(hits) == 1, ids(findings)
    return hits[0]


# --- occurrences ---------------------------------------------------------------------------


def test_repeated_flow_is_out_of_sync():
    f = only(check_occurrences(make()), "flow-repeating")
    assert f.severity is Severity.HIGH
    assert "0xB761863E" in f.detail and "one per minute" in f.detail
    assert [e.line for e in f.evidence] == [40, 41]


def test_single_message_at_rekey_is_transient():
    found = check_occurrences(make(occurrences=1, rekey_near_event=True))
    assert ids(found) == ["transient-at-rekey"]
    assert found[0].severity is Severity.INFO and "No action" in found[0].recommendation


def test_single_message_without_rekey_is_watched():
    assert ids(check_occurrences(make(occurrences=1))) == ["single-occurrence"]
    assert check_occurrences(make(occurrences=0)) == []


# --- SPI tables ----------------------------------------------------------------------------


def test_sender_spi_missing_at_receiver_is_confirmed_out_of_sync():
    inputs = make(sender=replace(make().sender, outbound_spis={SPI}, ipsec_sa_file="branch/ipsec_sa.txt"),
                  receiver=replace(make().receiver, inbound_spis={0x1234ABCD}))
    f = only(check_sa_sync(inputs), "sa-out-of-sync")
    assert f.severity is Severity.HIGH
    assert "0xB761863E" in f.title and "confirmed" in f.title
    assert f.evidence[0].file == "branch/ipsec_sa.txt" and "0xB761863E" in f.evidence[0].text
    assert "approval" in f.recommendation


def test_spi_present_at_receiver_means_in_sync_now():
    inputs = make(sender=replace(make().sender, outbound_spis={SPI}),
                  receiver=replace(make().receiver, inbound_spis={SPI, 0x1234ABCD}))
    found = check_sa_sync(inputs)
    assert ids(found) == ["sa-in-sync"]
    assert "in sync" in found[0].title


def test_sender_rekeyed_away_from_logged_spi():
    inputs = make(sender=replace(make().sender, outbound_spis={0x22222222}),
                  receiver=replace(make().receiver, inbound_spis={0x22222222}))
    (f,) = check_sa_sync(inputs)
    assert f.id == "sa-in-sync" and "no longer uses the logged SPI 0xB761863E" in f.detail


def test_zero_outbound_spi_means_no_sa_not_a_mismatch():
    inputs = make(sender=replace(make().sender, outbound_spis={0}),
                  receiver=replace(make().receiver, inbound_spis=set()))
    (f,) = check_sa_sync(inputs)
    assert f.id == "sa-in-sync" and "no outbound SA" in f.title


def test_debug_lines_given_as_plain_strings_are_numbered():
    rx = replace(make().receiver, debug_file="hub/debug.log", debug_lines=DEBUG_RX.splitlines())
    f = only(check_no_ike_sa_for_notify(make(receiver=rx)), "no-ike-sa-for-notify")
    assert [(e.file, e.line) for e in f.evidence] == [("hub/debug.log", 2)]


def test_one_sided_spi_tables():
    rx_only = make(receiver=replace(make().receiver, inbound_spis={0x1}))
    assert ids(check_sa_sync(rx_only)) == ["sa-sync-unconfirmed"]
    tx_only = make(sender=replace(make().sender, outbound_spis={SPI}))
    assert ids(check_sa_sync(tx_only)) == ["sa-sync-unconfirmed"]
    assert check_sa_sync(make()) == []


def test_reverse_direction_out_of_sync():
    inputs = make(receiver=replace(make().receiver, outbound_spis={0xAAAA0001}),
                  sender=replace(make().sender, inbound_spis={0xBBBB0002}))
    f = only(check_sa_sync(inputs), "sa-out-of-sync-reverse")
    assert "0xAAAA0001" in f.title


# --- invalid SPI recovery ------------------------------------------------------------------


def test_recovery_missing_on_static_map_receiver():
    inputs = make(receiver=side("hub", STATIC_HUB))
    f = only(check_recovery(inputs), "recovery-missing")
    assert f.severity is Severity.MEDIUM and f.router == "hub"
    assert "crypto isakmp invalid-spi-recovery" in f.recommendation
    assert "only recovers" in f.recommendation and "both tunnel ends" in f.recommendation
    cited = {e.line: e.text for e in f.evidence}
    lines = STATIC_HUB.splitlines()
    assert cited and all(lines[n - 1].strip() == text or "<removed>" in text for n, text in cited.items())
    assert cited[5] == "crypto map VPN-MAP 10 ipsec-isakmp" and cited[6] == "set peer 10.1.1.1"
    assert {e.file for e in f.evidence} == {"hub/show_running-config.txt"}


def test_recovery_configured_and_applicable():
    inputs = make(receiver=side("hub", STATIC_HUB + "crypto isakmp invalid-spi-recovery\n"))
    found = check_recovery(inputs)
    assert ids(found) == ["recovery-configured"]
    assert found[0].evidence[0].line == 12


def test_recovery_present_on_dynamic_map_cannot_help():
    config = cfg("dynamic_map.cfg").replace("crypto isakmp keepalive", "crypto isakmp invalid-spi-recovery\ncrypto isakmp keepalive")
    f = only(check_recovery(make(receiver=side("hub", config))), "recovery-cannot-help")
    assert "dynamic crypto map" in f.detail
    assert "crypto isakmp invalid-spi-recovery" in [e.text for e in f.evidence]


def test_recovery_absent_on_dynamic_map_is_not_applicable():
    found = check_recovery(make())
    assert ids(found) == ["recovery-not-applicable"]


def test_recovery_present_on_ikev2_cannot_help():
    config = cfg("flexvpn_ikev2_svti.cfg")  # carries crypto isakmp invalid-spi-recovery, peer 103.1.1.1
    flow = replace(FLOW, src=ip_address("103.1.1.1"), dst=ip_address("61.128.1.1"))
    f = only(check_recovery(make(flow=flow, receiver=side("csr", config))), "recovery-cannot-help")
    assert "IKEv2" in f.detail and "ISAKMP (IKEv1)" in f.detail


def test_recovery_ezvpn_is_not_applicable():
    flow = replace(FLOW, src=ip_address("209.165.200.225"))
    f = only(check_recovery(make(flow=flow, receiver=side("ez", cfg("ezvpn_client.cfg")))), "recovery-not-applicable")
    assert "Easy VPN" in f.detail


def test_recovery_on_mixed_router_judges_the_peers_tunnel():
    # the flow comes from the GRE peer: GRE P2P -> applies, and the command is configured
    flow = replace(FLOW, src=ip_address("198.51.100.2"))
    found = check_recovery(make(flow=flow, receiver=side("mixed", cfg("mixed_router.cfg"))))
    assert ids(found) == ["recovery-configured"] and "Tunnel0" in found[0].detail
    # the flow comes from an unknown peer: only the dynamic map can carry it
    flow = replace(FLOW, src=ip_address("203.0.113.99"))
    found = check_recovery(make(flow=flow, receiver=side("mixed", cfg("mixed_router.cfg"))))
    assert ids(found) == ["recovery-cannot-help"] and "map WAN-MAP 65535" in found[0].detail


def test_recovery_without_config_is_silent():
    assert check_recovery(make(receiver=side("hub"))) == []


# --- DPD -----------------------------------------------------------------------------------


def test_dpd_missing_on_sender():
    found = check_dpd(make())  # branch: static map without keepalive; hub has isakmp keepalive
    f = only(found, "dpd-missing")
    assert f.router == "branch" and f.severity is Severity.MEDIUM
    assert "crypto isakmp keepalive 10 3 periodic" in f.recommendation
    assert "black-holed" in f.detail


def test_dpd_present_everywhere_is_silent():
    assert check_dpd(make(sender=side("branch", cfg("static_map_redacted.cfg")))) == []


def test_gre_keepalive_is_called_out_as_not_dpd():
    flow = replace(FLOW, src=ip_address("198.51.100.1"), dst=ip_address("198.51.100.2"))
    inputs = make(flow=flow, sender=side("gre-a", cfg("gre_p2p.cfg")), receiver=side("gre-b"))
    f = only(check_dpd(inputs), "dpd-missing")
    assert "not IKE DPD" in f.detail
    text = cfg("gre_p2p.cfg").splitlines()
    assert any(text[e.line - 1].strip() == "keepalive 5 10" for e in f.evidence)


def test_dpd_recommendation_for_ikev2():
    flow = replace(FLOW, src=ip_address("10.30.30.254"), dst=ip_address("192.0.2.9"))
    inputs = make(flow=flow, sender=side("mixed", cfg("mixed_router.cfg")), receiver=side("b9"))
    f = only(check_dpd(inputs), "dpd-missing")
    assert "Tunnel9" in f.title and "crypto ikev2 dpd 10 3 on-demand" in f.recommendation
    assert "crypto isakmp keepalive" not in f.recommendation


def test_dpd_missing_on_receiver_is_low():
    inputs = make(receiver=side("hub", STATIC_HUB), sender=side("branch", cfg("static_map_redacted.cfg")))
    f = only(check_dpd(inputs), "dpd-missing")
    assert f.router == "hub" and f.severity is Severity.LOW


# --- debug evidence ------------------------------------------------------------------------

DEBUG_RX = """*Sep  2 13:27:57.700: ISAKMP: (0):found peer pre-shared key matching 10.1.1.1
*Sep  2 13:27:57.707: ISAKMP-ERROR: (0):ignoring request to send delete notify (no ISAKMP sa) src 10.10.1.2 dst 10.1.1.1 for SPI 0xB761863E
*Sep  2 13:27:57.708: ISAKMP: (0):Deleting peer node by peer_reap for 10.1.1.1: 7EFF7C24E120
"""


def test_no_isakmp_sa_line_proves_no_recovery():
    rx = replace(make().receiver, debug_lines=lines_as_evidence("hub/debug.log", DEBUG_RX))
    f = only(check_no_ike_sa_for_notify(make(receiver=rx)), "no-ike-sa-for-notify")
    assert f.severity is Severity.HIGH
    assert [(e.file, e.line) for e in f.evidence] == [("hub/debug.log", 2)]
    assert "recovery cannot help" in f.recommendation.lower()  # dynamic map receiver


def test_no_isakmp_sa_line_with_static_receiver_recommends_recovery():
    rx = side("hub", STATIC_HUB, debug_lines=lines_as_evidence("hub/debug.log", DEBUG_RX))
    f = only(check_no_ike_sa_for_notify(make(receiver=rx)), "no-ike-sa-for-notify")
    assert "crypto isakmp invalid-spi-recovery" in f.recommendation


def test_old_ios_no_isakmp_sa_format_matches_by_peer():
    line = "ISAKMP: ignoring request to send delete notify (no ISAKMP sa) src 10.10.1.2 dst 10.1.1.1"
    rx = replace(make().receiver, debug_lines=(EvidenceRef("hub/debug.log", 7, line),))
    assert ids(check_no_ike_sa_for_notify(make(receiver=rx))) == ["no-ike-sa-for-notify"]


def test_no_isakmp_sa_for_another_spi_is_low():
    line = "ISAKMP-ERROR: (0):ignoring request to send delete notify (no ISAKMP sa) src 10.10.1.2 dst 10.9.9.9 for SPI 0x33C701EA"
    rx = replace(make().receiver, debug_lines=(EvidenceRef("hub/debug.log", 3, line),))
    assert ids(check_no_ike_sa_for_notify(make(receiver=rx))) == ["no-ike-sa-for-notify-other"]


def test_no_debug_line_no_finding():
    rx = replace(make().receiver, debug_lines=lines_as_evidence("hub/debug.log", DEBUG_RX.splitlines()[0]))
    assert check_no_ike_sa_for_notify(make(receiver=rx)) == []


# --- QFP -----------------------------------------------------------------------------------


def test_qfp_growth_rules():
    assert qfp_growth({"IpsecInput": 5}, {"IpsecInput": 9, "IN_US_V4_PKT_SA_NOT_FOUND_SPI": 3}) == {
        "IN_US_V4_PKT_SA_NOT_FOUND_SPI": 3, "IpsecInput": 4}  # absent before = 0 (only non-zero rows print)
    assert qfp_growth({"IpsecInput": 9}, {"IpsecInput": 2}) == {}  # went down: cleared, not growth
    assert qfp_growth(None, {"IpsecInput": 2}) == {"IpsecInput": None}
    assert qfp_growth({"IpsecInput": 1}, None) == {}


def _qfp(before, after, **kw):
    return make(receiver=replace(make().receiver, qfp_before=before, qfp_after=after, qfp_file="hub/qfp.txt"), **kw)


def test_qfp_growth_with_log_lines():
    f = only(check_qfp_drops(_qfp({"IN_US_V4_PKT_SA_NOT_FOUND_SPI": 100}, {"IN_US_V4_PKT_SA_NOT_FOUND_SPI": 64574})),
             "qfp-invalid-spi-drops")
    assert f.severity is Severity.MEDIUM and "+64474" in f.title
    assert f.evidence[0].file == "hub/qfp.txt"


def test_qfp_growth_without_log_lines():
    f = only(check_qfp_drops(_qfp({}, {"IpsecInput": 12}, occurrences=0)), "qfp-drops-unlogged")
    assert f.severity is Severity.HIGH and "may not log" in f.detail


def test_qfp_flat_or_unrelated_counters_are_silent():
    assert check_qfp_drops(_qfp({"IpsecInput": 5}, {"IpsecInput": 5})) == []
    assert check_qfp_drops(_qfp({}, {"IN_OCT_ANTI_REPLAY_FAIL": 342})) == []
    assert check_qfp_drops(make()) == []


def test_qfp_without_baseline_is_low():
    f = only(check_qfp_drops(_qfp(None, {"IpsecInput": 7})), "qfp-invalid-spi-drops")
    assert f.severity is Severity.LOW and "no baseline" in f.title


def test_qfp_growth_on_sender_means_reverse_direction():
    inputs = make(sender=replace(make().sender, qfp_before={}, qfp_after={"IpsecInput": 3}))
    f = only(check_qfp_drops(inputs), "qfp-invalid-spi-drops")
    assert f.router == "branch" and "reverse direction" in f.detail


# --- known-bug hints -----------------------------------------------------------------------


def test_cscvp16730_spi_beginning_with_ff():
    flow = replace(FLOW, spi=0xFF12AB34)
    f = only(check_spi_ff(make(flow=flow)), "bug-hint-cscvp16730")
    assert "matches the pattern of CSCvp16730" in f.title and f.severity is Severity.LOW
    stronger = make(flow=flow, receiver=replace(make().receiver, inbound_spis={0xFF12AB34}))
    assert check_spi_ff(stronger)[0].severity is Severity.MEDIUM
    assert check_spi_ff(make()) == []  # 0xB7...
    assert check_spi_ff(make(flow=replace(FLOW, spi=0x0FF12345))) == []  # FF not the leading byte


def test_cscsq59183_nat_t_without_log():
    growing = dict(qfp_before={}, qfp_after={"IpsecInput": 9})
    inputs = make(nat_t=True, occurrences=0, receiver=replace(make().receiver, **growing))
    assert ids(check_nat_t_logging(inputs)) == ["bug-hint-cscsq59183"]
    stale = make(nat_t=True, occurrences=0, sender=replace(make().sender, outbound_spis={SPI}),
                 receiver=replace(make().receiver, inbound_spis=set()))
    assert ids(check_nat_t_logging(stale)) == ["bug-hint-cscsq59183"]
    assert check_nat_t_logging(replace(inputs, nat_t=False)) == []
    assert check_nat_t_logging(replace(inputs, occurrences=1)) == []
    assert check_nat_t_logging(make(nat_t=True, occurrences=0)) == []  # no drop evidence


@pytest.mark.parametrize(
    ("version", "before"),
    [("02.03.01", True), ("IOS XE Version: 02.02.03", True), ("12.2(33)XNC1", True), ("12.2(33)XNB", True),
     ("12.2(33)XNC2", False), ("12.2(33)XND", False), ("03.09.01.S", False), ("16.06.05", False),
     ("2.3.2", False), ("15.3(2)S1", None)],
)
def test_xe_release_before_2_3_2(version, before):
    assert xe_release_before_2_3_2(version) is before


def test_asr_before_xe_2_3_2_does_not_log():
    old = make(receiver=replace(make().receiver, platform_family="ASR1000", software_version="02.03.01"))
    f = only(check_asr_logging(old), "hint-asr-before-xe-2-3-2")
    assert f.router == "hub" and "2.3.2" in f.detail
    new = make(receiver=replace(make().receiver, platform_family="ASR1000", software_version="03.09.01.S"))
    assert check_asr_logging(new) == []
    isr = make(receiver=replace(make().receiver, platform_family="IOS-XE", software_version="02.03.01"))
    assert check_asr_logging(isr) == []


def test_rekey_loss_bugs():
    f = only(check_rekey_bugs(make(rekey_near_event=True)), "bug-hint-rekey-loss")
    assert "CSCsl68327" in f.detail and "matches the pattern" in f.title
    asr = make(rekey_near_event=True, receiver=replace(make().receiver, platform_family="ASR1000"),
               sender=replace(make().sender, platform_family="IOS"))
    assert "CSCty30063" in check_rekey_bugs(asr)[0].detail and "CSCtr14840" in check_rekey_bugs(asr)[0].detail
    ios = make(rekey_near_event=True, receiver=replace(make().receiver, platform_family="IOS"),
               sender=replace(make().sender, platform_family="IOS"))
    assert "CSCtr14840" not in check_rekey_bugs(ios)[0].detail
    assert check_rekey_bugs(make(rekey_near_event=True, occurrences=1)) == []
    assert check_rekey_bugs(make(rekey_near_event=False)) == []


CREATE_SA_RX = """*Sep  2 13:27:55.625: ISAKMP-PAK: (1001):received packet from 10.1.1.1 dport 500 sport 500 Global (R) QM_IDLE
*Sep  2 13:27:55.627: ISAKMP: (1001):QM Responder gets spi
*Sep  2 13:27:55.629: IPSEC(create_sa): sa created,
  (sa) sa_dest= 10.10.1.2, sa_proto= 50,
    sa_spi= 0xB761863E(3076621886),
*Sep  2 13:27:55.703: ISAKMP: (1001):Successfully installed IPSEC SA (SPI:0xB761863E) on GigabitEthernet0/0
"""


def _xe_rekey(debug: str, **kw) -> DiagnosisInputs:
    rx = side("hub", STATIC_HUB, platform_family="IOS-XE",
              debug_lines=lines_as_evidence("hub/debug.log", debug))
    return make(receiver=rx, rekey_near_event=True, **kw)


def test_cscvn31824_receiver_new_spi():
    f = only(check_new_spi_deleted(_xe_rekey(CREATE_SA_RX)), "bug-hint-cscvn31824")
    assert [e.line for e in f.evidence if e.file == "hub/debug.log"] == [5, 6]
    assert "matches the pattern of CSCvn31824" in f.title


def test_cscvn31824_needs_every_condition():
    assert check_new_spi_deleted(replace(_xe_rekey(CREATE_SA_RX), rekey_near_event=False)) == []
    classic = _xe_rekey(CREATE_SA_RX)
    classic = replace(classic, receiver=replace(classic.receiver, platform_family="IOS"))
    assert check_new_spi_deleted(classic) == []
    outbound = CREATE_SA_RX.replace("sa_dest= 10.10.1.2", "sa_dest= 10.1.1.1").replace(
        "Successfully installed IPSEC SA (SPI:0xB761863E)", "Successfully installed IPSEC SA (SPI:0x11111111)")
    assert check_new_spi_deleted(_xe_rekey(outbound)) == []  # the SPI is the receiver's outbound SA
    ikev2 = _xe_rekey(CREATE_SA_RX)
    v2_config = STATIC_HUB + "crypto ikev2 profile P\n match identity remote address 10.1.1.1 255.255.255.255\n"
    v2_config = v2_config.replace(" set peer 10.1.1.1\n", " set peer 10.1.1.1\n set ikev2-profile P\n")
    ikev2 = replace(ikev2, receiver=replace(ikev2.receiver, profile=None, config_text=v2_config))
    assert check_new_spi_deleted(ikev2) == []


IKEV2_DEBUG = """IKEv2:(SESSION ID = 31,SA ID = 1):Received Packet [From 10.1.1.1:500/To 10.10.1.2:500/VRF i0:f0]
Initiator SPI : 1D418169B24BF95A - Responder SPI : A645046F734260C6 Message id: 4
IKEv2 INFORMATIONAL Exchange REQUEST
Payload contents:
 NOTIFY(INVALID_SPI)
IKEv2:(SESSION ID = 31,SA ID = 1):Sending Packet [To 10.1.1.1:500/From 10.10.1.2:500/VRF i0:f0]
Payload contents:
 NOTIFY(INVALID_SYNTAX)
"""


def test_cscvd40554_ikev2_invalid_syntax():
    rx = replace(make().receiver, debug_lines=lines_as_evidence("hub/debug.log", IKEV2_DEBUG))
    f = only(check_ikev2_invalid_syntax(make(receiver=rx)), "bug-hint-cscvd40554")
    assert [e.line for e in f.evidence] == [5, 8]
    assert "INVALID_SPI notify" in f.detail


def test_cscvd40554_silent_without_invalid_syntax_or_ikev2():
    rx = replace(make().receiver, debug_lines=lines_as_evidence("hub/debug.log", IKEV2_DEBUG.replace("INVALID_SYNTAX", "NO_PROPOSAL_CHOSEN")))
    assert check_ikev2_invalid_syntax(make(receiver=rx)) == []
    v1 = replace(make().receiver, debug_lines=(EvidenceRef("hub/debug.log", 1, "ISAKMP: something INVALID_SYNTAX"),))
    assert check_ikev2_invalid_syntax(make(receiver=v1)) == []


# --- capture timing (116005) ---------------------------------------------------------------


def test_aftermath_caveat_when_armed_after_repeat():
    f = only(check_capture_timing(make(armed_before_repeat=False)), "capture-aftermath-only")
    assert "aftermath" in f.title and "116005" in f.detail
    assert check_capture_timing(make(armed_before_repeat=True)) == []
    assert check_capture_timing(make(armed_before_repeat=None)) == []


def test_debug_missing_from_one_end():
    inputs = make(sender=replace(make().sender, debug_file=None))
    f = only(check_capture_timing(inputs), "debug-not-both-ends")
    assert "branch" in f.title and "hub" not in f.title


# --- run_checks ----------------------------------------------------------------------------

KNOWN_IDS = {
    "flow-repeating", "transient-at-rekey", "single-occurrence", "sa-out-of-sync", "sa-in-sync",
    "sa-sync-unconfirmed", "sa-out-of-sync-reverse", "recovery-missing", "recovery-not-applicable",
    "recovery-cannot-help", "recovery-configured", "dpd-missing", "no-ike-sa-for-notify",
    "no-ike-sa-for-notify-other", "qfp-invalid-spi-drops", "qfp-drops-unlogged", "bug-hint-cscvp16730",
    "bug-hint-cscsq59183", "hint-asr-before-xe-2-3-2", "bug-hint-rekey-loss", "bug-hint-cscvn31824",
    "bug-hint-cscvd40554", "capture-aftermath-only", "debug-not-both-ends",
}


def test_run_checks_full_incident():
    rx = side("hub", STATIC_HUB, platform_family="IOS-XE", inbound_spis={0x1234ABCD},
              debug_lines=lines_as_evidence("hub/debug.log", DEBUG_RX), qfp_before={}, qfp_after={"IpsecInput": 50})
    tx = side("branch", cfg("static_map.cfg"), outbound_spis={SPI})
    findings = run_checks(make(receiver=rx, sender=tx, armed_before_repeat=False))
    found = ids(findings)
    for expected in ("flow-repeating", "sa-out-of-sync", "no-ike-sa-for-notify", "recovery-missing", "dpd-missing",
                     "qfp-invalid-spi-drops", "capture-aftermath-only"):
        assert expected in found
    assert set(found) <= KNOWN_IDS
    ranks = [f.severity.rank for f in findings]
    assert ranks == sorted(ranks, reverse=True)
    data = json.loads(json.dumps([f.to_dict() for f in findings]))
    assert data[0]["severity"] == "high" and {"id", "title", "detail", "evidence", "recommendation", "router"} <= data[0].keys()


def test_run_checks_quiet_incident():
    # one message at rekey, SAs in sync, DPD on both ends, debugs armed beforehand on both ends
    quiet = make(
        occurrences=1, rekey_near_event=True, armed_before_repeat=True,
        receiver=side("hub", cfg("dynamic_map.cfg"), inbound_spis={SPI}),
        sender=side("branch", cfg("static_map_redacted.cfg"), outbound_spis={SPI}),
    )
    findings = run_checks(quiet)
    assert all(f.severity in (Severity.INFO,) for f in findings), [(f.id, f.severity) for f in findings]
    assert set(ids(findings)) == {"transient-at-rekey", "sa-in-sync", "recovery-not-applicable"}


def test_no_secret_in_findings():
    rx = side("hub", STATIC_HUB.replace("key k address", "key TopSecret99 address"))
    dumped = json.dumps([f.to_dict() for f in run_checks(make(receiver=rx))])
    assert "TopSecret99" not in dumped and "Sup3rS3cret" not in dumped


# --- robustness ----------------------------------------------------------------------------

_DEBUG_SAMPLES = [*DEBUG_RX.splitlines(), *CREATE_SA_RX.splitlines(), *IKEV2_DEBUG.splitlines()]
_spis = st.one_of(st.none(), st.frozensets(st.integers(0, 2**32 - 1), max_size=4))
_counters = st.one_of(st.none(), st.dictionaries(st.sampled_from(["IpsecInput", "IN_US_V4_PKT_SA_NOT_FOUND_SPI", "X"]),
                                                 st.integers(0, 10**6), max_size=3))


@settings(max_examples=150, deadline=None)
@given(
    spi=st.integers(0, 2**32 - 1),
    occurrences=st.integers(0, 5),
    debug=st.lists(st.one_of(st.sampled_from(_DEBUG_SAMPLES), st.text(max_size=80)), max_size=8),
    rx_in=_spis, tx_out=_spis, before=_counters, after=_counters,
    flags=st.tuples(st.sampled_from([None, True, False]), st.sampled_from([None, True, False]), st.booleans()),
    family=st.sampled_from([None, "IOS", "IOS-XE", "ASR1000"]), version=st.sampled_from([None, "02.03.01", "junk", "16.9.4"]),
)
def test_run_checks_never_raises(spi, occurrences, debug, rx_in, tx_out, before, after, flags, family, version):
    rx = replace(make().receiver, inbound_spis=rx_in, qfp_before=before, qfp_after=after, platform_family=family,
                 software_version=version, debug_lines=lines_as_evidence("hub/debug.log", "\n".join(debug)))
    tx = replace(make().sender, outbound_spis=tx_out)
    nat_t, armed, rekey = flags
    findings = run_checks(make(flow=replace(FLOW, spi=spi), occurrences=occurrences, receiver=rx, sender=tx,
                               nat_t=nat_t, armed_before_repeat=armed, rekey_near_event=rekey))
    assert set(ids(findings)) <= KNOWN_IDS
    json.dumps([f.to_dict() for f in findings])


# A hub as the lab's and many real ones are: a DMVPN tunnel, a dynamic crypto map and a
# FlexVPN virtual template, all open to peers no line names.
MIXED_HUB = "\n".join((CONFIGS / f"{name}.cfg").read_text()
                      for name in ("mgre_dynamic_hub", "dynamic_map", "flexvpn_hub_dvti"))


@pytest.mark.parametrize("over_gre, peer_ike, expected, said", [
    # nothing known of the SAs and no NHRP entry: any of the three could carry it
    (None, None, [("Tunnel0", "mgre-dynamic-nhrp"), ("map VPN-MAP 65535", "dynamic-crypto-map"),
                  ("Virtual-Template1", "dynamic-vti")], "only the dynamic tunnel(s) can carry it"),
    # the SAs carry GRE: DMVPN, with no NHRP entry now (a spoke that cannot re-register), dynamic
    (True, None, [("Tunnel0", "mgre-dynamic-nhrp")], "DMVPN peer 192.0.2.3 on Tunnel0"),
    # the SAs protect subnets, not GRE: not DMVPN, whatever the NHRP cache lacks
    (False, None, [("map VPN-MAP 65535", "dynamic-crypto-map"), ("Virtual-Template1", "dynamic-vti")],
     "the flow's SAs do not carry GRE, so it is not on a DMVPN tunnel"),
    # and the sender's tunnel is IKEv1: the IKEv2 virtual template cannot be this flow's
    (False, "IKEv1", [("map VPN-MAP 65535", "dynamic-crypto-map")],
     "the other end speaks IKEv1, so the IKEv2 tunnel(s) are left out"),
])
def test_the_receivers_tunnel_is_chosen_by_what_the_flows_sas_carry(over_gre, peer_ike, expected, said):
    side = RouterSide("hub", config_text=MIXED_HUB, nhrp_entries=(), flow_over_gre=over_gre, peer_ike=peer_ike)
    tunnels, how, _ = side_tunnels(side, ip_address("192.0.2.3"))
    assert [(t.name, t.kind.value) for t in tunnels] == expected
    assert said in how
