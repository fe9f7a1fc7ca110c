"""report.md / report.json rendering: verdict, side-by-side SA tables, escaping, next steps."""

from __future__ import annotations

import json
import re
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.detect.events import Flow
from collector.diagnose.checks import DiagnosisInputs, RouterSide
from collector.diagnose.findings import EvidenceRef, Finding, Severity
from collector.diagnose.report import (
    KEY_EVENTS_SHOWN,
    IncidentDiagnosis,
    IncidentMeta,
    SaBlock,
    SaEntry,
    SaTable,
    failed_report,
    md_code,
    md_fence,
    md_prose,
    md_text,
    next_steps,
    render_json,
    render_markdown,
    render_report,
    sa_cross_check,
    timeline_summary,
    verdict,
)

SPI = 0xB761863E
FLOW = Flow(router="hub", src=ip_address("10.1.1.1"), dst=ip_address("10.10.1.2"), spi=SPI, prot=50)


def finding(fid: str, severity: Severity = Severity.HIGH, title: str | None = None, rec: str = "",
            router: str | None = None) -> Finding:
    return Finding(id=fid, severity=severity, title=title or f"title of {fid}", detail=f"detail of {fid}",
                   recommendation=rec, router=router)


def inputs(occurrences: int = 2) -> DiagnosisInputs:
    return DiagnosisInputs(flow=FLOW, receiver=RouterSide("hub"), sender=RouterSide("branch"), occurrences=occurrences)


def block(peer: str, outbound: int | None, inbound: list[int], *, interface: str = "Gi0/0",
          outbound_sas: list[int] | None = None) -> SaBlock:
    entries = tuple(SaEntry("inbound", "esp", s, "ACTIVE") for s in inbound)
    entries += tuple(SaEntry("outbound", "esp", s, "ACTIVE") for s in (outbound_sas or ([outbound] if outbound else [])))
    return SaBlock(interface=interface, map_tag="VPN-MAP", local_addr=None, peer=peer, peer_port=500,
                   local_ident="192.168.2.0/24", remote_ident="192.168.1.0/24", current_outbound_spi=outbound,
                   entries=entries, invalid_sa_rcv=3)


HUB_TABLE = SaTable("hub/03_sa.txt", "show crypto ipsec sa peer 10.1.1.1 detail",
                    (block("10.1.1.1", 0x0A0B0C0D, [0x11112222]),), "regex")
BRANCH_TABLE = SaTable("branch/03_sa.txt", "show crypto ipsec sa peer 10.10.1.2 detail",
                       (block("10.10.1.2", SPI, [0x0A0B0C0D]),), "regex")


def diagnosis(findings=(), tables=None, timeline=(), meta=None, occurrences: int = 2) -> IncidentDiagnosis:
    return IncidentDiagnosis(
        inputs=inputs(occurrences),
        findings=tuple(findings),
        sa_tables=tables if tables is not None else {"receiver": HUB_TABLE, "sender": BRANCH_TABLE},
        timeline=tuple(timeline),
        meta=meta or IncidentMeta(incident_id="inc-1", source="capture", captured_at="2019-09-02T13:30:00+00:00"),
    )


# --------------------------------------------------------------------------------------------
# Verdict


@pytest.mark.parametrize("present, key", [
    (["flow-repeating", "sa-out-of-sync"], "out-of-sync-confirmed"),
    (["flow-repeating", "sa-in-sync"], "recovered"),
    (["flow-repeating"], "out-of-sync-likely"),
    (["single-occurrence", "sa-sync-unconfirmed"], "out-of-sync-likely"),
    (["transient-at-rekey", "sa-in-sync"], "transient"),
    (["single-occurrence"], "single"),
    (["qfp-drops-unlogged"], "silent-drops"),
    (["dpd-missing"], "inconclusive"),
    ([], "inconclusive"),
])
def test_verdict_from_finding_ids(present, key):
    assert verdict([finding(i) for i in present], inputs()).key == key


def test_confirmed_verdict_uses_the_finding_title_with_the_spi():
    title = "SAs out of sync, confirmed: branch encrypts with SPI 0xB761863E, unknown to hub"
    v = verdict([finding("sa-out-of-sync", title=title)], inputs())
    assert v.headline == title
    markdown = render_markdown(diagnosis([finding("sa-out-of-sync", title=title)]))
    assert f"**Verdict: {title}**" in markdown


