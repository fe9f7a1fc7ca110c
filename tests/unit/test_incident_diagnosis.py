"""Incident diagnosis: inputs rebuilt from a capture or a sealed bundle, SA tables, the report."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from ipaddress import ip_address
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.detect.events import Flow
from collector.diagnose import incident as incident_module
from collector.cli.diagnose import report_cmd
from collector.diagnose.report import render_markdown
from collector.diagnose.report_files import default_report_paths
from collector.diagnose.incident import (
    BundleError,
    RouterContext,
    bundle_file_name,
    build_inputs,
    command_matches,
    context_from_profile,
    diagnose,
    diagnose_bundle,
    diagnose_capture,
    load_bundle,
    parse_qfp_counters,
    read_ipsec_sa,
    read_version,
)
from collector.parsing import default_registry
from collector.command_results import CommandResult
from collector.evidence import CaptureResult, RouterCapture, write_incident_bundle

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"

# Cisco 115801's example flow: the branch 10.1.1.1 keeps sending on SPI 0xB761863E, the hub
# 10.10.1.2 no longer knows it.
SPI = 0xB761863E
FLOW = Flow(router="hub", src=ip_address("10.1.1.1"), dst=ip_address("10.10.1.2"), spi=SPI, prot=50)
CAPTURED = datetime(2019, 9, 2, 13, 30, 0, tzinfo=timezone.utc)
ARMED = datetime(2019, 9, 2, 13, 27, 30, tzinfo=timezone.utc)

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
STATIC_HUB_WITH_RECOVERY = STATIC_HUB + "crypto isakmp invalid-spi-recovery\n"


def sa_block(peer: str, local: str, outbound: int, inbound: list[int], outbound_sas: list[int] | None = None,
             port: int = 500, interface: str = "GigabitEthernet0/0", invalid: int = 0, udp: bool = False) -> str:
    settings = "Tunnel UDP-Encaps, " if udp else "Tunnel, "

    def sas(spis: list[int]) -> str:
        return "".join(
            f"      spi: 0x{s:X}({s})\n"
            "        transform: esp-256-aes esp-sha-hmac ,\n"
            f"        in use settings ={{{settings}}}\n"
            "        conn id: 2003, flow_id: SW:3, sibling_flags 80000040, crypto map: VPN-MAP\n"
            "        sa timing: remaining key lifetime (k/sec): (4607999/3200)\n"
            "        IV size: 16 bytes\n"
            "        replay detection support: Y\n"
            "        Status: ACTIVE(ACTIVE)\n\n"
            for s in spis)

    return (
        f"interface: {interface}\n"
        f"    Crypto map tag: VPN-MAP, local addr {local}\n\n"
        "   protected vrf: (none)\n"
        "   local  ident (addr/mask/prot/port): (192.168.2.0/255.255.255.0/0/0)\n"
        "   remote ident (addr/mask/prot/port): (192.168.1.0/255.255.255.0/0/0)\n"
        f"   current_peer {peer} port {port}\n"
        "     PERMIT, flags={origin_is_acl,}\n"
        "    #pkts encaps: 10, #pkts encrypt: 10, #pkts digest: 10\n"
        "    #pkts decaps: 5, #pkts decrypt: 5, #pkts verify: 5\n"
        f"    #pkts no sa (send) 0, #pkts invalid sa (rcv) {invalid}\n"
        "    #pkts encaps failed (send) 0, #pkts decaps failed (rcv) 0\n"
        f"     local crypto endpt.: {local}, remote crypto endpt.: {peer}\n"
        "     plaintext mtu 1438, path mtu 1500, ip mtu 1500, ip mtu idb GigabitEthernet0/0\n"
        f"     current outbound spi: 0x{outbound:X}({outbound})\n"
        "     PFS (Y/N): N, DH group: none\n\n"
        "     inbound esp sas:\n" + sas(inbound)
        + "     inbound ah sas:\n\n     inbound pcp sas:\n\n"
        "     outbound esp sas:\n" + sas(outbound_sas if outbound_sas is not None else ([outbound] if outbound else []))
        + "     outbound ah sas:\n\n     outbound pcp sas:\n"
    )


HUB_SA = sa_block("10.1.1.1", "10.10.1.2", outbound=0x0A0B0C0D, inbound=[0x11112222], invalid=42)
BRANCH_SA = sa_block("10.10.1.2", "10.1.1.1", outbound=SPI, inbound=[0x0A0B0C0D])

INV = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=10.10.1.2, prot=50, "
       "spi=0xB761863E(3076621886), srcaddr=10.1.1.1")
NOTIFY = "ISAKMP: ignoring request to send delete notify (no ISAKMP sa) src 10.10.1.2 dst 10.1.1.1 for SPI 0xB761863E"
LOG_HEADER = ("Syslog logging: enabled (0 messages dropped, 0 messages rate-limited, 0 flushes, 0 overruns)\n"
              "    Buffer logging:  level debugging, 12 messages logged, xml disabled,\n"
              "Log Buffer (1000000 bytes):\n")
HUB_LOG = LOG_HEADER + (
    "Sep  2 13:27:00.100: %SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.255.255.5)\n"
    f"Sep  2 13:27:57.707: {INV}\n"
    f"Sep  2 13:27:57.708: {NOTIFY}\n"
    f"Sep  2 13:28:58.011: {INV}\n"
    f"Sep  2 13:28:58.012: {NOTIFY}\n"
)
BRANCH_LOG = LOG_HEADER + (
    "Sep  2 13:27:40.000: ISAKMP: (0):found peer pre-shared key matching 10.10.1.2\n"
    "Sep  2 13:28:10.000: IPSEC(key_engine): got a queue event with 1 KMI message(s)\n"
)
HUB_VERSION = ("Cisco IOS Software, C2900 Software (C2900-UNIVERSALK9-M), Version 15.1(4)M4, RELEASE SOFTWARE (fc1)\n"
               "cisco CISCO2911/K9 (revision 1.0) with 491520K/32768K bytes of memory.\n")


def record(router: str, command: str, text: str | None, error: str | None = None) -> CommandResult:
    return CommandResult(router, command, text, CAPTURED, CAPTURED, error=error)


def router_capture(name: str, role: str, peer: str, *, config: str | None, sa: str | None, log: str | None,
                   extra: tuple[CommandResult, ...] = (), version: str | None = HUB_VERSION) -> RouterCapture:
    commands = [record(name, "show clock", "13:30:00.000 UTC Mon Sep 2 2019\n"),
                record(name, "show logging", log),
                record(name, f"show crypto ipsec sa peer {peer} detail", sa),
                record(name, "show running-config", config),
                record(name, "show version", version), *extra]
    return RouterCapture(name, role, "cisco_ios", peer, tuple(c for c in commands if c.text is not None or c.error),
                         0.0)


def armed_actions(*routers: str) -> tuple[dict, ...]:
    return tuple({"router": r, "do": [cmd], "undo": ["no " + cmd], "status": "undone"}
                 for r in routers for cmd in ("debug crypto condition peer ipv4 x", "debug crypto isakmp"))


def make_result(*, hub_config: str | None = STATIC_HUB, hub_sa: str | None = HUB_SA, branch_sa: str | None = BRANCH_SA,
                hub_log: str | None = HUB_LOG, branch_log: str | None = BRANCH_LOG, sender: str | None = "branch",
                actions: tuple[dict, ...] = armed_actions("hub", "branch"), trigger_lines: tuple[str, ...] = (),
                hub_extra: tuple[CommandResult, ...] = (), branch_config: str | None = None) -> CaptureResult:
    captures = [router_capture("hub", "receiver", "10.1.1.1", config=hub_config, sa=hub_sa, log=hub_log,
                               extra=hub_extra)]
    if sender is not None:
        captures.append(router_capture("branch", "sender", "10.10.1.2",
                                       config=branch_config or (CONFIGS / "static_map.cfg").read_text(),
                                       sa=branch_sa, log=branch_log))
    return CaptureResult(incident_id="inc-42", flow=FLOW, trigger_lines=trigger_lines, captures=tuple(captures),
                         armed_at=ARMED, captured_at=CAPTURED, armed_before_repeat=True, sender=sender,
                         actions=actions)


def ids(diagnosis) -> set[str]:
    return {f.id for f in diagnosis.findings}


# --------------------------------------------------------------------------------------------
# command names


@pytest.mark.parametrize("typed, canonical, kwargs, expected", [
    ("show running-config", "show running-config", {}, True),
    ("sh run", "show running-config", {}, True),
    ("show run | section crypto", "show running-config", {}, False),
    ("show running-config brief", "show running-config", {}, False),
    ("show crypto ipsec sa peer 10.1.1.1 detail", "show crypto ipsec sa", {"args": True}, True),
    ("show crypto ipsec sa peer 10.1.1.1 detail", "show crypto ipsec sa", {}, False),
    ("show crypto isakmp sa", "show crypto ipsec sa", {"args": True}, False),
    ("show logging | include INV_SPI", "show logging", {"filtered": True}, True),
    ("show logging | include INV_SPI", "show logging", {}, False),
    ("s logging", "show logging", {}, False),  # one letter is not an IOS-safe abbreviation here
    ("show platform hardware qfp active feature ipsec datapath drops all",
     "show platform hardware qfp active feature ipsec datapath drops", {"args": True}, True),
])
def test_command_matches(typed, canonical, kwargs, expected):
    assert command_matches(typed, canonical, **kwargs) is expected


def test_bundle_file_names_are_the_ones_the_bundle_writer_uses(tmp_path):
    result = make_result()
    bundle = write_incident_bundle(result, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    per_router: dict[str, int] = {}
    for entry in manifest["commands"]:
        index = per_router[entry["router"]] = per_router.get(entry["router"], 0) + 1
        assert entry["raw"] == bundle_file_name(entry["router"], index, entry["command"])


# --------------------------------------------------------------------------------------------
# show crypto ipsec sa


def test_sa_table_regex_reads_blocks_spis_and_status():
    table = read_ipsec_sa(BRANCH_SA + HUB_SA.replace("interface: GigabitEthernet0/0", "interface: Tunnel5"))
    assert table.method == "regex"
    assert [b.interface for b in table.blocks] == ["GigabitEthernet0/0", "Tunnel5"]
    first = table.blocks[0]
    assert (first.peer, first.peer_port, first.map_tag, first.local_addr) == ("10.10.1.2", 500, "VPN-MAP", "10.1.1.1")
    assert first.current_outbound_spi == SPI
    assert first.spis("inbound") == (0x0A0B0C0D,) and first.spis("outbound") == (SPI,)
    assert first.entries[0].status == "ACTIVE(ACTIVE)" and first.entries[0].lifetime == "4607999 KB / 3200 s"
    assert table.blocks[1].invalid_sa_rcv == 42
    assert table.outbound_spis == {SPI, 0x0A0B0C0D}
    assert table.inbound_spis == {0x0A0B0C0D, 0x11112222}
    assert table.nat_t is False


def test_sa_table_from_the_template_equals_the_regex_reading():
    text = BRANCH_SA + sa_block("10.10.1.3", "10.1.1.1", outbound=0, inbound=[])
    parsed = default_registry().parse("cisco_ios", "show crypto ipsec sa peer 10.10.1.2 detail", text)
    assert parsed.template and parsed.records
    from_template = read_ipsec_sa(text, parsed.records)
    assert from_template.method == "template"
    assert from_template.blocks == read_ipsec_sa(text).blocks
    assert from_template.blocks[1].current_outbound_spi == 0  # "no SA" stays visible


def test_sa_table_falls_back_to_regex_when_records_miss_an_sa():
    parsed = default_registry().parse("cisco_ios", "show crypto ipsec sa", BRANCH_SA)
    truncated = [r for r in parsed.records if r.get("direction") != "inbound"]
    table = read_ipsec_sa(BRANCH_SA, truncated)
    assert table.method == "regex"
    assert table.inbound_spis == {0x0A0B0C0D}


def test_sa_table_nat_t_from_port_4500_or_udp_encaps():
    assert read_ipsec_sa(sa_block("10.1.1.1", "10.10.1.2", 5, [6], port=4500)).nat_t is True
    assert read_ipsec_sa(sa_block("10.1.1.1", "10.10.1.2", 5, [6], udp=True)).nat_t is True
    assert read_ipsec_sa("").nat_t is None


def test_sa_table_toward_peer_keeps_only_that_peer():
    table = read_ipsec_sa(BRANCH_SA + sa_block("10.9.9.9", "10.1.1.1", outbound=7, inbound=[8]))
    assert table.toward("10.9.9.9").outbound_spis == {7}
    assert table.toward("10.2.2.2").blocks == ()
    peerless = read_ipsec_sa("     current outbound spi: 0x5(5)\n")
    assert peerless.toward("10.2.2.2").outbound_spis == {5}


def test_sa_table_current_peer_colon_port_form():
    text = HUB_SA.replace("current_peer 10.1.1.1 port 500", "current_peer: 10.1.1.1:4500")
    block = read_ipsec_sa(text).blocks[0]
    assert (block.peer, block.peer_port) == ("10.1.1.1", 4500)


def test_sa_table_ignores_spi_lines_outside_a_section():
    table = read_ipsec_sa("     current outbound spi: 0x5(5)\n      spi: 0x9(9)\n")
    assert table.inbound_spis == frozenset() and table.outbound_spis == {5}


# --------------------------------------------------------------------------------------------
# QFP and show version


def test_qfp_counters_from_both_commands():
    global_drops = ("Load for five secs: 2%/1%; one minute: 9%; five minutes: 8%\n"
                    "Time source is NTP, 07:47:11.317 EST Thu Sep 8 2016\n"
                    "-------------------------------------------------------------------------\n"
                    "Global Drop Stats                         Packets                  Octets\n"
                    "-------------------------------------------------------------------------\n"
                    "IpsecInput                                   120                   9000\n"
                    "Ipv4NoAdj                                      7                    296\n")
    datapath = ("Drop Type  Name                                     Packets\n"
                "        4  IN_US_V4_PKT_SA_NOT_FOUND_SPI                           64574\n"
                "       19  IN_OCT_ANTI_REPLAY_FAIL                                   342\n")
    assert parse_qfp_counters(global_drops) == {"IpsecInput": 120, "Ipv4NoAdj": 7}
    assert parse_qfp_counters(datapath) == {"IN_US_V4_PKT_SA_NOT_FOUND_SPI": 64574, "IN_OCT_ANTI_REPLAY_FAIL": 342}


@pytest.mark.parametrize("text, expected", [
    (HUB_VERSION, ("15.1(4)M4", "IOS")),
    ("Cisco IOS Software, IOS-XE Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), Version 15.3(2)S1, RELEASE\n"
     "IOS XE Version: 03.09.01.S\ncisco ASR1001 (1RU) processor with 1133939K/6147K bytes of memory.\n",
     ("03.09.01.S", "ASR1000")),
    ("Cisco IOS XE Software, Version 16.06.05\nCisco IOS Software [Everest], ISR Software "
     "(X86_64_LINUX_IOSD-UNIVERSALK9-M), Version 16.6.5, RELEASE SOFTWARE (fc3)\n", ("16.06.05", "IOS-XE")),
    ("", (None, None)),
])
def test_read_version(text, expected):
    assert read_version(text) == expected


# --------------------------------------------------------------------------------------------
# Inputs from a capture


def test_desync_with_static_receiver_is_confirmed_and_recommends_recovery():
    d = diagnose(make_result())
    inputs = d.inputs
    assert inputs.occurrences == 2
    assert [t.isoformat() for t in inputs.occurrence_times] == ["2019-09-02T13:27:57.707000",
                                                               "2019-09-02T13:28:58.011000"]
    assert inputs.receiver.inbound_spis == {0x11112222}
    assert inputs.sender.outbound_spis == {SPI}
    assert inputs.receiver.software_version == "15.1(4)M4"
    assert inputs.armed_before_repeat is True and inputs.nat_t is False
    assert {"flow-repeating", "sa-out-of-sync", "recovery-missing", "no-ike-sa-for-notify"} <= ids(d)
    markdown, data = diagnose_capture(make_result())
    assert "SAs out of sync, confirmed: branch encrypts with SPI 0xB761863E, unknown to hub" in markdown
    assert data["verdict"]["key"] == "out-of-sync-confirmed"
    assert "Add `crypto isakmp invalid-spi-recovery` (global configuration) on hub" in markdown
    assert any(s["finding"] == "recovery-missing" for s in data["next_steps"])


def test_a_natted_receivers_sender_is_read_and_advised_by_the_address_it_uses():
    """The hub sits behind NAT and logs its inside address 10.10.1.2; the branch knows it as
    203.0.113.20 (the agent found that from the branch's SA with the logged SPI, and
    captured the branch by it): the branch's SAs and advice name that address."""
    public = "203.0.113.20"
    result = make_result()
    branch = router_capture("branch", "sender", public, config=(CONFIGS / "static_map.cfg").read_text(),
                            sa=sa_block(public, "10.1.1.1", outbound=SPI, inbound=[0x0A0B0C0D], port=4500, udp=True),
                            log=BRANCH_LOG)
    result = replace(result, captures=(result.captures[0], branch))
    d = diagnose(result)
    assert d.inputs.peer_of_sender == ip_address(public)
    assert d.inputs.sender.outbound_spis == {SPI} and d.inputs.nat_t is True
    assert "sa-out-of-sync" in ids(d)
    markdown, data = diagnose_capture(result)
    assert f"branch knows the receiver as {public}, not 10.10.1.2" in markdown
    assert f"clear crypto sa peer {public}" in markdown and "clear crypto sa peer 10.10.1.2" not in markdown
    assert "no SA with this peer" not in markdown
    # without NAT the sender's capture names destaddr itself: nothing is said about it
    plain, _ = diagnose_capture(make_result())
    assert "knows the receiver as" not in plain


