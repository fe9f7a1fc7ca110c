"""Own templates: show debugging, show crypto debug-condition, show logging (header and
the invalid-SPI lines)."""

from __future__ import annotations

from datetime import datetime, timezone
from ipaddress import ip_address
from pathlib import Path

import pytest

from collector.detect.logline import parse_invalid_spi
from collector.parsing import default_registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"


def parse(command: str, fixture: str, platform: str = "cisco_xe") -> list[dict]:
    result = default_registry().parse(platform, command, (FIXTURES / fixture).read_text())
    assert result.error is None, result.error
    return result.records


# --------------------------------------------------------------------------- show debugging


@pytest.mark.parametrize(("command", "fixture", "debugs", "crypto", "other", "xe_state"), [
    ("show debugging", "show_debugging_crypto_ios.txt",
     ["Crypto ISAKMP", "Crypto IPSEC"], ["Crypto ISAKMP", "Crypto IPSEC"], [], ""),
    ("show debug | inc Crypto", "show_debugging_crypto_lowercase_heading.txt",
     ["Crypto IKEv2", "Crypto IPSEC", "IP routing"], ["Crypto IKEv2", "Crypto IPSEC"],
     ["Crypto conditional debug is turned ON"], ""),
    ("show debugging", "show_debugging_iosxe_block.txt",
     ["HSRP Errors", "HSRP Events", "HSRP Packets", "Crypto ISAKMP", "Crypto IPSEC"],
     ["Crypto ISAKMP", "Crypto IPSEC"], [], "Stop"),
    ("show debugging", "show_debugging_iosxe_nothing_on.txt", [], [], [], "Stop"),
])
def test_show_debugging(command, fixture, debugs, crypto, other, xe_state) -> None:
    (rec,) = parse(command, fixture)
    assert rec["debugs"] == debugs and rec["crypto_debugs"] == crypto
    assert rec["crypto_other"] == other and rec["iosxe_conditional_state"] == xe_state
    assert rec["iosxe_conditions"] == []


def test_show_debugging_nothing_printed() -> None:
    result = default_registry().parse("cisco_ios", "show debugging", "\n")
    assert result.error is None and result.records == []


def test_show_debugging_iosxe_condition_lines_kept_apart_from_crypto() -> None:
    text = ("IOSXE Conditional Debug Configs:\n\nConditional Debug Global State: Start\n\n"
            "Conditions                                                 Direction\n"
            "----------------------------------------------------------|---------\n"
            "ipv4 10.1.1.1/32                                          both\n\n"
            "IOSXE Packet Tracing Configs:\n\nCryptographic Subsystem:\n  Crypto IPSEC debugging is on\n")
    (rec,) = default_registry().parse("cisco_xe", "show debugging", text).records
    assert rec["iosxe_conditional_state"] == "Start"
    assert "ipv4 10.1.1.1/32                                          both" in rec["iosxe_conditions"]
    assert rec["crypto_debugs"] == ["Crypto IPSEC"] and rec["crypto_other"] == []


# --------------------------------------------------------------------------- debug-condition


def test_debug_condition_on() -> None:
    (rec,) = parse("show crypto debug-condition", "show_crypto_debug_condition_on.txt")
    assert (rec["conditional_debug"], rec["ike_unmatched"], rec["ipsec_unmatched"], rec["engine_unmatched"]) == (
        "ON", "OFF", "OFF", "OFF")
    assert rec["filter_kinds"] == ["IKE peer IP address", "IPsec peer IP address", "IKE connection id"]
    assert rec["peer_filters"] == ["10.1.1.1", "2001:DB8::7", "10.1.1.1"]
    assert rec["other_filters"] == ["1001"]


def test_debug_condition_off() -> None:
    (rec,) = parse("sh cry debug-condition", "show_crypto_debug_condition_off.txt")
    assert rec["conditional_debug"] == "OFF" and rec["peer_filters"] == [] and rec["filter_kinds"] == []


# --------------------------------------------------------------------------- show logging header