# --------------------------------------------------------------------------------------------
# SA tables side by side


def _table_after(markdown: str, heading: str) -> list[str]:
    lines = markdown.splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows


def _cells(row: str) -> list[str]:
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_side_by_side_table_has_both_ends_in_columns():
    rows = _table_after(render_markdown(diagnosis()), "## SA tables, side by side")
    header = _cells(rows[0])
    assert "hub (receiver, 10.10.1.2)" in header[1] and "branch (sender, 10.1.1.1)" in header[2]
    by_label = {_cells(r)[0].strip(): _cells(r) for r in rows[2:]}
    outbound = by_label["**current outbound spi**"]
    assert "0x0A0B0C0D" in outbound[1]
    assert "**0xB761863E**" in outbound[2]  # the logged SPI, highlighted on the sender
    inbound = by_label["**inbound SAs**"]
    assert "0x11112222" in inbound[1] and "0x0A0B0C0D" in inbound[2]
    assert all(len(_cells(r)) == 3 for r in rows)


def test_cross_check_finds_the_missing_spi_in_one_direction_only():
    checks = sa_cross_check(diagnosis())
    assert [(c["direction"], c["spi"], c["known"]) for c in checks] == [
        ("branch → hub", "0xB761863E", False),
        ("hub → branch", "0x0A0B0C0D", True),
    ]
    markdown = render_markdown(diagnosis())
    assert "**no** — missing from hub's inbound SAs" in markdown


def test_missing_and_empty_tables_are_told_apart():
    empty = SaTable("hub/03_sa.txt", "show crypto ipsec sa peer 10.1.1.1 detail", (), "regex")
    markdown = render_markdown(diagnosis(tables={"receiver": empty, "sender": None}))
    rows = _table_after(markdown, "## SA tables, side by side")
    outbound = next(_cells(r) for r in rows if "current outbound spi" in r)
    assert outbound[1].strip() == "no SA with this peer"
    assert outbound[2].strip() == "not captured"
    assert sa_cross_check(diagnosis(tables={"receiver": empty, "sender": None})) == []


def test_zero_outbound_spi_means_no_sa():
    table = SaTable("b", "c", (block("10.10.1.2", 0, [0x0A0B0C0D]),), "regex")
    checks = sa_cross_check(diagnosis(tables={"receiver": HUB_TABLE, "sender": table}))
    assert checks[0]["spi"] == "0x0" and checks[0]["known"] is None
    assert "0x0 (no SA)" in render_markdown(diagnosis(tables={"receiver": HUB_TABLE, "sender": table}))


def test_device_text_cannot_break_the_table_or_inject_html():
    hostile = SaTable("hub/x.txt", "c", (block("10.1.1.1", 5, [6], interface="Tu|1<script>alert(1)</script>`"),),
                      "regex")
    markdown = render_markdown(diagnosis(tables={"receiver": hostile, "sender": BRANCH_TABLE}))
    rows = _table_after(markdown, "## SA tables, side by side")
    assert all(len(_cells(r)) == 3 for r in rows)
    assert "<script>" not in markdown
    assert "\\<script\\>" in markdown


# --------------------------------------------------------------------------------------------
# Escaping helpers


def test_md_text_escapes_and_flattens():
    assert md_text("a|b\nc *d* <e>") == "a\\|b c \\*d\\* \\<e\\>"


def test_md_prose_keeps_code_spans_and_escapes_the_rest():
    assert md_prose("Run `debug crypto condition peer ipv4 <peer>` on <b>") == \
        "Run `debug crypto condition peer ipv4 <peer>` on \\<b\\>"


def test_md_code_falls_back_when_a_span_cannot_hold_the_text():
    assert md_code("show run") == "`show run`"
    assert md_code("a|b") == "a\\|b"
    assert md_code("a`b") == "a\\`b"


def test_md_fence_is_longer_than_any_backtick_run():
    fenced = md_fence(["x ```` y"])
    assert fenced.startswith("`````text\n") and fenced.endswith("\n`````")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=80))
def test_md_text_never_leaves_a_raw_pipe_newline_or_tag(text):
    out = md_text(text)
    assert "\n" not in out and "\r" not in out
    assert not re.search(r"(?<!\\)\|", out)
    assert not re.search(r"(?<!\\)<", out)