def test_desync_with_dynamic_receiver_does_not_recommend_recovery():
    result = make_result(hub_config=(CONFIGS / "dynamic_map.cfg").read_text())
    d = diagnose(result)
    assert "sa-out-of-sync" in ids(d) and "recovery-not-applicable" in ids(d)
    assert "recovery-missing" not in ids(d)
    markdown, data = diagnose_capture(result)
    assert "out of sync, confirmed" in markdown and "0xB761863E" in markdown
    assert "Add `crypto isakmp invalid-spi-recovery`" not in markdown
    assert "Enable `crypto isakmp invalid-spi-recovery`" not in markdown
    assert not any("invalid-spi-recovery" in s["text"] and "Add" in s["text"] for s in data["next_steps"])


def test_recovery_configured_is_reported_not_recommended():
    d = diagnose(make_result(hub_config=STATIC_HUB_WITH_RECOVERY))
    assert "recovery-configured" in ids(d) and "recovery-missing" not in ids(d)


def test_evidence_points_at_real_lines_of_the_bundle(tmp_path):
    result = make_result()
    markdown, data = diagnose_capture(result)
    bundle = write_incident_bundle(result, tmp_path, report=(markdown, data))
    cited = [(e["file"], e["line"], e["text"]) for f in data["findings"] for e in f["evidence"] if e["line"]]
    assert cited
    for file, line, text in cited:
        lines = (bundle / file).read_text().splitlines()
        assert lines[line - 1].strip() == text.strip(), (file, line)


