"""collector.detect.logline: every prefix variant of domain.md §2.1, validation, datagrams."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.detect.logline import (
    LogRecords,
    year_printed,
    MAX_DATAGRAM_BYTES,
    LogLine,
    iter_log_records,
    parse_delete_notify_ignored,
    parse_invalid_spi,
    parse_log_line,
    parse_syslog_datagram,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"
RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
BODY = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
        "destaddr={dst}, prot={prot}, spi=0x{spi:08X}({spi}), srcaddr={src}")


def inv(line: str, **kw):
    kw.setdefault("router", "r1")
    kw.setdefault("source", "poll")
    kw.setdefault("received_at", RECEIVED)
    return parse_invalid_spi(line, **kw)


# --------------------------------------------------------------------------- §2.1 variants a-h

VARIANTS = {
    # a: IOS 15.1, `*` = clock not authoritative, input interface present
    "a": ("*Mar 12 18:22:10.706: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
          "destaddr=213.163.222.7, prot=50, spi=0x68842105(1753489669), srcaddr=11.1.1.3, input interface=Ethernet0/0",
          dict(ts=datetime(2025, 3, 12, 18, 22, 10, 706000), auth=False, tz=None, seq=None, host=None, pri=None,
               src="11.1.1.3", dst="213.163.222.7", spi=0x68842105, ifc="Ethernet0/0")),
    # b: no input interface, two spaces before a one-digit day
    "b": ("Sep  2 13:27:57.707: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
          "destaddr=10.10.1.2, prot=50, spi=0xB761863E(3076621886), srcaddr=10.1.1.1",
          dict(ts=datetime(2025, 9, 2, 13, 27, 57, 707000), auth=True, tz=None, seq=None, host=None, pri=None,
               src="10.1.1.1", dst="10.10.1.2", spi=0xB761863E, ifc=None)),
    # c: IOS-XE CSR1000v
    "c": ("*Oct 24 04:31:10.058: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
          "destaddr=61.128.1.1, prot=50, spi=0x3EA71AED(1051138797), srcaddr=103.1.1.1, input interface=GigabitEthernet1",
          dict(ts=datetime(2025, 10, 24, 4, 31, 10, 58000), auth=False, tz=None, seq=None, host=None, pri=None,
               src="103.1.1.1", dst="61.128.1.1", spi=0x3EA71AED, ifc="GigabitEthernet1")),
    # d: IOS-XE 17, time zone and the doubled ': :' (SPI made consistent, see the test below)
    "d": ("Jan 8 15:00:23.723 EDT: : %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
          "destaddr=10.30.30.1, prot=50, spi=0x215EBFF1(559857649), srcaddr=10.40.40.1",
          dict(ts=datetime(2025, 1, 8, 15, 0, 23, 723000), auth=True, tz="EDT", seq=None, host=None, pri=None,
               src="10.40.40.1", dst="10.30.30.1", spi=0x215EBFF1, ifc=None)),
    # e: SD-WAN, input interface is a Tunnel
    "e": ("Jan 10 12:18:43.404 EDT: : %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
          "destaddr=10.30.30.1, prot=50, spi=0x0000BEEF(48879), srcaddr=10.20.20.1, input interface=Tunnel10001",
          dict(ts=datetime(2025, 1, 10, 12, 18, 43, 404000), auth=True, tz="EDT", seq=None, host=None, pri=None,
               src="10.20.20.1", dst="10.30.30.1", spi=0xBEEF, ifc="Tunnel10001")),
    # f: field deployment
    "f": ("Dec 18 00:12:07.098: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
          "destaddr=192.0.2.1, prot=50, spi=0x9E6D41B7(2657960375), srcaddr=198.51.100.2, input interface=GigabitEthernet0/2",
          dict(ts=datetime(2025, 12, 18, 0, 12, 7, 98000), auth=True, tz=None, seq=None, host=None, pri=None,
               src="198.51.100.2", dst="192.0.2.1", spi=0x9E6D41B7, ifc="GigabitEthernet0/2")),
    # g: as a syslog server stores it: PRI, sequence number, no msec, hostname before %
    "g": ("<0>91: *Oct 07 03:10:04: mydevice.com %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid "
          "spi for destaddr=10.30.30.1, prot=50, spi=0x215EBFF1(559857649), srcaddr=150.3.1.3",
          dict(ts=datetime(2025, 10, 7, 3, 10, 4), auth=False, tz=None, seq=91, host="mydevice.com", pri=0,
               src="150.3.1.3", dst="10.30.30.1", spi=0x215EBFF1, ifc=None)),
    # h: no time stamp at all
    "h": ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=11.11.11.11, prot=50, "
          "spi=0x410F2223(1091510819), srcaddr=14.14.14.14, input interface=GigabitEthernet0/0",
          dict(ts=None, auth=False, tz=None, seq=None, host=None, pri=None,
               src="14.14.14.14", dst="11.11.11.11", spi=0x410F2223, ifc="GigabitEthernet0/0")),
}


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_variant_parses_as_log_line(key: str) -> None:
    line, exp = VARIANTS[key]
    rec = parse_log_line(line, year=2025)
    assert rec is not None
    assert rec.mnemonic == "CRYPTO-4-RECVD_PKT_INV_SPI"
    assert rec.severity == 4
    assert rec.timestamp == exp["ts"]
    assert rec.authoritative is exp["auth"]
    assert rec.tz == exp["tz"]
    assert rec.seq == exp["seq"]
    assert rec.hostname == exp["host"]
    assert rec.pri == exp["pri"]
    assert rec.message.startswith("decaps: rec'd IPSEC packet")
    assert rec.raw == line


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_variant_gives_validated_event(key: str) -> None:
    line, exp = VARIANTS[key]
    ev = inv(line, year=2025, source="syslog")
    assert ev is not None
    assert ev.flow.src == ip_address(exp["src"])
    assert ev.flow.dst == ip_address(exp["dst"])
    assert ev.flow.spi == exp["spi"]
    assert ev.flow.prot == 50
    assert ev.flow.router == "r1"
    assert ev.interface == exp["ifc"]
    assert ev.device_time == exp["ts"]
    assert ev.seq == exp["seq"]
    assert ev.source == "syslog"
    assert ev.received_at == RECEIVED
    assert ev.raw == line


def test_c221607_sample_verbatim_is_rejected_because_its_spi_forms_disagree() -> None:
    # The public sample prints spi=0x215EBFF1(605998893); 0x215EBFF1 is 559857649. A line
    # whose two SPI forms disagree is not trusted (its values would go into commands).
    line = ("Jan 8 15:00:23.723 EDT: : %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi "
            "for destaddr=10.30.30.1, prot=50, spi=0x215EBFF1(605998893), srcaddr=10.40.40.1")
    assert parse_log_line(line, year=2025) is not None  # still a log record
    assert inv(line) is None


def test_ipv6_addresses_and_ah() -> None:
    line = BODY.format(dst="2001:db8::1", prot=51, spi=0x1234, src="2001:db8:1::2")
    ev = inv("*Mar  1 00:00:01.000: " + line)
    assert ev is not None
    assert ev.flow.src == IPv6Address("2001:db8:1::2") and ev.flow.prot == 51


# --------------------------------------------------------------------------- other prefixes


@pytest.mark.parametrize(
    ("line", "seq", "ts", "tz", "text", "mnemonic", "message"),
    [
        ("022701: Jun 19 03:02:31: %LINEPROTO-5-UPDOWN: Line protocol on Interface Gi2/0/3, changed state to down",
         22701, datetime(2025, 6, 19, 3, 2, 31), None, "Jun 19 03:02:31", "LINEPROTO-5-UPDOWN",
         "Line protocol on Interface Gi2/0/3, changed state to down"),
        ("065478: Dec  4 11:01:38.694 EST: %MAB-5-SUCCESS: Authentication successful",
         65478, datetime(2025, 12, 4, 11, 1, 38, 694000), "EST", "Dec  4 11:01:38.694 EST", "MAB-5-SUCCESS",
         "Authentication successful"),
        ("20995084: Feb 13 2024 01:00:00.167 EST: %LINEPROTO-5-UPDOWN: Line protocol",
         20995084, datetime(2024, 2, 13, 1, 0, 0, 167000), "EST", "Feb 13 2024 01:00:00.167 EST",
         "LINEPROTO-5-UPDOWN", "Line protocol"),
        ("*Feb 23 00:19:54.625: ISAKMP-PAK: (1001):received packet from 203.0.113.100 dport 500 sport 500 Global (R) QM_IDLE",
         None, datetime(2025, 2, 23, 0, 19, 54, 625000), None, "Feb 23 00:19:54.625", None,
         "ISAKMP-PAK: (1001):received packet from 203.0.113.100 dport 500 sport 500 Global (R) QM_IDLE"),
        ("Mar 1 00:55:41.667: ISAKMP (0:2): processing DELETE payload. message ID = -1323939639",
         None, datetime(2025, 3, 1, 0, 55, 41, 667000), None, "Mar 1 00:55:41.667", None,
         "ISAKMP (0:2): processing DELETE payload. message ID = -1323939639"),
        ("000124: *Mar  1 00:00:05.123 UTC: %SYS-5-RESTART: System restarted --",
         124, datetime(2025, 3, 1, 0, 0, 5, 123000), "UTC", "Mar  1 00:00:05.123 UTC", "SYS-5-RESTART",
         "System restarted --"),
        ("%IOSXE-3-PLATFORM: R0/0: cpp_cp: QFP:0.0 Thread:000 TS:00000000734849689650 %IPSEC-3-RECVD_PKT_NOT_IPSEC: "
         "Rec'd packet not an IPSEC packet, dest_addr= 8.8.11.2, src_addr= 8.8.10.2, prot= 47",
         None, None, None, None, "IOSXE-3-PLATFORM", None),
    ],
)
def test_other_prefixes(line, seq, ts, tz, text, mnemonic, message) -> None:
    rec = parse_log_line(line, year=2025)
    assert rec is not None
    assert (rec.seq, rec.timestamp, rec.tz, rec.timestamp_text, rec.mnemonic) == (seq, ts, tz, text, mnemonic)
    if message is not None:
        assert rec.message == message


def test_dot_flag_is_not_authoritative() -> None:
    rec = parse_log_line(".Mar  1 00:00:05.123: %SYS-5-CONFIG_I: Configured from console", year=2025)
    assert rec is not None and rec.authoritative is False and rec.timestamp == datetime(2025, 3, 1, 0, 0, 5, 123000)


@pytest.mark.parametrize(("line", "text"), [
    ("00:39:24: BRI0/0 DDR: Dialing cause ip", "00:39:24"),
    ("1d02h: %SYS-5-CONFIG_I: Configured from console", "1d02h"),
    ("2w3d: %LINK-3-UPDOWN: Interface Tunnel1, changed state to up", "2w3d"),
    ("000042: 1y2w: %LINK-3-UPDOWN: Interface Tunnel1, changed state to up", "1y2w"),
])
def test_uptime_stamps(line: str, text: str) -> None:
    rec = parse_log_line(line, year=2025)
    assert rec is not None
    assert rec.timestamp is None and rec.timestamp_text == text


@pytest.mark.parametrize("line", [
    "7:04: %LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet2/0/3, changed state to up",
    "ec  4 11:01:38.694 EST: %MAB-5-SUCCESS: Authentication successful",
    "  (sa) sa_dest= 203.0.113.200, sa_proto= 50,",
    "\tsa_spi= 0x63A278D7(1671592151),",
    "bring down existing phase 1 and 2 SA's with local 61.128.1.1 remote 103.1.1.1 remote port 4501",
    "Syslog logging: enabled (0 messages dropped, 34 messages rate-limited, 0 flushes, 0 overruns)",
    "Log Buffer (16384 bytes):",
    "",
    "<999>1: %SYS-5-CONFIG_I: bad PRI",
])
def test_not_a_record(line: str) -> None:
    assert parse_log_line(line, year=2025) is None


@pytest.mark.parametrize("line", [
    "ISAKMP: (1001):set new node 3329780046 to QM_IDLE",
    "ISAKMP-ERROR: (0):ignoring request to send delete notify (no ISAKMP sa) src 1.1.1.1 dst 2.2.2.2 for SPI 0x1",
    "IPSEC(key_engine_enable_outbound): rec'd enable notify from ISAKMP",
    "IKEv2:(SESSION ID = 31,SA ID = 1):Processing ACK to informational exchange",
    "IKEv2-ERROR:(SESSION ID = 71,SA ID = 1):: Auth exchange failed",
    "Crypto mapdb : proxy_match",
])
def test_unstamped_debug_lines_are_records(line: str) -> None:
    rec = parse_log_line(line)
    assert rec is not None and rec.timestamp is None and rec.message == line and rec.mnemonic is None


def test_year_defaults_to_now_and_rolls_back_future_dates() -> None:
    now = datetime.now(timezone.utc)
    past = now - timedelta(days=3)
    ahead = now + timedelta(days=20)
    for when, expected_year in ((past, past.year), (ahead, ahead.year - 1)):
        line = f"{when:%b} {when.day} {when:%H:%M:%S}.000: %SYS-5-CONFIG_I: x"
        rec = parse_log_line(line)
        assert rec is not None and rec.timestamp is not None
        assert rec.timestamp.year == expected_year


def test_invalid_calendar_date_keeps_record_without_time() -> None:
    rec = parse_log_line("Feb 30 10:00:00.000: %SYS-5-CONFIG_I: x", year=2025)
    assert rec is not None and rec.timestamp is None and rec.timestamp_text == "Feb 30 10:00:00.000"


# --------------------------------------------------------------------------- invalid SPI: validation

GOOD = ("*Mar 12 18:22:10.706: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
        "destaddr=213.163.222.7, prot=50, spi=0x68842105(1753489669), srcaddr=11.1.1.3")


@pytest.mark.parametrize("line", [
    GOOD + "; reload",
    GOOD.replace("srcaddr=11.1.1.3", "srcaddr=10.0.0.1; reload"),
    GOOD + ", input interface=Gi1; reload",
    GOOD + ", input interface=Gi1 extra",
    GOOD.replace("prot=50", "prot=47"),
    GOOD.replace("prot=50", "prot=500"),
    GOOD.replace("(1753489669)", "(1753489668)"),
    GOOD.replace("0x68842105(1753489669)", "0x168842105(6048456965)"),
    GOOD.replace("0x68842105(1753489669)", "0x68842105(" + "9" * 200 + ")"),
    GOOD.replace("0x68842105(1753489669)", "0x" + "F" * 200 + "(1753489669)"),
    GOOD.replace("0x68842105(1753489669)", "0x0(0)"),
    GOOD.replace("srcaddr=11.1.1.3", "srcaddr=999.1.1.3"),
    GOOD.replace("srcaddr=11.1.1.3", "srcaddr=011.1.1.3"),
    GOOD.replace("srcaddr=11.1.1.3", "srcaddr=0.0.0.0"),
    GOOD.replace("srcaddr=11.1.1.3", "srcaddr=224.0.0.5"),
    GOOD.replace("srcaddr=11.1.1.3", "srcaddr=2001:db8::1"),  # mixed families
    GOOD.replace("srcaddr=11.1.1.3", "srcaddr=$(reboot)"),
    GOOD.replace("destaddr=213.163.222.7", "destaddr=213.163.222.7\nreload"),
    GOOD + " " * 2000,
    GOOD.replace("%CRYPTO-4-RECVD_PKT_INV_SPI", "%CRYPTO-4-RECVD_PKT_INV_SPIX"),
    "%ASA-4-402101: decaps: rec'd IPSEC packet has invalid spi for destaddr=1.1.1.1, prot=esp, spi=0x1",
    "RECVD_PKT_INV_SPI",
])
def test_hostile_or_malformed_lines_are_rejected(line: str) -> None:
    assert inv(line) is None


def test_good_line_passes_the_same_checks() -> None:
    ev = inv(GOOD)
    assert ev is not None and ev.flow.spi == 1753489669 and ev.flow.spi_hex == "0x68842105"


def test_trailing_newline_is_tolerated() -> None:
    ev = inv(GOOD + "\r\n")
    assert ev is not None and ev.raw == GOOD


def test_unknown_prefix_is_not_an_event() -> None:
    # The message is recognised only at its own place: after a prefix we cannot read, the
    # same text is just text (issue 14 point 4).
    assert inv("router-7 some relay junk: " + GOOD[GOOD.index("%"):]) is None


@pytest.mark.parametrize("prefix", [
    # the real EEM form `%HA_EM-6-LOG: <applet>: <msg>` (fixtures/real/show_logging/eem_*),
    # with a forged invalid-SPI text as the applet's message
    "*Apr 27 06:12:00.010: %HA_EM-6-LOG: HEARTBEAT: ",
    "07:02:19: %HA_EM-6-LOG: ISP_A_down: ",
    "<189>12: *Apr 27 06:12:00.010: %HA_EM-6-LOG: x: ",
    "Sep  6 09:13:00 RouterName 82: Sep  6 14:12:56.872: %SYS-5-CONFIG_I: Configured from console by ",
    "%SYS-5-CONFIG_I: ",
])
def test_invalid_spi_text_inside_another_message_is_not_an_event(prefix: str) -> None:
    line = prefix + GOOD[GOOD.index("%"):]
    assert inv(line) is None
    record = parse_log_line(line, year=2025)
    assert record is not None and record.mnemonic != "CRYPTO-4-RECVD_PKT_INV_SPI"


def test_year_from_received_at_with_dec_to_jan() -> None:
    line = "Dec 31 23:59:58.100: " + BODY.format(dst="10.0.0.1", prot=50, spi=77, src="10.0.0.2")
    ev = inv(line, received_at=datetime(2025, 1, 1, 0, 0, 5, tzinfo=timezone.utc))
    assert ev is not None and ev.device_time == datetime(2024, 12, 31, 23, 59, 58, 100000)
    ev = inv(line, received_at=datetime(2025, 12, 31, 23, 59, 59, tzinfo=timezone.utc))
    assert ev is not None and ev.device_time == datetime(2025, 12, 31, 23, 59, 58, 100000)


# --------------------------------------------------------------------------- delete notify


@pytest.mark.parametrize(("line", "conn", "src", "dst", "spi", "ts"), [
    ("ISAKMP-ERROR: (0):ignoring request to send delete notify (no ISAKMP sa) src 61.128.1.1 dst 103.1.1.1 "
     "for SPI 0x3EA71AED", 0, "61.128.1.1", "103.1.1.1", 0x3EA71AED, None),
    ("ISAKMP: ignoring request to send delete notify (no ISAKMP sa) src 1.1.100.10 dst 1.1.56.6 for SPI 0x33C701EA",
     None, "1.1.100.10", "1.1.56.6", 0x33C701EA, None),
    ("*Oct 24 04:31:10.061: ISAKMP-ERROR: (0):ignoring request to send delete notify (no ISAKMP sa) "
     "src 61.128.1.1 dst 103.1.1.1 for SPI 0x3EA71AED", 0, "61.128.1.1", "103.1.1.1", 0x3EA71AED,
     datetime(2025, 10, 24, 4, 31, 10, 61000)),
    ("Mar  3 10:00:00.001: ISAKMP:(0):ignoring request to send delete notify (no ISAKMP sa) src 2001:db8::1 "
     "dst 2001:db8::2 for SPI 0xABCD", 0, "2001:db8::1", "2001:db8::2", 0xABCD, datetime(2025, 3, 3, 10, 0, 0, 1000)),
])
def test_delete_notify_ignored(line, conn, src, dst, spi, ts) -> None:
    d = parse_delete_notify_ignored(line, year=2025)
    assert d is not None
    assert (d.conn_id, d.src, d.dst, d.spi, d.timestamp) == (conn, ip_address(src), ip_address(dst), spi, ts)


@pytest.mark.parametrize("line", [
    "ISAKMP: ignoring request to send delete notify (no ISAKMP sa) src 1.1.1.1 dst 2.2.2.2 for SPI 0x1; reload",
    "ISAKMP: ignoring request to send delete notify (no ISAKMP sa) src 1.1.1.300 dst 2.2.2.2 for SPI 0x1",
    "ISAKMP: ignoring request to send delete notify (no ISAKMP sa) src 1.1.1.1 dst 2.2.2.2 for SPI 0x123456789",
    "ISAKMP: sending delete notify src 1.1.1.1 dst 2.2.2.2 for SPI 0x1",
])
def test_delete_notify_rejects(line: str) -> None:
    assert parse_delete_notify_ignored(line) is None


# --------------------------------------------------------------------------- show logging


# Lines of every kind a buffer mixes: stamps with and without year, across New Year and
# back, Feb 29, uptime and no stamps, debug lines, continuations, a header in the middle.
_BUFFER_LINES = st.sampled_from([
    "*Dec 31 23:59:58.100: %SYS-5-CONFIG_I: Configured from console",
    "*Jan  1 00:00:01.200: %LINK-3-UPDOWN: Interface Tunnel1, changed state to up",
    "*Feb 29 12:00:00.000: %SYS-5-CONFIG_I: leap day",
    "Jun 15 2024 10:00:00.000 UTC: %SYS-5-CONFIG_I: year printed",
    "Dec 30 2023 10:00:00: %SYS-5-CONFIG_I: year printed in December",
    "000123: *Mar  3 03:03:03.333: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi",
    "1d02h: %SYS-5-CONFIG_I: uptime stamp",
    "ISAKMP: (0):unstamped debug line",
    "*Nov  5 05:05:05.555: ISAKMP: (1002):debug with a stamp",
    "   indented continuation",
    "bring down existing phase 1 and 2 SA's",
    "",
    "Log Buffer (8192 bytes):",
    "  Log Buffer (4096 bytes):",
    "Syslog logging: enabled",
    "2025-12-31T23:59:59Z relay1 %SYS-5-CONFIG_I: relayed, ISO stamp",
    "<189>1 2026-01-01T00:00:02Z r1 - - - - %SYS-5-CONFIG_I: RFC 5424",
])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_BUFFER_LINES, max_size=40), st.sampled_from(["\n", "\r\n"]),
       st.one_of(st.none(), st.integers(2000, 2030)))
def test_log_records_made_on_demand_are_iter_log_records(lines: list[str], newline: str, year: int | None) -> None:
    """`LogRecords` (two passes, nothing held) gives exactly the records, years fixed, of
    `iter_log_records` (one list), and the newest record whose stamp prints no year."""
    text = newline.join(lines)
    expected = list(iter_log_records(text, year=year))
    lean = LogRecords(text, year=year)
    assert list(lean) == expected
    assert list(lean) == expected  # made anew, the same again
    newest = next((r for r in reversed(expected) if r.timestamp is not None and not year_printed(r)), None)
    assert lean.newest_unprinted == newest


def test_iso_stamps_keep_their_year_across_new_year() -> None:
    """A relay's ISO 8601 stamp prints its year: the walk back over New Year moves only the
    stamps that print none (before, the December ISO stamp was moved a year back too)."""
    text = ("Log Buffer (8192 bytes):\n"
            "2025-12-31T23:59:58Z relay1 %SYS-5-CONFIG_I: relayed in December\n"
            "*Dec 31 23:59:59.000: %SYS-5-CONFIG_I: own stamp, December\n"
            "*Jan  1 00:00:01.000: %SYS-5-CONFIG_I: own stamp, January\n")
    for records in (list(iter_log_records(text, year=2026)), list(LogRecords(text, year=2026))):
        assert [r.timestamp.year for r in records] == [2025, 2025, 2026]
    assert year_printed(parse_log_line("2025-12-31T23:59:58Z relay1 %SYS-5-CONFIG_I: x", year=2026))


def test_log_records_within_half_a_year_are_parsed_once_per_walk(monkeypatch) -> None:
    """Stamps within five months of each other cannot cross New Year: no planning walk, and
    the newest unprinted record is read from the end. Across New Year the walk still runs."""
    import collector.detect.logline as logline

    calls = [0]
    real = logline._parse_or_relayed

    def counting(line: str, year: int):
        calls[0] += 1
        return real(line, year)

    monkeypatch.setattr(logline, "_parse_or_relayed", counting)
    body = "".join(f"*{'Mar' if i < 500 else 'Aug'} {1 + i % 28:2d} 10:00:{i % 60:02d}.000: %SYS-5-CONFIG_I: n{i}\n"
                   "  continuation\n" for i in range(1000))
    text = "Syslog logging: enabled\nLog Buffer (8192 bytes):\n" + body + "Jun 15 2024 10:00:00.000 UTC: %SYS-5-CONFIG_I: x\n"
    records = LogRecords(text, year=2026)
    assert calls[0] == 0
    newest = records.newest_unprinted
    assert calls[0] == 2  # the year-printed last line, then the record above it
    assert newest == list(iter_log_records(text, year=2026))[-2]
    assert newest.raw.endswith("n999\n  continuation")
    calls[0] = 0
    assert list(records) == list(iter_log_records(text, year=2026))

    crossing = text.replace("*Mar", "*Dec").replace("*Aug", "*Jan")
    calls[0] = 0
    records = LogRecords(crossing, year=2026)
    assert calls[0] == 1001  # the planning walk
    assert [r.timestamp.year for r in records] == [2025] * 500 + [2026] * 500 + [2024]


def test_iter_log_records_on_fixture_with_header_fragment_and_continuations() -> None:
    text = (FIXTURES / "show_logging_debug_ios_xe.txt").read_text()
    records = list(iter_log_records(text, year=2025))
    # header and the truncated first fragment are gone: the first record is the first full line
    assert records[0].raw.startswith("*Feb 23 00:19:54.620:")
    assert all(not r.raw.startswith(("Syslog", "    ", "7:04")) for r in records)
    create = next(r for r in records if "IPSEC(create_sa)" in r.message)
    assert create.raw.count("\n") == 2
    assert create.message == ("IPSEC(create_sa): sa created, (sa) sa_dest= 203.0.113.200, sa_proto= 50, "
                              "sa_spi= 0x63A278D7(1671592151),")
    invs = [r for r in records if r.mnemonic == "CRYPTO-4-RECVD_PKT_INV_SPI"]
    assert len(invs) == 2
    events = [inv(r.raw, year=2025) for r in invs]
    assert all(e is not None and e.flow.spi == 0x3EA71AED for e in events)
    # the unindented IOS-XE continuation is joined onto its record
    contact = next(r for r in records if "Process initial contact" in r.message)
    assert "bring down existing phase 1 and 2 SA's" in contact.message
    assert [r.timestamp for r in records if r.timestamp] == sorted(r.timestamp for r in records if r.timestamp)


def test_iter_log_records_without_header_and_unstamped_debug() -> None:
    text = (FIXTURES / "show_logging_debug_no_timestamps.txt").read_text()
    records = list(iter_log_records(text))
    assert [r.message.split(":")[0] for r in records][:3] == ["ISAKMP-ERROR", "ISAKMP", "ISAKMP"]
    contact = next(r for r in records if "Process initial contact" in r.message)
    assert contact.raw.endswith("remote port 4501")
    ikev2 = [r for r in records if r.message.startswith("IKEv2:(SESSION ID = 31,SA ID = 1):Received Packet")]
    assert len(ikev2) == 1 and "NOTIFY(NO_PROPOSAL_CHOSEN)" in ikev2[0].message
    assert parse_delete_notify_ignored(records[0].raw) is not None


def test_iter_log_records_indented_capture() -> None:
    text = (FIXTURES / "show_logging_indented_capture.txt").read_text()
    records = list(iter_log_records(text, year=2025))
    assert [r.mnemonic for r in records] == ["IP-4-DUPADDR", "SYS-5-CONFIG_I", None, "CRYPTO-4-RECVD_PKT_INV_SPI"]
    assert records[2].message.startswith("IPSEC(create_sa)") and "sa_spi= 0x1000(4096)," in records[2].message
    assert records[3].timestamp == datetime(2025, 6, 5, 5, 11, 14, 115000)
    assert inv(records[3].raw) is not None


def test_iter_log_records_dec_to_jan() -> None:
    text = (FIXTURES / "show_logging_year_rollover.txt").read_text()
    records = list(iter_log_records(text, year=2025))
    years = [(r.timestamp.month, r.timestamp.year) for r in records if r.timestamp]
    assert years == [(12, 2024), (12, 2024), (1, 2025), (1, 2025)]
    printed = [r for r in records if r.timestamp_text and "2023" in r.timestamp_text]
    assert not printed  # fixture has no printed years; those are never touched anyway


def test_iter_log_records_default_year_rolls_back_future_buffer() -> None:
    ahead = datetime.now(timezone.utc) + timedelta(days=40)
    text = f"Log Buffer (4096 bytes):\n{ahead:%b} {ahead.day} 01:00:00.000: %SYS-5-CONFIG_I: x\n"
    (rec,) = iter_log_records(text)
    assert rec.timestamp is not None and rec.timestamp.year == ahead.year - 1


def test_iter_log_records_empty_and_header_only() -> None:
    assert list(iter_log_records("")) == []
    header = (FIXTURES / "show_logging_header_ios.txt").read_text()
    assert all(r.timestamp is not None for r in iter_log_records(header, year=2025))


# --------------------------------------------------------------------------- syslog datagrams


def test_datagram_ios_native() -> None:
    rec = parse_syslog_datagram(b"<188>91: *Oct  7 03:10:04.123: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC "
                                b"packet has invalid spi for destaddr=10.0.0.1, prot=50, spi=0x10(16), srcaddr=10.0.0.2")
    assert rec is not None
    assert (rec.pri, rec.seq, rec.authoritative, rec.mnemonic) == (188, 91, False, "CRYPTO-4-RECVD_PKT_INV_SPI")
    assert inv(rec.raw, source="syslog") is not None


def test_datagram_with_hostname_and_bsd_relay_header() -> None:
    rec = parse_syslog_datagram(b"<0>91: *Oct 07 03:10:04: mydevice.com %SYS-5-CONFIG_I: Configured")
    assert rec is not None and rec.hostname == "mydevice.com" and rec.pri == 0
    rec = parse_syslog_datagram(b"<189>Oct  7 03:10:04 10.1.1.1 91: Oct  7 03:10:04.123: %SYS-5-CONFIG_I: x")
    assert rec is not None and (rec.hostname, rec.seq, rec.timestamp_text) == ("10.1.1.1", 91, "Oct  7 03:10:04.123")
    rec = parse_syslog_datagram(b"<13>Oct  7 03:10:04 host1 sshd[12]: accepted")
    assert rec is not None and rec.hostname == "host1" and rec.mnemonic is None and rec.message == "sshd[12]: accepted"
    assert rec.timestamp_text == "Oct  7 03:10:04"


def test_datagram_rfc5424() -> None:
    rec = parse_syslog_datagram(
        "<189>1 2025-02-13T01:00:00.167+01:00 r1.example.net - - - [meta sequenceId=\"5\"] \ufeff"
        "000091: *Feb 13 01:00:00.167: %SYS-5-CONFIG_I: Configured from console".encode())
    assert rec is not None
    assert (rec.hostname, rec.seq, rec.mnemonic, rec.tz) == ("r1.example.net", 91, "SYS-5-CONFIG_I", "+0100")
    assert rec.timestamp == datetime(2025, 2, 13, 1, 0, 0, 167000) and rec.authoritative is False
    rec = parse_syslog_datagram(b"<14>1 - - - - - - plain text")
    assert rec is not None and rec.timestamp is None and rec.message == "plain text"
    assert parse_syslog_datagram(b"<14>1 not-a-time h a p m - x") is None


@pytest.mark.parametrize("data", [
    b"", b"\x00\x01\x02", b"<192>1: %SYS-5-X: y", b"<13>" + b"A" * MAX_DATAGRAM_BYTES, b"\xff\xfe<13>x",
    b"<13>line\x00with nul", b"no pri and no record", "<13>Oct  7 03:10:04.123: %SYS-5-X: \x1b[31m".encode(),
])
def test_datagram_garbage(data: bytes) -> None:
    assert parse_syslog_datagram(data) is None


# --------------------------------------------------------------------------- properties

PREFIXES = ["", "*", ".", "000123: ", "<189>91: *", "<0>7: "]
STAMPS = ["Mar 12 18:22:10.706: ", "Sep  2 13:27:57: ", "Jan 8 15:00:23.723 EDT: : ", "Feb 13 2024 01:00:00.167 EST: "]


@st.composite
def flows(draw):
    v6 = draw(st.booleans())
    if v6:
        addr = st.ip_addresses(v=6).filter(lambda a: not (a.is_multicast or a.is_unspecified))
    else:
        addr = st.ip_addresses(v=4).filter(
            lambda a: not (a.is_multicast or a.is_unspecified or a == IPv4Address("255.255.255.255")))
    return draw(addr), draw(addr), draw(st.integers(1, 2**32 - 1)), draw(st.sampled_from([50, 51]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows(), st.sampled_from(PREFIXES), st.sampled_from(STAMPS), st.sampled_from(["", ", input interface=Tunnel7"]))
def test_property_valid_flows_round_trip(flow, prefix, stamp, tail) -> None:
    src, dst, spi, prot = flow
    line = prefix + stamp + BODY.format(dst=dst, prot=prot, spi=spi, src=src) + tail
    ev = inv(line)
    assert ev is not None
    assert (ev.flow.src, ev.flow.dst, ev.flow.spi, ev.flow.prot) == (src, dst, spi, prot)


@settings(max_examples=200, deadline=None)
@given(flows(), st.text(min_size=1, max_size=30).filter(lambda s: s.strip() and not s.isspace()))
def test_property_trailing_text_is_rejected(flow, junk) -> None:
    src, dst, spi, prot = flow
    line = "*Mar 12 18:22:10.706: " + BODY.format(dst=dst, prot=prot, spi=spi, src=src)
    assert inv(line + ";" + junk) is None
    assert inv(line + " " + junk.strip()) is None


@settings(max_examples=200, deadline=None)
@given(flows(), st.integers(0, 10**200))
def test_property_mismatched_decimal_is_rejected(flow, dec) -> None:
    src, dst, spi, prot = flow
    line = ("*Mar 12 18:22:10.706: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
            f"destaddr={dst}, prot={prot}, spi=0x{spi:X}({dec}), srcaddr={src}")
    ev = inv(line)
    assert (ev is not None) == (dec == spi)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_property_text_never_raises(text: str) -> None:
    for line in (text, "*Mar  1 00:00:00.000: " + text, "%CRYPTO-4-RECVD_PKT_INV_SPI: " + text):
        rec = parse_log_line(line)
        assert rec is None or isinstance(rec, LogLine)
        assert inv(line) is None or "RECVD_PKT_INV_SPI" in line
        assert parse_delete_notify_ignored(line) is None or "delete notify" in line
    assert all(isinstance(r, LogLine) for r in iter_log_records(text))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_property_bytes_never_raise(data: bytes) -> None:
    for blob in (data, b"<13>" + data, b"<13>1 " + data):
        rec = parse_syslog_datagram(blob)
        assert rec is None or isinstance(rec, LogLine)


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12), st.integers(1, 31), st.integers(0, 25), st.integers(0, 59), st.integers(0, 59),
       st.none() | st.text("0123456789", min_size=1, max_size=6), st.none() | st.integers(1990, 2030),
       st.lists(st.integers(1999, 2030), min_size=1, max_size=3))
def test_stamps_made_from_cached_seconds_are_the_printed_time(month, day, hh, mi, ss, frac, printed, years) -> None:
    """A stamp's whole seconds are made once and its fraction added: the same time as made
    directly, whichever year a buffer gives, a date that does not exist still none."""
    stamp = f"{_MONTH_NAMES[month - 1]} {day:2d}{f' {printed}' if printed else ''} {hh:02d}:{mi:02d}:{ss:02d}"
    stamp += f".{frac}" if frac else ""
    for year in years + years:  # the second time from the caches
        try:
            expected = datetime(printed or year, month, day, hh, mi, ss, int(frac.ljust(6, "0")) if frac else 0)
        except ValueError:
            expected = None
        record = parse_log_line(f"*{stamp} UTC: %SYS-5-CONFIG_I: x", year=year)
        assert record is not None and record.timestamp == expected and record.timestamp_text == f"{stamp} UTC"


def test_the_stamp_caches_stay_bounded() -> None:
    import collector.detect.logline as logline

    start = datetime(2026, 3, 1)
    for i in range(logline._CACHE_LIMIT + 10):
        when = start + timedelta(seconds=i, microseconds=i)
        record = parse_log_line(f"*{when:%b %d %H:%M:%S.%f}: %SYS-5-CONFIG_I: x", year=2026)
        assert record is not None and record.timestamp == when
    assert 0 < len(logline._SECONDS) <= logline._CACHE_LIMIT and 0 < len(logline._FRACTIONS) <= logline._CACHE_LIMIT
