"""`show logging`, syslog archives and debug transcripts from real routers
(tests/fixtures/real, sources in its README.md). Expected values are read by hand off the
files; none is produced by running the parser.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from ipaddress import ip_address
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.cli import cli
from collector.detect.logline import (
    invalid_spi_fields,
    iter_archive_records,
    iter_log_records,
    parse_delete_notify_ignored,
    parse_invalid_spi,
    parse_invalid_spi_record,
    parse_log_line,
)
from collector.parsing import LOG_RECORD_FIELDS, default_registry

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
RECEIVED = datetime(2025, 12, 30, 12, 0, tzinfo=timezone.utc)


def show_logging(name: str) -> list[dict]:
    result = default_registry().parse("cisco_ios", "show logging", (REAL / name).read_text())
    assert result.error is None and result.template == "cisco_ios_show_logging_header.textfsm"
    return result.records


def cols(records: list[dict], *keys: str) -> list[tuple]:
    return [tuple(r[k] for k in keys) for r in records]


# --------------------------------------------------------------------------- show logging: records

STAMPS = ("sequence", "flag", "month", "day", "year", "time", "timezone", "uptime", "facility", "severity", "mnemonic")

SHOW_LOGGING = {
    # sequence numbers, no msec; the first buffer line `7:04: %LINEPROTO...` is the cut tail
    # of a record overwritten by the wrapping buffer: not a record
    "show_logging/ios_seq_wrapped_ntc1.txt": ("16384", "22860", [
        ("22701", "", "Jun", "19", "", "03:02:31", "", "", "LINEPROTO", "5", "UPDOWN"),
        ("22702", "", "Jun", "19", "", "03:02:32", "", "", "LINK", "3", "UPDOWN"),
        ("22703", "", "Jun", "19", "", "03:02:37", "", "", "LINK", "3", "UPDOWN"),
    ]),
    # sequence numbers, msec, time zone
    "show_logging/ios_seq_msec_tz_ntc4.txt": ("10000000", "552121", [
        ("65478", "", "Dec", "4", "", "11:01:38.694", "EST", "", "MAB", "5", "SUCCESS"),
        ("65480", "", "Dec", "4", "", "11:01:38.702", "EST", "", "AUTHMGR", "5", "FAIL"),
        ("65483", "", "Dec", "4", "", "11:01:52.755", "EST", "", "AUTHMGR", "5", "START"),
    ]),
    # `*` flag, msec, a crypto record with an indented continuation line
    "show_logging/ios_flag_msec_crypto_ntc5.txt": ("100000", "10048", [
        ("", "*", "Sep", "14", "", "05:59:54.113", "", "", "LINEPROTO", "5", "UPDOWN"),
        ("", "*", "Sep", "14", "", "06:00:45.693", "", "", "CRYPTO", "4", "PKT_REPLAY_ERR"),
        ("", "*", "Sep", "14", "", "06:07:26.245", "", "", "LINEPROTO", "5", "UPDOWN"),
    ]),
    # sequence numbers on some records only, a debug line without a mnemonic, unindented
    # continuation lines (the SYS-5-RESTART banner)
    "show_logging/ios_msec_seq_mixed_ntc3.txt": ("10000000", "25903", [
        ("", "", "Jan", "2", "", "12:00:05.047", "", "", "IOS_LICENSE_IMAGE_APPLICATION", "6", "LICENSE_LEVEL"),
        ("48", "", "Dec", "2", "", "12:09:21.207", "", "", "", "", ""),
        ("49", "", "Dec", "2", "", "12:09:23.643", "", "", "LINEPROTO", "5", "UPDOWN"),
        ("50", "", "Dec", "2", "", "12:09:25.715", "", "", "SYS", "5", "RESTART"),
        ("51", "", "Dec", "2", "", "12:09:25.719", "", "", "SNMP", "5", "COLDSTART"),
    ]),
    "show_logging/xe_flag_msec_genie13.txt": ("214748364", "", [
        ("", "*", "Aug", "23", "", "14:04:05.376", "", "", "LINEPROTO", "5", "UPDOWN"),
        ("", "*", "Aug", "23", "", "14:04:05.377", "", "", "LINEPROTO", "5", "UPDOWN"),
    ]),
}


@pytest.mark.parametrize("name", sorted(SHOW_LOGGING))
def test_show_logging_one_record_per_log_record(name: str) -> None:
    size, logged, expected = SHOW_LOGGING[name]
    records = show_logging(name)
    assert cols(records, *STAMPS) == expected
    assert {r["buffer_size"] for r in records} == {size}
    assert {r["buffer_messages"] for r in records} == {logged}
    assert all(set(LOG_RECORD_FIELDS) <= set(r) for r in records)


def test_show_logging_messages_and_continuations() -> None:
    crypto = show_logging("show_logging/ios_flag_msec_crypto_ntc5.txt")[1]
    assert crypto["message"] == "decrypt: replay check failed connection id=29, sequence number=219"
    restart = show_logging("show_logging/ios_msec_seq_mixed_ntc3.txt")[3]
    assert restart["message"].startswith("System restarted -- Cisco IOS Software, C2900 Software")
    assert restart["message"].endswith("Compiled Mon 19-Sep-11 17:41 by prod_rel_team")
    debug = show_logging("show_logging/ios_msec_seq_mixed_ntc3.txt")[1]
    assert debug["message"] == "CEF-HWIDB: EDSP0 LES switching vector set to Null"


def test_show_logging_time_zone_and_wlc_buffer() -> None:
    est = show_logging("show_logging/ios_tz_est_genie1.txt")
    # 7 records, `Rollback:` lines have no mnemonic
    assert [r["mnemonic"] for r in est] == ["DUPADDR", "DUPADDR", "CONFIG_I", "", "CONFIG_R", "", "CONFIG_R"]
    assert {r["timezone"] for r in est} == {"EST"} and est[3]["message"] == "Rollback:Acquired Configuration lock."
    wlc = show_logging("show_logging/xe_wlc_genie15.txt")
    # the buffer holds 30 stamped records after the cut `OIN_DISJOIN: ...` fragment
    assert len(wlc) == 30 and wlc[0]["mnemonic"] == "CONFIG_I" and wlc[-1]["time"] == "13:06:40.399"
    assert wlc[1]["facility"] == "APMGR_TRACE_MESSAGE" and wlc[1]["severity"] == "2"


def test_show_logging_timestamp_forms_from_the_cisco_reference() -> None:
    records = show_logging("show_logging/cisco_doc_timestamp_forms.txt")
    assert cols(records, "sequence", "flag", "month", "day", "year", "time", "timezone", "uptime") == [
        ("75", "", "", "", "", "", "", "4w6d"),
        ("", "", "", "", "", "", "", "1w0d"),
        ("", ".", "Mar", "22", "2004", "23:13:25", "UTC", ""),
        ("", "", "Oct", "13", "", "23:20:05", "UTC", ""),
        ("", "", "Oct", "13", "", "16:23:19", "PDT", ""),
        ("", "", "Oct", "13", "2004", "22:45:31", "UTC", ""),
    ]
    # header absent (an excerpt): the header fields are there, empty
    assert {r["buffer_size"] for r in records} == {""}


def test_show_logging_year_msec_zone_and_eem() -> None:
    first, eem = show_logging("show_logging/eem_year_msec_tz_excerpt.txt")
    assert (first["flag"], first["year"], first["time"], first["timezone"]) == ("*", "2018", "12:45:34.347", "PDT")
    assert (eem["facility"], eem["mnemonic"]) == ("HA_EM", "LOG")
    assert eem["message"] == "sw_stack: ## FreeZTP configuration received via TFTP, run 'sw_stack' EEM applet in 15s."
    up = show_logging("show_logging/eem_uptime_excerpt.txt")
    assert cols(up, "uptime", "mnemonic") == [("07:02:19", "LOG"), ("07:03:19", "LOG")]


def test_show_logging_empty_buffer_keeps_the_header() -> None:
    text = (REAL / "show_logging/ios_seq_wrapped_ntc1.txt").read_text()
    header_only = text[: text.index("Log Buffer")] + "Log Buffer (16384 bytes):\n"
    (rec,) = default_registry().parse("cisco_ios", "show logging", header_only).records
    assert rec["buffer_size"] == "16384" and rec["mnemonic"] == "" and rec["raw"] == ""


def test_ntc_show_logging_agrees_on_the_fields_both_read() -> None:
    from ntc_templates.parse import parse_output

    name = "show_logging/ios_seq_msec_tz_ntc4.txt"
    theirs = parse_output(platform="cisco_ios", command="show logging", data=(REAL / name).read_text())
    ours = show_logging(name)
    assert [(int(t["number"]), t["time"], t["timezone"], t["facility"], t["mnemonic"]) for t in theirs] == [
        (int(o["sequence"]), o["time"], o["timezone"], o["facility"], o["mnemonic"]) for o in ours]


def test_cli_parse_returns_one_record_per_log_line() -> None:
    path = REAL / "show_logging/ios_seq_msec_tz_ntc4.txt"
    result = CliRunner().invoke(cli, ["parse", "--command", "show logging", str(path)])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [r["sequence"] for r in records] == ["65478", "65480", "65483"]
    assert records[0]["buffer_messages"] == "552121"


def test_show_logging_with_invalid_spi_records_has_their_fields() -> None:
    text = (REAL / "debug/xe_csr_invspi_isakmp_debug_excerpt.txt").read_text()
    records = default_registry().parse("cisco_xe", "show logging", text).records
    (spi,) = [r for r in records if r["mnemonic"] == "RECVD_PKT_INV_SPI"]
    assert (spi["srcaddr"], spi["destaddr"], spi["spi"], spi["prot"], spi["interface"]) == (
        "103.1.1.1", "61.128.1.1", "0x3EA71AED", "50", "GigabitEthernet1")
    others = [r for r in records if r["mnemonic"] != "RECVD_PKT_INV_SPI"]
    assert others and all(r["srcaddr"] == "" and r["spi"] == "" for r in others)


# --------------------------------------------------------------------------- syslog/ variants

# inv_spi_variants.txt, one line each: (seq, pri, host, src, dst, spi, interface, valid event)
VARIANTS = [
    (None, None, None, "11.1.1.3", "213.163.222.7", 0x68842105, "Ethernet0/0", True),
    (None, None, None, "10.1.1.1", "10.10.1.2", 0xB761863E, None, True),
    (None, None, None, "10.1.1.1", "10.10.1.2", 0xB761863E, None, True),
    # 221607: the document's hex and decimal SPIs disagree (edited by hand): not an event
    (None, None, None, "10.40.40.1", "10.30.30.1", 0x215EBFF1, None, False),
    (None, None, None, "10.20.20.1", "10.10.10.1", 0x241BBFF1, "Tunnel10001", False),
    (None, None, None, "103.1.1.1", "61.128.1.1", 0x3EA71AED, "GigabitEthernet1", True),
    (None, None, None, "161.132.38.201", "103.163.246.69", 0x136D8924, "Ethernet0/1", True),
    (91, 0, "mydevice.com", "150.3.1.3", "150.1.1.1", 0x72662541, None, True),
    (None, None, None, "10.10.10.10", "10.20.20.10", 0x22642F0C, None, True),  # `decaps rec'd`
    (None, None, None, "1.1.56.6", "1.1.100.10", 0x33C701EA, None, True),  # ``rec`d``
    (None, None, None, "125.240.132.86", "198.51.100.7", 0x77B40000, "GigabitEthernet0/0/0", True),
]


def _variant_lines() -> list[str]:
    return (REAL / "syslog/inv_spi_variants.txt").read_text().splitlines()


@pytest.mark.parametrize("index", range(len(VARIANTS)))
def test_every_real_variant(index: int) -> None:
    line = _variant_lines()[index]
    seq, pri, host, src, dst, spi, ifc, valid = VARIANTS[index]
    record = parse_log_line(line, year=2025)
    assert record is not None and record.mnemonic == "CRYPTO-4-RECVD_PKT_INV_SPI"
    assert (record.seq, record.pri, record.hostname) == (seq, pri, host)
    fields = invalid_spi_fields(record)
    assert fields is not None
    assert (fields["srcaddr"], fields["destaddr"], int(fields["spi"], 16), fields["interface"] or None) == (
        src, dst, spi, ifc)
    event = parse_invalid_spi(line, router="r", source="syslog", received_at=RECEIVED)
    assert (event is not None) is valid
    if valid:
        assert (event.flow.src, event.flow.dst, event.flow.spi, event.interface) == (
            ip_address(src), ip_address(dst), spi, ifc)


@pytest.mark.parametrize("index", range(len(VARIANTS)))
def test_every_real_variant_through_a_relay(index: int) -> None:
    # The same line as rsyslog / syslog-ng store it: relay stamp and host first, with and
    # without <PRI>, or an ISO 8601 stamp.
    line = _variant_lines()[index]
    valid = VARIANTS[index][-1]
    for relayed in (f"Dec  6 00:12:07 10.0.0.1 {line}", f"<189>Dec  6 00:12:07 10.0.0.1 {line}",
                    f"2026-12-06T00:12:07.123456+00:00 rtr-ams-01.example.net {line}"):
        if line.startswith("<"):
            continue  # a PRI inside a relay's line is not a form anyone writes
        event = parse_invalid_spi(relayed, router="r", source="archive", received_at=RECEIVED)
        assert (event is not None) is valid, relayed
        if valid:
            assert event.flow.spi == VARIANTS[index][5]


def test_wrapped_copy_of_a_variant_is_joined() -> None:
    # Cisco note 116005 prints variant 1 wrapped over lines; split it as a document does
    line = _variant_lines()[0]
    cut1, cut2 = line.index("invalid spi for ") + len("invalid spi for"), line.index(" srcaddr=")
    wrapped = "\n".join([line[:cut1], line[cut1 + 1:cut2], line[cut2 + 1:]])
    (record,) = list(iter_archive_records(wrapped, year=2025))
    event = parse_invalid_spi_record(record, router="r", source="archive", received_at=RECEIVED)
    assert event is not None and event.flow.spi == 0x68842105 and event.interface == "Ethernet0/0"


def test_nanog_lines_run_together_by_the_mail_archive() -> None:
    records = list(iter_archive_records((REAL / "syslog/nanog_2017_invspi.txt").read_text(), year=2017))
    # two records and the stamp of a third whose text the poster cut
    assert [r.timestamp_text for r in records[:2]] == ["Dec 18 00:12:07.098", "Dec 18 00:20:47.848"]
    fields = [invalid_spi_fields(r) for r in records[:2]]
    assert [(f["spi"], f["interface"]) for f in fields] == [("0x9E6D41B7", "GigabitEthernet0/2"),
                                                            ("0x430A8C9C", "GigabitEthernet0/2")]
    # the poster replaced the addresses with letters: never an event
    assert all(parse_invalid_spi_record(r, router="r", source="a", received_at=RECEIVED) is None for r in records)


def test_pastebin_scan_sources() -> None:
    records = list(iter_archive_records((REAL / "syslog/pastebin_f2b1tc77_scan.txt").read_text(), year=2025))
    assert [invalid_spi_fields(r)["srcaddr"] for r in records] == ["125.240.132.86", "111.253.25.1"]
    assert [r.timestamp_text for r in records] == ["Nov 9 21:10:13", "Nov 9 21:10:16"]


def test_ossec_relay_archive() -> None:
    records = list(iter_archive_records((REAL / "syslog/ossec_relay_cisco_ios.txt").read_text(), year=2025))
    assert [(r.seq, r.hostname, r.mnemonic) for r in records] == [
        (82, "RouterName", "SYS-5-CONFIG_I"),
        (83, "RouterName", "SYS-6-LOGGINGHOST_STARTSTOP"),
        (89, "RouterName", "SYS-5-CONFIG_I"),
        (93, "RouterName", None),
        (96, "RouterName", "SEC-6-IPACCESSLOGP"),
        (636, "cisco2621", "SEC-6-IPACCESSLOGP"),
    ]
    # the router's own stamp wins over the relay's; without one, the relay's is used
    assert records[0].timestamp == datetime(2025, 9, 6, 14, 12, 56, 872000)
    assert records[2].timestamp == datetime(2025, 9, 6, 9, 25, 12)
    assert (records[5].timestamp_text, records[5].tz, records[5].authoritative) == ("Jul 10 15:58:56.590 EDT", "EDT", False)
    assert records[3].message == "SSH2 0: Unexpected message received"


# --------------------------------------------------------------------------- debug transcripts


def test_delete_notify_ignored_ios_xe_form() -> None:
    lines = (REAL / "debug/xe_csr_invspi_isakmp_debug_excerpt.txt").read_text().splitlines()
    found = [d for d in map(parse_delete_notify_ignored, lines) if d is not None]
    assert [(str(d.src), str(d.dst), d.spi, d.conn_id) for d in found] == [
        ("61.128.1.1", "103.1.1.1", 0x3EA71AED, 0),
        ("61.128.1.1", "103.1.1.1", 0x3EA71AED, 0),
        ("61.128.1.1", "103.1.1.1", 0xD9161513, 0),
        ("61.128.1.1", "103.1.1.1", 0xD9161513, 0),
    ]
    # in a show-logging read the unstamped debug lines are records of their own
    records = list(iter_log_records("\n".join(lines), year=2025))
    assert sum("ignoring request to send delete notify" in r.message for r in records) == 4


def test_delete_notify_ignored_ios_form() -> None:
    text = (REAL / "debug/ios15_hsrp_invspi_excerpt.txt").read_text()
    line = next(ln for ln in text.splitlines() if "ignoring request" in ln)
    # the author's `(#3)` annotation is not router output: strip it as the README says
    router_line = line.rsplit(" (#", 1)[0]
    found = parse_delete_notify_ignored(router_line)
    assert found is not None and (str(found.src), str(found.dst), found.spi, found.conn_id) == (
        "1.1.100.10", "1.1.56.6", 0x33C701EA, None)


def test_ios_isakmp_debug_with_utc_stamps() -> None:
    records = list(iter_log_records((REAL / "debug/ios15_isakmp_mm_pastebin_excerpt.txt").read_text(), year=2025))
    assert records[0].timestamp_text == "Mar 13 15:29:24.294 UTC" and records[0].tz == "UTC"
    assert records[0].message.startswith("ISAKMP (0): received packet from 86.183.x.y dport 500")
    assert all(r.mnemonic is None for r in records)


@pytest.mark.parametrize(("line", "pri", "seq", "host", "stamp"), [
    # `logging origin-id hostname`: the host after the sequence number, before the stamp
    ("<189>124: CORE-RTR1: Sep 23 10:15:33.456 UTC: %SYS-5-CONFIG_I: Configured from console by admin on vty0 "
     "(10.1.0.5)", 189, 124, "CORE-RTR1", "Sep 23 10:15:33.456 UTC"),
    ("CORE-RTR1: *Sep 23 10:15:34.789: %LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, changed state to up",
     None, None, "CORE-RTR1", "Sep 23 10:15:34.789"),
    # an empty sequence field after the PRI
    ("<133>: *Mar  1 18:48:50.483 UTC: %SYS-5-CONFIG_I: Configured from console by vty2 (10.34.195.36)",
     133, None, None, "Mar  1 18:48:50.483 UTC"),
    # a relay's header in front of all that
    ("Dec  6 00:12:07 rtr1.example.net 123: rtr1: Dec  6 00:12:06: %SYS-5-CONFIG_I: Configured from console",
     None, 123, "rtr1", "Dec  6 00:12:06"),
])
def test_hostname_prefix_forms(line: str, pri, seq, host, stamp) -> None:
    record = parse_log_line(line, year=2026)
    assert record is not None and record.mnemonic is not None
    assert (record.pri, record.seq, record.hostname, record.timestamp_text) == (pri, seq, host, stamp)


def test_pdf_copy_broken_inside_values_is_joined() -> None:
    line = _variant_lines()[0]  # ... srcaddr=11.1.1.3, input interface=Ethernet0/0
    cut1, cut2 = line.index("srcaddr=11.1.") + len("srcaddr=11.1."), line.index("Ethernet0/") + len("Ethernet0/")
    wrapped = "\n".join([line[:cut1], line[cut1:cut2], line[cut2:]])
    (record,) = list(iter_archive_records(wrapped, year=2025))
    event = parse_invalid_spi_record(record, router="r", source="archive", received_at=RECEIVED)
    assert event is not None and str(event.flow.src) == "11.1.1.3" and event.interface == "Ethernet0/0"
    # a break that joins into a different, invalid value is still refused
    bad = "\n".join([line[:cut1], "x" + line[cut1:]])
    (record,) = list(iter_archive_records(bad, year=2025))
    assert parse_invalid_spi_record(record, router="r", source="archive", received_at=RECEIVED) is None