def test_occurrence_from_syslog_trigger_is_not_counted_twice():
    same = f"<188>91: Sep  2 13:27:57.707: hub {INV}"  # the first buffer line, as a datagram
    later = f"Sep  2 13:29:59.000: {INV}"  # rotated out of the buffer, only seen by syslog
    d = diagnose(make_result(trigger_lines=(same, later)))
    assert d.inputs.occurrences == 3
    assert any(r.file == "manifest.json (trigger_lines)" for r in d.inputs.log_lines)


def test_other_flows_do_not_count():
    other = INV.replace("srcaddr=10.1.1.1", "srcaddr=10.1.1.9")
    d = diagnose(make_result(hub_log=LOG_HEADER + f"Sep  2 13:27:57.707: {other}\n"))
    assert d.inputs.occurrences == 0


def test_debug_capture_seen_when_armed_or_debug_lines_present():
    not_armed = diagnose(make_result(actions=(), hub_log=LOG_HEADER + f"Sep  2 13:27:57.707: {INV}\n"))
    assert not_armed.inputs.receiver.debug_file is None  # no debug lines, never armed
    assert not_armed.inputs.sender.debug_file is not None  # its buffer holds debug output
    assert "debug-not-both-ends" in ids(not_armed)
    armed = diagnose(make_result())
    assert armed.inputs.receiver.debug_file == "hub/02_show_logging.txt"
    assert any("ignoring request" in r.text for r in armed.inputs.receiver.debug_lines)
    assert "debug-not-both-ends" not in ids(armed)