# --------------------------------------------------------------------------------------------
# Findings, next steps, JSON


def test_findings_are_rendered_with_evidence_and_recommendation():
    f = Finding(id="recovery-missing", severity=Severity.MEDIUM, title="crypto isakmp invalid-spi-recovery is not "
                "configured on hub", detail="why", evidence=(EvidenceRef("hub/05_cfg.txt", 12, "crypto map M 10"),),
                recommendation="Add `crypto isakmp invalid-spi-recovery` (global configuration) on hub.", router="hub")
    markdown = render_markdown(diagnosis([f]))
    assert "### 1. [MEDIUM] crypto isakmp invalid-spi-recovery is not configured on hub — hub" in markdown
    assert "hub/05_cfg.txt:12: crypto map M 10" in markdown
    assert "**Recommendation:** Add `crypto isakmp invalid-spi-recovery` (global configuration) on hub." in markdown


def test_next_steps_worst_first_each_once():
    findings = [finding("a", Severity.LOW, rec="same"), finding("b", Severity.HIGH, rec="fix b"),
                finding("c", Severity.MEDIUM, rec="same"), finding("d", Severity.INFO)]
    steps = next_steps(findings, IncidentMeta("i", "capture"))
    assert [s["text"] for s in steps] == ["fix b", "same"]
    assert steps[1]["finding"] == "c"  # the worse of the two findings that share it
    incomplete = next_steps([], IncidentMeta("i", "capture", complete=False, incomplete_reasons=("x",)))
    assert len(incomplete) == 1 and "incomplete" in incomplete[0]["text"]


def test_json_report_is_plain_data_with_findings_and_tables():
    findings = [finding("sa-out-of-sync", rec="clear it", router="branch"), finding("dpd-missing", Severity.MEDIUM)]
    markdown, data = render_report(diagnosis(findings))
    assert json.loads(json.dumps(data)) == data
    assert data["schema"] == "collector.incident-report/1"
    assert data["verdict"]["key"] == "out-of-sync-confirmed"
    assert data["findings"] == [f.to_dict() for f in findings]
    assert data["flow"] == {"receiver": "hub", "srcaddr": "10.1.1.1", "destaddr": "10.10.1.2", "spi": "0xB761863E",
                            "spi_decimal": SPI, "prot": 50}
    assert data["sa_tables"]["sender"]["current_outbound_spis"] == ["0xB761863E"]
    assert data["sa_cross_check"][0]["known"] is False
    assert "verdict_md" not in data["sa_cross_check"][0]
    assert markdown.count("### ") == 2


def test_incomplete_capture_and_integrity_problems_are_shown():
    meta = IncidentMeta("inc", "bundle b", complete=False, incomplete_reasons=("branch: session lost",),
                        integrity_problems=("hub/02.txt: changed since the bundle was sealed (sha256 differs)",),
                        capture_errors={"branch": "session lost"}, sender_in_inventory=False)
    markdown = render_markdown(diagnosis(meta=meta))
    assert "**The capture is incomplete:** branch: session lost" in markdown
    assert "**Bundle integrity:** hub/02.txt: changed" in markdown
    assert "not in the inventory" in markdown
    assert render_json(diagnosis(meta=meta))["capture"]["complete"] is False


# --------------------------------------------------------------------------------------------
# Timeline


def row(router: str, t: str, mnemonic: str | None, line: str) -> dict:
    return {"router": router, "role": "receiver", "device_time": t, "agent_time": t, "mnemonic": mnemonic, "line": line}


def test_timeline_summary_counts_and_key_lines():
    rows = [row("hub", "t1", "SYS-5-CONFIG_I", "config"),
            row("hub", "t2", "CRYPTO-4-RECVD_PKT_INV_SPI", "inv 1"),
            row("hub", "t3", None, "ISAKMP: ignoring request to send delete notify (no ISAKMP sa) ..."),
            row("branch", "t4", None, "ISAKMP: (0):found peer pre-shared key"),
            row("hub", "t5", "CRYPTO-4-RECVD_PKT_INV_SPI", "inv 2")]
    summary = timeline_summary(rows)
    assert summary["routers"] == {"hub": {"records": 4, "invalid_spi": 2, "debug": 1},
                                  "branch": {"records": 1, "invalid_spi": 0, "debug": 1}}
    assert [e["line"] for e in summary["key_events"]] == [
        "inv 1", "ISAKMP: ignoring request to send delete notify (no ISAKMP sa) ...", "inv 2"]
    assert summary["first_invalid_spi"]["line"] == "inv 1" and summary["last_invalid_spi"]["line"] == "inv 2"


