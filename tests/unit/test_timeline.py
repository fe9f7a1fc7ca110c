"""The incident timeline: each line of the incident's reads once, in time order, the reads
that held it named; rows read as dicts made anew each time."""

from __future__ import annotations

from datetime import datetime, timezone

from collector.command_results import CommandResult
from collector.core.results import LogSnapshot
from collector.evidence import RouterCapture
from collector.timeline import build_timeline

AT = datetime(2026, 12, 6, 10, 5, tzinfo=timezone.utc)
HEADER = "Log Buffer (8192 bytes):\n"
A = "*Dec  6 10:00:01.000: %SYS-5-CONFIG_I: Configured from console by lab on vty0"
B = "*Dec  6 10:00:02.000: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=10.0.0.1, prot=50, spi=0x1(1), srcaddr=10.0.0.2"
C = "*Dec  6 10:00:03.000: ISAKMP: (1002):deleting SA reason \"Recevied fatal informational\""


def _capture(log: str) -> RouterCapture:
    return RouterCapture("hub", "receiver", "cisco_ios", "10.0.0.2",
                         (CommandResult("hub", "show logging", HEADER + log, AT, AT),), 0.0)


def test_a_line_held_by_two_reads_is_one_row_and_identical_lines_count_by_number():
    """Before arming the buffer held A, B, B; at capture B three times and C: two of those
    B are the ones read before arming, the third is new."""
    rows = build_timeline((_capture(f"{B}\n{B}\n{B}\n{C}\n"),), year=2026,
                          pre_arm=(LogSnapshot("hub", f"{HEADER}{A}\n{B}\n{B}\n", AT),))
    assert [(r["line"][:22], r["source"], r["seen_in"]) for r in rows] == [
        (A[:22], "pre-arm read", ["pre-arm read"]),
        (B[:22], "pre-arm read", ["pre-arm read", "capture"]),
        (B[:22], "pre-arm read", ["pre-arm read", "capture"]),
        (B[:22], "capture", ["capture"]),
        (C[:22], "capture", ["capture"]),
    ]
    assert rows[0] == {"router": "hub", "role": "receiver", "source": "pre-arm read", "seen_in": ["pre-arm read"],
                       "device_time": "Dec  6 10:00:01.000", "agent_time": "2026-12-06T10:00:01+00:00",
                       "time_inferred": False, "mnemonic": "SYS-5-CONFIG_I", "line": A}
    assert rows[4]["mnemonic"] is None  # a debug line


def test_rows_are_made_anew_at_each_read():
    rows = build_timeline((_capture(f"{A}\n{C}\n"),), year=2026)
    first = rows[0]
    first["seen_in"].append("changed")
    first["line"] = "changed"
    assert rows[0]["line"] == A and rows[0]["seen_in"] == ["capture"]
    assert len(rows) == 2 and [r["line"] for r in rows] == [A, C] and [r["line"] for r in rows[1:]] == [C]