def test_rekey_near_the_first_message():
    install = "Sep  2 13:27:50.000: ISAKMP: (1001):Successfully installed IPSEC SA (SPI:0x11112222) on Gi0/0\n"
    near = diagnose(make_result(hub_log=HUB_LOG + install)).inputs
    assert near.rekey_near_event is True
    far = diagnose(make_result(hub_log=HUB_LOG + install.replace("13:27:50", "13:20:00"))).inputs
    assert far.rekey_near_event is False


def test_qfp_before_and_after_when_run_twice():
    cmd = "show platform hardware qfp active feature ipsec datapath drops all"
    extra = (record("hub", cmd, "        4  IN_US_V4_PKT_SA_NOT_FOUND_SPI   100\n"),
             record("hub", cmd, "        4  IN_US_V4_PKT_SA_NOT_FOUND_SPI   160\n"))
    side = diagnose(make_result(hub_extra=extra)).inputs.receiver
    assert side.qfp_before == {"IN_US_V4_PKT_SA_NOT_FOUND_SPI": 100}
    assert side.qfp_after == {"IN_US_V4_PKT_SA_NOT_FOUND_SPI": 160}
    once = diagnose(make_result(hub_extra=extra[:1])).inputs.receiver
    assert once.qfp_before is None and once.qfp_after == {"IN_US_V4_PKT_SA_NOT_FOUND_SPI": 100}