def test_timeline_summary_keeps_head_and_tail_of_long_runs():
    rows = [row("hub", f"t{i:03d}", "CRYPTO-4-RECVD_PKT_INV_SPI", f"inv {i}") for i in range(100)]
    summary = timeline_summary(rows)
    kept = [e["line"] for e in summary["key_events"]]
    assert len(kept) == KEY_EVENTS_SHOWN and kept[0] == "inv 0" and kept[-1] == "inv 99"
    assert summary["key_events_omitted"] == 100 - KEY_EVENTS_SHOWN
    markdown = render_markdown(diagnosis(timeline=rows))
    assert f"{100 - KEY_EVENTS_SHOWN} more key lines" in markdown


@pytest.mark.parametrize("count", [1, KEY_EVENTS_SHOWN - 1, KEY_EVENTS_SHOWN, KEY_EVENTS_SHOWN + 1, 1000])
def test_timeline_summary_keeps_the_first_two_thirds_and_the_last_third_of_what_it_shows(count):
    """Counted as the rows go by (a busy router's timeline holds thousands of key lines):
    the same lines as taking them from the full list."""
    rows = [row("hub", f"t{i:04d}", "CRYPTO-4-RECVD_PKT_INV_SPI", f"inv {i}") for i in range(count)]
    every = [f"inv {i}" for i in range(count)]
    head, tail = KEY_EVENTS_SHOWN * 2 // 3, KEY_EVENTS_SHOWN // 3
    want = every if count <= KEY_EVENTS_SHOWN else every[:head] + every[-tail:]
    summary = timeline_summary(iter(rows))
    assert [e["line"] for e in summary["key_events"]] == want
    assert summary["key_events_omitted"] == count - len(want)
    assert (summary["first_invalid_spi"]["line"], summary["last_invalid_spi"]["line"]) == (every[0], every[-1])


def test_no_logging_means_no_timeline():
    assert "there is no timeline" in render_markdown(diagnosis(timeline=()))


def test_failed_report_says_the_evidence_is_intact():
    markdown, data = failed_report("inc-9", "capture", "ValueError: boom")
    assert data["verdict"]["key"] == "diagnosis-failed" and data["error"] == "ValueError: boom"
    assert "intact" in markdown


def test_invalid_spi_lines_of_other_flows_are_counted_not_listed():
    from ipaddress import ip_address

    from collector.detect.events import Flow

    flow = Flow("hub", ip_address("192.0.2.3"), ip_address("198.51.100.1"), 0xB4251D61, 50)
    mine = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=198.51.100.1, "
            "prot=50, spi=0xB4251D61(3022331233), srcaddr=192.0.2.3, input interface=GigabitEthernet0/0/0")
    scanner = mine.replace("0xB4251D61(3022331233)", "0x028E0000(42860544)").replace("192.0.2.3", "200.174.103.46")
    same_spi_other_sender = mine.replace("srcaddr=192.0.2.3", "srcaddr=192.0.2.9")
    rows = [row("hub", "t1", "CRYPTO-4-RECVD_PKT_INV_SPI", scanner),
            row("hub", "t2", "CRYPTO-4-RECVD_PKT_INV_SPI", mine),
            row("hub", "t3", "CRYPTO-4-RECVD_PKT_INV_SPI", same_spi_other_sender),
            row("hub", "t4", "CRYPTO-4-RECVD_PKT_INV_SPI", "inv, unreadable")]
    summary = timeline_summary(rows, flow)
    assert summary["routers"]["hub"] == {"records": 4, "invalid_spi": 4, "debug": 0, "other_flows": 2}
    assert [e["line"] for e in summary["key_events"]] == [mine, "inv, unreadable"]
    assert summary["first_invalid_spi"]["line"] == mine
    assert [e["line"] for e in timeline_summary(rows)["key_events"]] == [r["line"] for r in rows]  # no flow: all
    markdown = render_markdown(diagnosis(timeline=rows))
    assert "4 invalid-SPI messages" in markdown