@pytest.mark.parametrize(("fixture", "expected"), [
    ("show_logging_header_ios.txt", dict(
        syslog_logging="enabled", messages_dropped="0", messages_rate_limited="34", overruns="0",
        console_logging="debugging", console_messages="22827", monitor_logging="debugging", monitor_messages="68",
        buffer_logging="debugging", buffer_messages="22860", trap_logging="informational", trap_messages="22790",
        logging_hosts=["10.5.2.1", "10.5.2.2"], buffer_size="16384")),
    ("show_logging_header_xe_vrf.txt", dict(
        syslog_logging="enabled", messages_dropped="0", messages_rate_limited="149", overruns="2",
        console_logging="disabled", console_messages="", monitor_logging="debugging", monitor_messages="0",
        buffer_logging="debugging", buffer_messages="481", trap_logging="informational", trap_messages="478",
        logging_hosts=["55.55.55.70"], buffer_size="214748364")),
    ("show_logging_header_buffer_disabled.txt", dict(
        syslog_logging="enabled", messages_dropped="11", messages_rate_limited="0", overruns="0",
        console_logging="debugging", console_messages="22827", monitor_logging="disabled", monitor_messages="",
        buffer_logging="disabled", buffer_messages="", trap_logging="informational", trap_messages="22790",
        logging_hosts=[], buffer_size="")),
    ("show_logging_debug_ios_xe.txt", dict(
        console_logging="disabled", monitor_logging="disabled", buffer_logging="debugging", buffer_size="10000000",
        logging_hosts=["10.5.2.1"], messages_rate_limited="34")),
])
def test_logging_header(fixture: str, expected: dict) -> None:
    # One record per log record (or the header alone for an empty buffer); the header's
    # fields are on every one of them.
    records = parse("show logging", fixture, "cisco_ios")
    assert records
    for rec in records:
        assert {k: rec[k] for k in expected} == expected


def test_logging_header_stops_at_the_buffer() -> None:
    # Log lines that look like header lines must not overwrite the header.
    text = (FIXTURES / "show_logging_header_ios.txt").read_text() + "Console logging: disabled\n"
    records = default_registry().parse("cisco_ios", "show logging", text).records
    assert records and {rec["console_logging"] for rec in records} == {"debugging"}


# --------------------------------------------------------------------------- invalid SPI lines


def test_invalid_spi_template_every_prefix_variant() -> None:
    recs = parse("show logging | include RECVD_PKT_INV_SPI", "show_logging_invalid_spi_variants.txt", "cisco_ios")
    keys = ("pri", "seq", "flag", "month", "day", "year", "time", "timezone", "uptime", "hostname",
            "dst", "prot", "spi_hex", "spi_dec", "src", "interface")
    assert [tuple(r[k] for k in keys) for r in recs] == [
        ("", "", "*", "Mar", "12", "", "18:22:10.706", "", "", "", "213.163.222.7", "50", "0x68842105",
         "1753489669", "11.1.1.3", "Ethernet0/0"),
        ("", "", "", "Sep", "2", "", "13:27:57.707", "", "", "", "10.10.1.2", "50", "0xB761863E", "3076621886",
         "10.1.1.1", ""),
        ("", "", "", "Jan", "8", "", "15:00:23.723", "EDT", "", "", "10.30.30.1", "50", "0x215EBFF1", "559857649",
         "10.40.40.1", ""),
        ("", "", "", "Jan", "10", "", "12:18:43.404", "EDT", "", "", "10.30.30.1", "50", "0x0000BEEF", "48879",
         "10.20.20.1", "Tunnel10001"),
        ("0", "91", "*", "Oct", "07", "", "03:10:04", "", "", "mydevice.com", "10.30.30.1", "50", "0x215EBFF1",
         "559857649", "150.3.1.3", ""),
        ("", "", "", "", "", "", "", "", "", "", "11.11.11.11", "50", "0x410F2223", "1091510819", "14.14.14.14",
         "GigabitEthernet0/0"),
        ("", "065478", "", "Dec", "4", "", "11:01:38.694", "EST", "", "", "2001:DB8::1", "51", "0x00001234", "4660",
         "2001:DB8::2", ""),
        ("", "20995084", "", "Feb", "13", "2024", "01:00:00.167", "EST", "", "", "10.0.0.1", "50", "0x0000000A",
         "10", "10.0.0.2", ""),
        ("", "", "", "", "", "", "", "", "1d02h", "", "10.0.0.1", "50", "0x0000000B", "11", "10.0.0.3", ""),
    ]


def test_template_and_logline_agree_on_the_same_lines() -> None:
    text = (FIXTURES / "show_logging_invalid_spi_variants.txt").read_text()
    recs = parse("show logging | include RECVD_PKT_INV_SPI", "show_logging_invalid_spi_variants.txt", "cisco_ios")
    events = [e for e in (parse_invalid_spi(line, router="r", source="poll", year=2025,
                                            received_at=datetime(2025, 6, 1, tzinfo=timezone.utc))
                          for line in text.splitlines()[2:]) if e is not None]
    assert [(str(e.flow.src), str(e.flow.dst), e.flow.spi, e.flow.prot) for e in events] == [
        (str(ip_address(r["src"])), str(ip_address(r["dst"])), int(r["spi_hex"], 16), int(r["prot"])) for r in recs]