def test_context_fills_in_a_config_the_capture_lacks():
    result = make_result(hub_config=None)
    assert diagnose(result).inputs.receiver.profile is None
    inputs, _ = build_inputs(result, contexts={"hub": RouterContext(running_config=STATIC_HUB,
                                                                    platform_family="ASR1000")})
    assert inputs.receiver.profile is not None and inputs.receiver.profile.tunnels
    assert "agent cache" in inputs.receiver.config_label
    assert inputs.receiver.platform_family == "IOS"  # show version in the capture wins over the context


def test_context_from_the_agents_device_profile():
    from collector.cryptoconfig import classify_config
    from collector.respond.facts import DeviceProfile

    profile = DeviceProfile(name="hub", os_family="iosxe", model="ASR1001-X", version="03.09.01.S", is_asr1000=True,
                            crypto=classify_config(STATIC_HUB), running_config=STATIC_HUB, addresses=())
    context = context_from_profile(profile, qfp_baseline={"IpsecInput": 5})
    assert context == RouterContext(running_config=STATIC_HUB, software_version="03.09.01.S",
                                    platform_family="ASR1000", qfp_baseline={"IpsecInput": 5})
    result = make_result(hub_config=None)
    no_version = replace(result.captures[0], commands=tuple(c for c in result.captures[0].commands
                                                            if c.command != "show version"))
    result = replace(result, captures=(no_version, result.captures[1]))
    markdown, data = diagnose_capture(result, contexts={"hub": context})
    assert data["receiver"]["platform_family"] == "ASR1000"
    assert "recovery-missing" in {f["id"] for f in data["findings"]}


