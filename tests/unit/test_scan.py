"""`collector scan`: invalid-SPI flows out of syslog archives and saved `show logging`."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from collector.scan import REPEATED, STILL_GOING, TRANSIENT, ScanError, format_table, scan_files

# The repository's copy of the public captures; the shared folder before that copy is merged.
REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "syslog"
if not REAL.is_dir():
    REAL = Path("/work/shared/real/syslog")

MSG = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr={dst}, "
       "prot=50, spi=0x{spi:08X}({spi}), srcaddr={src}, input interface=GigabitEthernet0/0/0")
OTHER = "%LINEPROTO-5-UPDOWN: Line protocol on Interface Tunnel1, changed state to up"


def _write(path: Path, lines: list[str], *, mtime: str = "2026-12-06 12:00:00", gz: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    stamp = datetime.fromisoformat(mtime).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def _bsd(t: datetime, host: str, body: str, seq: int = 1) -> str:
    """An rsyslog / syslog-ng traditional-format line of what IOS sent."""
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S} {host} {seq}: *{t:%b} {t.day:2d} {t:%H:%M:%S}.123: {body}"


def _by_src(result):
    return {f.src: f for f in result.flows}


# ----------------------------------------------------------------------- real line forms


def test_real_variants_every_valid_form_is_found_and_edited_ones_rejected():
    result = scan_files([REAL / "inv_spi_variants.txt"])
    flows = _by_src(result)
    assert result.matched == 11
    # Every form a router or syslog server really printed is found ...
    assert {"11.1.1.3", "10.1.1.1", "103.1.1.1", "161.132.38.201", "150.3.1.3", "125.240.132.86"} <= set(flows)
    # ... lines 4 and 5 have hand-edited SPIs (hex != decimal): the agent's strict parser
    # refuses them. (Lines 9 and 10, `decaps rec'd` without colon and a typographic
    # backtick, are for logline to decide; scan takes its verdict.)
    assert not {"10.40.40.1", "10.20.20.1"} & set(flows)
    assert result.rejected == result.matched - sum(f.count for f in result.flows)
    # lines 2 and 3 are the same flow (one with one space, one with two before the day)
    assert flows["10.1.1.1"].count == 2 and flows["10.1.1.1"].dst == "10.10.1.2"
    assert flows["10.1.1.1"].spi_hex == "0xB761863E"
    # line 8 came through a syslog server: PRI, sequence number and origin host name
    assert flows["150.3.1.3"].receiver == "mydevice.com"
    # a saved show logging without host names: the receiver is named after the file
    assert flows["11.1.1.3"].receiver == "inv_spi_variants"
    assert flows["11.1.1.3"].first.strftime("%m-%d %H:%M:%S.%f") == "03-12 18:22:10.706000"


def test_real_scan_paste_with_anonymised_addresses_is_rejected(tmp_path):
    result = scan_files([REAL / "pastebin_f2b1tc77_scan.txt", REAL / "nanog_2017_invspi.txt"])
    assert result.flows == [] and result.matched == 3 and result.rejected == 3


def test_real_scan_lines_with_addresses_restored_are_two_transient_flows(tmp_path):
    # The paste's two lines with documentation values for what the poster blanked out:
    # two sources, three seconds apart, one line each: a scan, not a desync.
    text = (REAL / "pastebin_f2b1tc77_scan.txt").read_text()
    text = text.replace("destaddr=x.x.x.x", "destaddr=198.51.100.7").replace("interface=...", "interface=Gi0/0/0")
    path = _write(tmp_path / "edge1.log", text.splitlines())
    result = scan_files([path])
    assert [(f.src, f.count, f.verdict) for f in result.flows] == [
        ("125.240.132.86", 1, TRANSIENT), ("111.253.25.1", 1, TRANSIENT)]
    assert all(f.receiver == "edge1" for f in result.flows)


# ----------------------------------------------------------------------- archive forms


def test_rsyslog_syslog_ng_iso_and_relay_forms(tmp_path):
    t = datetime(2026, 12, 6, 8, 0, 0)
    lines = [
        _bsd(t, "rtr-a", OTHER),
        _bsd(t, "rtr-a", MSG.format(dst="10.0.0.1", src="10.0.0.2", spi=0x1A2B3C4D)),
        # RSYSLOG_FileFormat / syslog-ng ISO stamp; IOS-XE 17 `EDT: :` inside
        "2026-12-06T08:00:30.123456-05:00 rtr-b 77: Dec  6 08:00:30.100 EDT: : "
        + MSG.format(dst="10.0.0.2", src="10.0.0.1", spi=0xBEEF),
        # a relay kept the PRI and wrote the original host in its header
        "<189>Dec  6 08:01:00 rtr-c 12: *Dec  6 08:01:00.500: " + MSG.format(dst="10.0.0.3", src="10.0.0.1", spi=7),
        # a raw datagram as IOS sends it, with origin-id host name
        "<190>91: *Dec  6 08:01:30: rtr-d.example.net " + MSG.format(dst="10.0.0.4", src="10.0.0.1", spi=8),
    ]
    result = scan_files([_write(tmp_path / "network.log", lines)])
    assert result.lines == 5 and result.matched == 4 and result.rejected == 0
    got = {f.receiver: (f.src, f.dst, f.spi, f.first) for f in result.flows}
    assert got == {
        "rtr-a": ("10.0.0.2", "10.0.0.1", 0x1A2B3C4D, datetime(2026, 12, 6, 8, 0, 0)),
        "rtr-b": ("10.0.0.1", "10.0.0.2", 0xBEEF, datetime(2026, 12, 6, 8, 0, 30, 123456)),
        "rtr-c": ("10.0.0.1", "10.0.0.3", 7, datetime(2026, 12, 6, 8, 1, 0)),
        "rtr-d.example.net": ("10.0.0.1", "10.0.0.4", 8, datetime(2026, 12, 6, 8, 1, 30)),
    }


def test_gzip_and_plain_rotations_are_read_together(tmp_path):
    t0 = datetime(2026, 12, 5, 23, 58, 0)
    line = lambda t: _bsd(t, "rtr-a", MSG.format(dst="10.0.0.1", src="10.0.0.2", spi=0x42))  # noqa: E731
    old = _write(tmp_path / "syslog.1.gz", [line(t0), _bsd(t0, "rtr-a", OTHER)], gz=True)
    new = _write(tmp_path / "syslog", [line(t0 + timedelta(minutes=1)), _bsd(t0 + timedelta(minutes=2), "rtr-a", OTHER)])
    result = scan_files([old, new])
    [flow] = result.flows
    assert flow.count == 2 and flow.files == [str(old), str(new)]
    assert flow.verdict == STILL_GOING  # its last line is a minute before the archive's end
    assert result.end == t0 + timedelta(minutes=2)


def test_year_less_stamps_in_a_january_file_belong_to_december_of_the_year_before(tmp_path):
    t = datetime(2026, 12, 31, 23, 59, 0)
    path = _write(tmp_path / "syslog", [_bsd(t, "rtr-a", MSG.format(dst="10.0.0.1", src="10.0.0.2", spi=1))],
                  mtime="2027-01-01 00:10:00")
    assert scan_files([path]).flows[0].first == t


def test_saved_show_logging_receiver_from_inventory(tmp_path):
    text = [
        "Syslog logging: enabled (0 messages dropped, 3 messages rate-limited)",
        "Log Buffer (65536 bytes):",
        "",
        "*Dec  6 09:00:00.001: " + MSG.format(dst="192.0.2.1", src="192.0.2.2", spi=0xABCDEF01),
        "*Dec  6 09:01:00.001: " + MSG.format(dst="192.0.2.1", src="192.0.2.2", spi=0xABCDEF01),
        "*Dec  6 09:02:00.001: " + MSG.format(dst="192.0.2.1", src="203.0.113.9", spi=0x11),
        "*Dec  6 09:30:00.001: " + OTHER,
    ]
    inv = tmp_path / "inventory.yaml"
    inv.write_text("defaults:\n  platform: cisco_xe\n  username: ops\nhosts:\n  hub:\n    hostname: 127.0.0.1\n    addresses: [192.0.2.1]\n"
                   "  spoke:\n    hostname: 127.0.0.2\n    addresses: [192.0.2.2]\n")
    from collector.inventory import load_inventory

    result = scan_files([_write(tmp_path / "hub-show-logging.txt", text)],
                        inventory=load_inventory(inv, resolve_credentials=False))
    flows = _by_src(result)
    assert flows["192.0.2.2"].receiver == "hub"
    assert (flows["192.0.2.2"].known_peer, flows["192.0.2.2"].peer_name) == (True, "spoke")
    assert flows["192.0.2.2"].verdict == REPEATED  # two within 10 min, quiet for 28 min at the end
    assert flows["203.0.113.9"].known_peer is False and flows["203.0.113.9"].verdict == TRANSIENT
    table = format_table(result)
    assert table[0].split()[:4] == ["RECEIVER", "SOURCE", "DESTINATION", "SPI"]
    assert "yes (spoke)" in table[1] and table[1].split()[:5] == ["hub", "192.0.2.2", "192.0.2.1", "0xABCDEF01", "2"]


def test_windows_are_anchored_like_the_agents_tracker(tmp_path):
    # 3 lines 6 minutes apart: the 2nd is inside the 1st window (repeated with occurs=2);
    # with occurs=3 the 3rd falls at 12 min, outside the first 10-min window -> transient.
    t = datetime(2026, 12, 6, 10, 0, 0)
    lines = [_bsd(t + timedelta(minutes=6 * k), "r", MSG.format(dst="10.0.0.1", src="10.0.0.2", spi=5))
             for k in range(3)] + [_bsd(t + timedelta(hours=2), "r", OTHER)]
    path = _write(tmp_path / "s.log", lines)
    assert scan_files([path]).flows[0].verdict == REPEATED
    assert scan_files([path], occurs=3).flows[0].verdict == TRANSIENT
    assert scan_files([path], occurs=3, within=timedelta(minutes=15)).flows[0].verdict == REPEATED


def test_since_time_and_duration(tmp_path):
    t = datetime(2026, 12, 6, 10, 0, 0)
    lines = [_bsd(t + timedelta(minutes=k), "r", MSG.format(dst="10.0.0.1", src="10.0.0.2", spi=5)) for k in range(5)]
    lines.append(_bsd(t + timedelta(hours=1), "r", MSG.format(dst="10.0.0.1", src="10.0.0.3", spi=6)))
    path = _write(tmp_path / "s.log", lines)
    [late] = scan_files([path], since=timedelta(minutes=30)).flows
    assert late.src == "10.0.0.3" and late.verdict == TRANSIENT
    flows = _by_src(scan_files([path], since=datetime(2026, 12, 6, 10, 3)))
    assert flows["10.0.0.2"].count == 2 and flows["10.0.0.2"].first == t + timedelta(minutes=3)


def test_missing_file_is_one_error_naming_it(tmp_path):
    with pytest.raises(ScanError, match="nope.log"):
        scan_files([tmp_path / "nope.log"])


# ----------------------------------------------------------------------- the command


def _collector(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_command_json_lines_and_bad_input(tmp_path):
    t = datetime(2026, 12, 6, 10, 0, 0)
    path = _write(tmp_path / "s.log.gz", [
        _bsd(t, "rtr-a", MSG.format(dst="10.0.0.1", src="10.0.0.2", spi=5)),
        _bsd(t + timedelta(seconds=60), "rtr-a", MSG.format(dst="10.0.0.1", src="10.0.0.2", spi=5)),
    ], gz=True)
    done = _collector("scan", "--json", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [row] = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["receiver"] == "rtr-a" and row["spi"] == "0x00000005" and row["count"] == 2
    assert row["verdict"] == STILL_GOING and row["first"] == "2026-12-06T10:00:00"

    missing = _collector("scan", str(tmp_path / "absent.log"), cwd=tmp_path)
    assert missing.returncode != 0 and "absent.log" in missing.stderr and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    bad_since = _collector("scan", "--since", "yesterday-ish", str(path), cwd=tmp_path)
    assert bad_since.returncode == 2 and "Traceback" not in bad_since.stderr
