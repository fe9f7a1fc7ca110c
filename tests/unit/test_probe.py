"""`collector probe`: findings from router outputs (real captures where they exist), the
address the self-test picks, and the buffer resize it may undo."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

from collector import probe
from collector.probe import Finding, assess, pick_unused_address, resize_plan

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"

CONFIG = """\
service timestamps debug datetime msec localtime show-timezone year
service timestamps log datetime msec localtime show-timezone year
service sequence-numbers
hostname rtr-ams-dc1-asr1001x-wan01.emea.corp.example.net
logging discriminator NOFLAP mnemonics drops UPDOWN
logging buffered discriminator NOFLAP 64000
logging console critical
aaa new-model
line vty 0 4
line vty 5 15
"""
USERS = """\
    Line       User       Host(s)              Idle       Location
*  2 vty 0     lab        idle                 00:00:00 10.0.0.5
   3 vty 1     noc        idle                 00:01:00 10.0.0.6

  Interface    User               Mode         Idle     Peer Address
"""


def real(path: str) -> str:
    return (REAL / path).read_text()


def reads(**over: str | None) -> dict[str, str | None]:
    base = {probe.VERSION: real("show_version/xe_17_c8000v.txt"), probe.RUNNING: CONFIG,
            probe.PRIVILEGE: "Current privilege level is 15\n", probe.USERS: USERS, probe.EEM_VERSION: None,
            probe.CPU: "CPU utilization for five seconds: 3%/0%; one minute: 4%; five minutes: 5%\n",
            probe.LOG_HEADER: real("show_logging/ios_seq_msec_tz_ntc4.txt"),
            probe.DEBUGGING: "", probe.CONDITIONS: "Crypto conditional debug currently is turned OFF\n"}
    base.update(over)
    return base


def by_topic(found: list[Finding], topic: str) -> list[Finding]:
    return [f for f in found if f.topic == topic]


def test_prompt_and_hostname_length_of_a_63_character_name():
    name = "rtr-ams-dc1-asr1001x-wan01.emea.corp.example.net"
    found = by_topic(assess(reads(), prompt=f"{name}#"), "prompt")
    assert [f.verdict for f in found] == ["ok"]
    assert f"`{name}`, {len(name)} characters" in found[0].text
    assert "`rtr-ams-dc1-asr1001x(config)#`" in found[0].text and "16-character" in found[0].text


def test_a_prompt_that_is_not_the_configured_hostname_differs():
    found = by_topic(assess(reads(), prompt="Router#"), "prompt")
    assert found[0].verdict == "differs" and "`Router`" in found[0].text


def test_show_debugging_banners_are_quoted_exactly_from_real_captures():
    for path, expected in (("show_debugging/ios_showdebug_crypto_subsystems.txt", "debug isakmp"),
                           ("show_debugging/xe_showdebug_crypto_ce2.txt", "debug ipsec")):
        text = real(path)
        found = by_topic(assess(reads(**{probe.DEBUGGING: text}), prompt=None), "debug")
        quoted = found[0].quoted
        assert quoted == tuple(line.rstrip() for line in text.splitlines() if line.strip())
        foreign = [f for f in found if "someone's debugs are on" in f.text]
        assert foreign and expected in foreign[0].text, found


def test_xe_show_debugging_without_crypto_debug_is_clean_of_crypto_but_names_the_hsrp_debugs():
    found = by_topic(assess(reads(**{probe.DEBUGGING: real("show_debugging/xe_hsrp_conditional.txt")}), prompt=None),
                     "debug")
    text = " ".join(f.text for f in found)
    assert "hsrp errors" in text and "hsrp packets" in text
    assert not [f for f in found if f.verdict == "differs"], found  # every line of the capture is recognised


def test_buffer_header_of_a_real_capture_and_a_restorable_discriminator_line():
    found = assess(reads(), prompt=None)
    buffer = by_topic(found, "buffer")
    assert buffer[0].verdict == "ok" and "level debugging, 552121 messages logged" in buffer[0].text
    assert "    Buffer logging:  level debugging, 552121 messages logged, xml disabled," in buffer[0].quoted
    assert any(f.verdict == "ok" and f.quoted == ("logging buffered discriminator NOFLAP 64000",) for f in buffer)
    # the header's levels, not the config's: the capture has console logging disabled, monitor at debugging
    assert any("monitor logging at debugging" in f.text for f in buffer)
    assert not any("console logging" in f.text for f in buffer)
    md = by_topic(found, "discriminator")
    assert md[-1].verdict == "note" and "lets `%CRYPTO-4-RECVD_PKT_INV_SPI` through" in md[-1].text


def test_a_discriminator_that_drops_the_invalid_spi_message_differs():
    config = CONFIG.replace("mnemonics drops UPDOWN", "mnemonics drops RECVD_PKT_INV|UPDOWN")
    md = by_topic(assess(reads(**{probe.RUNNING: config}), prompt=None), "discriminator")
    assert md[-1].verdict == "differs" and "mnemonics drops RECVD_PKT_INV|UPDOWN" in md[-1].text


def test_buffer_disabled_in_a_real_xe_capture():
    buffer = by_topic(assess(reads(**{probe.LOG_HEADER: real("show_logging/xe_flag_msec_genie13.txt")}),
                             prompt=None), "buffer")
    assert buffer[0].verdict == "note" and "buffer logging disabled" in buffer[0].text


def test_timestamps_from_config_and_a_real_buffered_line():
    found = by_topic(assess(reads(**{probe.LOG_HEADER: real("show_logging/ios_flag_msec_crypto_ntc5.txt")}),
                            prompt=None), "timestamps")
    assert [f.verdict for f in found[:2]] == ["ok", "ok"]
    assert "sequence numbers on" in found[2].text
    sample = [f for f in found if f.text.startswith("a buffered message as printed")]
    assert sample and sample[0].quoted[0] in real("show_logging/ios_flag_msec_crypto_ntc5.txt")


def test_debug_lines_without_timestamp():
    config = CONFIG.replace("service timestamps debug datetime msec localtime show-timezone year",
                            "no service timestamps debug uptime")
    found = by_topic(assess(reads(**{probe.RUNNING: config}), prompt=None), "timestamps")
    assert any(f.text == "debug lines carry no time stamp" for f in found)


def test_vty_lines_free_and_none_free():
    assert "14 of 16 vty lines free" in by_topic(assess(reads(), prompt=None), "vty")[0].text
    full = by_topic(assess(reads(**{probe.RUNNING: CONFIG.replace("line vty 5 15\n", "").replace(
        "line vty 0 4", "line vty 0 1")}), prompt=None), "vty")
    assert full[0].verdict == "blocks" and "2 of 2 vty lines in use" in full[0].text


def test_aaa_and_eem():
    plain = by_topic(assess(reads(), prompt=None), "aaa")
    assert plain[0].verdict == "ok" and "no AAA command authorization" in plain[0].text
    aaa = CONFIG + "aaa authorization commands 15 default group tacacs+ local\n"
    old = assess(reads(**{probe.RUNNING: aaa, probe.EEM_VERSION: "Embedded Event Manager Version 3.00\n"}),
                 prompt=None)
    assert by_topic(old, "aaa")[0].quoted == ("aaa authorization commands 15 default group tacacs+ local",)
    assert by_topic(old, "eem")[0].verdict == "blocks"
    new = assess(reads(**{probe.RUNNING: aaa, probe.EEM_VERSION: "Embedded Event Manager Version 4.00\n"}),
                 prompt=None)
    assert by_topic(new, "eem")[0].verdict == "ok" and "authorization bypass" in by_topic(new, "eem")[0].text
    unknown = assess(reads(**{probe.RUNNING: aaa}), prompt=None)
    assert by_topic(unknown, "eem")[0].verdict == "unknown"
    named = assess(reads(**{probe.RUNNING: aaa + "event manager session cli username eem-svc\n"}), prompt=None)
    assert "`eem-svc`" in by_topic(named, "eem")[0].text


def test_refused_reads_are_named_and_not_guessed():
    found = assess(reads(**{probe.DEBUGGING: None, probe.RUNNING: None, probe.PRIVILEGE: None}), prompt=None)
    assert "`show running-config`" in by_topic(found, "refused")[0].text
    assert by_topic(found, "debug")[0].verdict == "unknown"
    assert by_topic(found, "aaa")[0].verdict == "unknown" and by_topic(found, "privilege")[0].verdict == "unknown"


def test_version_from_real_captures():
    for path, family in (("show_version/ios_15_1_c1900.txt", "IOS"), ("show_version/xe_16_6_isr4k.txt", "IOS-XE")):
        found = by_topic(assess(reads(**{probe.VERSION: real(path)}), prompt=None), "version")
        assert found[0].verdict == "note" and f"os_family {family};" in found[0].text, found


def test_pick_unused_address_skips_every_address_in_use():
    assert pick_unused_address(["peer 203.0.113.254", "x"]) == ip_address("203.0.113.253")
    assert pick_unused_address([]) == ip_address("203.0.113.254")
    every = "\n".join(f"{n}.{i}" for n in ("203.0.113", "198.51.100") for i in range(1, 255))
    assert pick_unused_address([every]) == ip_address("192.0.2.254")


def test_resize_plan_keeps_discriminator_and_level_and_restores_verbatim():
    plan = resize_plan(["logging buffered discriminator NOFLAP 64000 informational"], 64000)
    assert plan.resize == "logging buffered discriminator NOFLAP 68096 informational"
    assert plan.restore == ("logging buffered discriminator NOFLAP 64000 informational",)
    assert resize_plan(["logging buffered 10000000"], 10000000).resize == "logging buffered 10004096"


def test_resize_plan_refuses_what_it_could_not_undo():
    assert "image default" in resize_plan([], 4096)
    assert "names no size" in resize_plan(["logging buffered informational"], 4096)
    assert "header says" in resize_plan(["logging buffered 64000"], 32000)
    assert isinstance(resize_plan(["logging buffered 64000 bogus-level"], 64000), str)