def test_sender_outside_the_inventory():
    d = diagnose(make_result(sender=None, actions=armed_actions("hub")))
    assert d.inputs.sender.name == "10.1.1.1 (not in inventory)"
    assert d.inputs.sender.outbound_spis is None
    assert "sa-sync-unconfirmed" in ids(d)
    markdown, data = diagnose_capture(make_result(sender=None))
    assert "not in the inventory" in markdown
    assert data["verdict"]["key"] == "out-of-sync-likely"


def test_failed_command_is_not_mistaken_for_empty_output():
    result = make_result(hub_sa=None)
    hub = result.captures[0]
    refused = record("hub", "show crypto ipsec sa peer 10.1.1.1 detail", None, error="router refused")
    result = replace(result, captures=(replace(hub, commands=hub.commands + (refused,)), result.captures[1]))
    inputs = diagnose(result).inputs
    assert inputs.receiver.inbound_spis is None  # not captured, not "no SA"


def test_diagnose_capture_never_raises(monkeypatch):
    def broken(_inputs):
        raise RuntimeError("check exploded")

    monkeypatch.setattr(incident_module, "run_checks", broken)
    markdown, data = diagnose_capture(make_result())
    assert data["verdict"]["key"] == "diagnosis-failed"
    assert "check exploded" in markdown and "intact" in markdown


# --------------------------------------------------------------------------------------------
# Bundles on disk


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bundle_diagnosis_equals_capture_diagnosis_and_leaves_the_bundle_alone(tmp_path):
    result = make_result()
    markdown, data = diagnose_capture(result)
    bundle = write_incident_bundle(result, tmp_path, report=(markdown, data))
    before = _hashes(bundle)
    again_md, again = diagnose_bundle(bundle)
    assert again["findings"] == data["findings"]
    assert again["sa_tables"] == data["sa_tables"]
    assert again["verdict"] == data["verdict"]
    assert again_md.replace(f"bundle {bundle.name}", "capture") == markdown
    assert _hashes(bundle) == before


