"""The incident timeline: each line of the incident's reads once, in time order, the reads
that held it named; rows read as dicts made anew each time."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

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


# --------------------------------------------------------------------------------------
# Against the rule in plain steps (a dict per row, a list of rows per line: what the
# timeline was before its rows became arrays), on random reads of two routers.

def _plain_rows(captures, *, year, pre_arm=(), trigger_lines=(), receiver=None):
    from collections import Counter
    from datetime import timedelta

    from collector.detect.logline import iter_log_records

    rows, by_text = [], {}
    roles = {c.router: c.role for c in captures}
    offsets = {c.router: c.clock_offset for c in captures}

    def add(order, router, text, source):
        used, previous = Counter(), None
        for n, line in enumerate(iter_log_records(text, year=year)):
            key = (router, line.raw.strip())
            earlier = by_text.setdefault(key, [])
            if used[key] < len(earlier):
                row = earlier[used[key]]
                used[key] += 1
                if source not in row["seen_in"]:
                    row["seen_in"].append(source)
                continue
            agent_time = None
            if line.timestamp is not None:
                agent_time = line.timestamp.replace(tzinfo=timezone.utc) - timedelta(seconds=offsets.get(router) or 0)
            inferred = agent_time is None and previous is not None
            if agent_time is not None:
                previous = agent_time
            elif inferred:
                agent_time = previous
            row = {"router": router, "role": roles.get(router, "receiver" if router == receiver else "sender"),
                   "source": source, "seen_in": [source], "device_time": line.timestamp_text,
                   "agent_time": agent_time.isoformat() if agent_time else None, "time_inferred": inferred,
                   "mnemonic": line.mnemonic, "line": line.raw}
            earlier.append(row)
            used[key] += 1
            rows.append((agent_time or datetime.min.replace(tzinfo=timezone.utc), order, n, row))

    if receiver is not None and trigger_lines:
        add(0, receiver, "\n".join(trigger_lines), "trigger")
    for snapshot in pre_arm:
        add(1, snapshot.router, snapshot.text, "pre-arm read")
    for capture in captures:
        record = capture.output("show logging")
        if record is not None:
            add(2, capture.router, record.text or "", "capture")
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return [r[3] for r in rows]


_LOG_LINES = [A, B, C, "*Dec  6 10:00:02.000: %SYS-5-CONFIG_I: same second, another router or read",
              "ISAKMP: (0):no stamp on this debug line", "   an indented continuation", "1d02h: %LINK-3-UPDOWN: uptime",
              "*Dec  6 09:59:59.999: %CRYPTO-6-IKMP_MODE_FAILURE: older than the rest", ""]


def _read(lines: list[int]) -> str:
    return HEADER + "\n".join(_LOG_LINES[i] for i in lines) + "\n"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, len(_LOG_LINES) - 1), max_size=12), st.lists(st.integers(0, len(_LOG_LINES) - 1), max_size=12),
       st.lists(st.integers(0, len(_LOG_LINES) - 1), max_size=12), st.lists(st.integers(0, 2), max_size=3),
       st.floats(-5, 5))
def test_the_timeline_is_the_plain_rule(hub_before, hub_after, branch_after, trigger, skew):
    hub = replace(_capture(_read(hub_after)[len(HEADER):]), clock_offset=0.0)
    branch = RouterCapture("branch", "sender", "cisco_ios", "10.0.0.1",
                           (CommandResult("branch", "show logging", _read(branch_after), AT, AT),), skew)
    args = dict(year=2026, pre_arm=(LogSnapshot("hub", _read(hub_before), AT), LogSnapshot("branch", _read([0]), AT)),
                trigger_lines=tuple(_LOG_LINES[i] for i in trigger), receiver="hub")
    assert list(build_timeline((hub, branch), **args)) == _plain_rows((hub, branch), **args)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, len(_LOG_LINES) - 1), max_size=12),
       st.none() | st.lists(st.integers(0, len(_LOG_LINES) - 1), max_size=12),
       st.none() | st.lists(st.integers(0, len(_LOG_LINES) - 1), max_size=12),
       st.lists(st.integers(0, 2), max_size=3), st.booleans(), st.floats(-5, 5))
def test_routers_read_once_and_reads_in_source_order_are_the_plain_rule(hub_after, hub_before, branch_after, trigger,
                                                                        pre_arm_lines, skew):
    """The timeline's short cuts against the rule: a router read once has no line digested,
    and reads that each have a source of their own, in source order (one capture, a pre-arm
    read and a capture, the trigger before them), are sorted on their time alone."""
    captures = [replace(_capture(_read(hub_after)[len(HEADER):]), clock_offset=skew)]
    if branch_after is not None:
        captures.append(RouterCapture("branch", "sender", "cisco_ios", "10.0.0.1",
                                      (CommandResult("branch", "show logging", _read(branch_after), AT, AT),), -skew))
    pre_arm = () if hub_before is None else (LogSnapshot("hub", _read(hub_before), AT),)
    args = dict(year=2026, trigger_lines=tuple(_LOG_LINES[i] for i in trigger), receiver="hub")
    expected = _plain_rows(captures, pre_arm=pre_arm if pre_arm_lines else (), **args)
    assert list(build_timeline(captures, pre_arm=pre_arm, pre_arm_lines=pre_arm_lines, **args)) == expected


def test_a_router_read_once_has_no_line_digested(monkeypatch):
    import collector.timeline as timeline

    digested = []
    real = timeline._digest
    monkeypatch.setattr(timeline, "_digest", lambda line: digested.append(line) or real(line))
    rows = build_timeline((_capture(f"{A}\n{B}\n{B}\n"),), year=2026)
    assert len(rows) == 3 and digested == []
    rows = build_timeline((_capture(f"{A}\n{B}\n{B}\n"),), year=2026, pre_arm=(LogSnapshot("hub", f"{HEADER}{A}\n", AT),))
    assert len(rows) == 3 and len(digested) == 4  # the pre-arm read's line, kept; the capture's three, looked up