def test_load_bundle_rebuilds_the_capture(tmp_path):
    result = make_result()
    bundle = write_incident_bundle(result, tmp_path)
    loaded = load_bundle(bundle)
    assert loaded.result.flow == FLOW
    assert loaded.result.sender == "branch"
    assert [c.router for c in loaded.result.captures] == ["hub", "branch"]
    assert [r.command for r in loaded.result.captures[0].commands] == [r.command for r in result.captures[0].commands]
    assert loaded.result.captures[0].commands[1].text == HUB_LOG
    assert loaded.integrity_problems == ()


def test_bundle_changed_after_sealing_is_reported(tmp_path):
    bundle = write_incident_bundle(make_result(), tmp_path)
    (bundle / "hub" / "02_show_logging.txt").write_text("tampered\n")
    (bundle / "branch" / "04_show_running_config.txt").unlink()
    markdown, data = diagnose_bundle(bundle)
    problems = data["capture"]["integrity_problems"]
    assert any("hub/02_show_logging.txt" in p and "changed" in p for p in problems)
    assert any("branch/04_show_running_config.txt" in p and "missing" in p for p in problems)
    assert "Bundle integrity" in markdown


def test_bundle_paths_outside_the_bundle_are_not_read(tmp_path):
    bundle = write_incident_bundle(make_result(), tmp_path / "b")
    secret = tmp_path / "outside.txt"
    secret.write_text(HUB_SA)
    manifest = json.loads((bundle / "manifest.json").read_text())
    for entry in manifest["commands"]:
        if entry["command"].startswith("show crypto ipsec sa") and entry["router"] == "hub":
            entry["raw"] = "../../outside.txt"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_bundle(bundle)
    hub = loaded.result.captures[0]
    assert all(r.text is None for r in hub.commands if r.command.startswith("show crypto ipsec sa"))


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("x"), "not a directory"),
    (lambda p: p.mkdir(), "no manifest.json"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text("{not json")), "unreadable manifest"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text('{"kind": "collect"}')), "not an invalid-SPI"),
    (lambda p: (p.mkdir(), (p / "manifest.json").write_text('{"kind": "invalid-spi", "flow": {}}')),
     "malformed manifest"),
])
def test_not_a_bundle(tmp_path, setup, message):
    path = tmp_path / "thing"
    setup(path)
    with pytest.raises(BundleError, match=message):
        load_bundle(path)


# --------------------------------------------------------------------------------------------
# collector report


def test_report_command_writes_beside_the_bundle(tmp_path):
    bundle = write_incident_bundle(make_result(), tmp_path / "bundles")
    before = _hashes(bundle)
    result = CliRunner().invoke(report_cmd, [str(bundle)])
    assert result.exit_code == 0, result.output
    md_path, json_path = default_report_paths(bundle)
    assert md_path == bundle.parent / f"{bundle.name}.report.md"
    assert "out of sync, confirmed" in md_path.read_text()
    assert json.loads(json_path.read_text())["verdict"]["key"] == "out-of-sync-confirmed"
    assert "verdict: SAs out of sync, confirmed" in result.stdout
    assert _hashes(bundle) == before


def test_report_command_stdout_and_out(tmp_path):
    bundle = write_incident_bundle(make_result(), tmp_path / "bundles")
    runner = CliRunner()
    printed = runner.invoke(report_cmd, [str(bundle), "--stdout"])
    assert printed.exit_code == 0 and printed.stdout.startswith("# Invalid SPI incident on hub")
    as_json = runner.invoke(report_cmd, [str(bundle), "--stdout", "--json"])
    assert json.loads(as_json.stdout)["flow"]["spi"] == "0xB761863E"
    out = tmp_path / "reports" / "inc.md"
    written = runner.invoke(report_cmd, [str(bundle), "--out", str(out)])
    assert written.exit_code == 0
    assert out.read_text().startswith("# Invalid SPI incident") and (tmp_path / "reports" / "inc.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["{bundle}", "--out", "{bundle}/report2.md"], "inside the bundle"),
    (["{bundle}", "--out", "x.md", "--stdout"], "either --stdout or --out"),
    (["{bundle}", "--json"], "--json only applies with --stdout"),
    (["{tmp}/nothing-here"], "does not exist"),
    (["{bundle}.tar.gz"], "give the bundle folder"),
])
def test_report_command_user_errors_are_one_line_exit_2(tmp_path, args, message):
    bundle = write_incident_bundle(make_result(), tmp_path / "bundles")
    argv = [a.format(bundle=bundle, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(report_cmd, argv, standalone_mode=True)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (bundle / "report2.md").exists()


def test_a_clock_read_before_arming_places_lines_between_the_readings_and_survives_the_bundle(tmp_path):
    """The hub's clock was 60 s slow when read before arming (agent 13:27:29) and right at
    capture (13:30:00): NTP stepped it in between. Its lines between the two readings are
    interpolated, the report says why, and the bundle read back gives the same report."""
    from dataclasses import replace

    from collector.core.results import LogSnapshot
    pre_arm_at = ARMED - timedelta(seconds=1)
    snapshot = LogSnapshot("hub", HUB_LOG, pre_arm_at, "13:26:29.000 UTC Mon Sep 2 2019\n", (pre_arm_at, pre_arm_at))
    result = replace(make_result(), pre_arm=(snapshot,))
    markdown, data = diagnose_capture(result)
    assert ("- Note: hub: its clock advanced 211.0 s between the reading before arming and the capture's while "
            "the agent's advanced 151.0 s") in markdown
    first = data["timeline_summary"]["first_invalid_spi"]
    # stamped 13:27:57.707: 88.707 of the router's 211 s after its first reading -> 151/211 of that on the agent's
    expected = pre_arm_at + timedelta(seconds=88.707 * 151 / 211)
    assert abs(datetime.fromisoformat(first["agent_time"]) - expected) < timedelta(milliseconds=1)

    bundle = write_incident_bundle(result, tmp_path, report=(markdown, data))
    loaded = load_bundle(bundle)
    assert loaded.result.pre_arm == (snapshot,)
    again_md, again = diagnose_bundle(bundle)
    assert again_md.replace(f"bundle {bundle.name}", "capture") == markdown


# --------------------------------------------------------------------------------------------
# each end's arm time: kept in the bundle and placed among the key lines


def _key_line_rows(markdown: str) -> list[tuple[datetime, str, str]]:
    """The report's key-lines table as (agent time, router, text) rows."""
    table = markdown.split("Key lines, both routers merged")[1].split("\n\n")[1]
    rows = []
    for line in table.splitlines()[2:]:
        time, router, text = (cell.strip() for cell in line.strip("|").split("|", 2))
        rows.append((datetime.fromisoformat(time.replace("\\", "")), router, text))
    return rows


def test_each_ends_arm_time_survives_the_bundle_and_splits_the_key_lines_where_it_happened(tmp_path):
    # the branch armed first; the hub between its first invalid-SPI line and the repeat
    ends = {"branch": datetime(2019, 9, 2, 13, 27, 31, tzinfo=timezone.utc),
            "hub": datetime(2019, 9, 2, 13, 28, 20, tzinfo=timezone.utc)}
    result = replace(make_result(), armed_ends=ends)
    loaded = load_bundle(write_incident_bundle(result, tmp_path)).result
    assert loaded.armed_ends == ends

    markdown = render_markdown(diagnose(loaded))
    rows = _key_line_rows(markdown)
    marks = [(at, router) for at, router, text in rows if "debugs armed" in text]
    assert marks == sorted((at, router) for router, at in ends.items())
    times = [at for at, _router, _text in rows]
    assert times == sorted(times)  # each mark sits among the lines by its own time
    logged = [(at, router) for at, router, text in rows if "debugs armed" not in text]
    assert any(at < ends["hub"] for at, router in logged if router == "hub")
    assert any(at > ends["hub"] for at, router in logged if router == "hub")
    sentence = next(line for line in markdown.splitlines() if line.startswith("- Debugs were armed"))
    assert f"branch at {ends['branch'].isoformat()}" in sentence and f"hub at {ends['hub'].isoformat()}" in sentence
    assert f"marked at {ARMED.isoformat()}" in sentence


def test_a_bundle_without_arm_times_reports_the_incidents_moment_alone(tmp_path):
    loaded = load_bundle(write_incident_bundle(make_result(), tmp_path)).result
    assert loaded.armed_ends == {}
    markdown = render_markdown(diagnose(loaded))
    assert not [row for row in _key_line_rows(markdown) if "debugs armed" in row[2]]
    assert f"- Debugs were armed at {ARMED.isoformat()}, before the repeat" in markdown
