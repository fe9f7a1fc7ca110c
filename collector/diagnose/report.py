"""An incident's diagnosis as `report.md` (for people) and `report.json` (for tools).

Pure rendering: `render_report(diagnosis)` turns an `IncidentDiagnosis` (the checks'
inputs and findings, both ends' SA tables, the merged timeline, facts about the capture)
into text and JSON-ready data. Building a diagnosis from a capture or a bundle on disk is
`collector.diagnose.incident`'s job.

Everything shown comes from router output, so every piece of device text is escaped for
Markdown (table cells, inline text) or put in a fence longer than any backtick run in it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import ip_address
from typing import Any

from collector.detect.events import Flow
from collector.evidence import NO_DEBUG_AFTER_ARMING
from collector.diagnose.checks import DiagnosisInputs, RouterSide, side_tunnels
from collector.cryptoconfig import Recovery, TunnelConfig
from collector.diagnose.findings import EvidenceRef, Finding, Severity

REPORT_SCHEMA = "collector.incident-report/1"

# Cisco 115801's table prints yes / no / N/A; IKEv2 is this project's own caveat.
RECOVERY_LABEL: dict[Recovery, str] = {
    Recovery.YES: "yes",
    Recovery.NO: "no",
    Recovery.NOT_APPLICABLE: "N/A",
    Recovery.UNKNOWN_IKEV2: "unknown (IKEv2)",
}

INVALID_SPI_MNEMONIC = "CRYPTO-4-RECVD_PKT_INV_SPI"


# --------------------------------------------------------------------------------------------
# What the report is rendered from


@dataclass(frozen=True, slots=True)
class SaEntry:
    """One SA of an `inbound/outbound esp|ah|pcp sas:` section."""

    direction: str  # "inbound" | "outbound"
    protocol: str  # "esp" | "ah" | "pcp"
    spi: int
    status: str | None = None  # "ACTIVE", "ACTIVE(ACTIVE)", "STANDBY" ...
    lifetime: str | None = None  # remaining key lifetime as printed, e.g. "4332650 KB / 3205 s"
    udp_encaps: bool = False  # `in use settings ={... UDP-Encaps ...}`: NAT-T


@dataclass(frozen=True, slots=True)
class SaBlock:
    """One proxy pair of `show crypto ipsec sa` (from `local ident` to the next block)."""

    interface: str | None
    map_tag: str | None
    local_addr: str | None
    peer: str | None  # current_peer
    peer_port: int | None
    local_ident: str | None
    remote_ident: str | None
    current_outbound_spi: int | None  # 0 = no phase 2 SA for this proxy pair
    entries: tuple[SaEntry, ...] = ()
    invalid_sa_rcv: int | None = None  # `#pkts invalid sa (rcv)` (None on the short counter set)

    def spis(self, direction: str, protocols: Iterable[str] = ("esp", "ah")) -> tuple[int, ...]:
        wanted = set(protocols)
        return tuple(e.spi for e in self.entries if e.direction == direction and e.protocol in wanted)

    @property
    def nat_t(self) -> bool:
        return self.peer_port == 4500 or any(e.udp_encaps for e in self.entries)


@dataclass(frozen=True, slots=True)
class SaTable:
    """`show crypto ipsec sa [peer X] [detail]` of one router, as the report needs it."""

    file: str  # bundle file it was read from
    command: str
    blocks: tuple[SaBlock, ...]
    method: str  # "template <name>" or "regex": how the text was read

    @property
    def outbound_spis(self) -> frozenset[int]:
        """`current outbound spi` values (0 included: it means "no SA")."""
        return frozenset(b.current_outbound_spi for b in self.blocks if b.current_outbound_spi is not None)

    @property
    def inbound_spis(self) -> frozenset[int]:
        return frozenset(s for b in self.blocks for s in b.spis("inbound"))

    @property
    def nat_t(self) -> bool | None:
        return any(b.nat_t for b in self.blocks) if self.blocks else None

    def toward(self, peer: str) -> "SaTable":
        """Only the blocks whose current_peer is `peer`; all blocks when none names a peer
        (the command was already filtered with `peer X`, or the peer is behind NAT)."""
        mine = tuple(b for b in self.blocks if b.peer == peer)
        if mine or not any(b.peer for b in self.blocks):
            return SaTable(self.file, self.command, mine or self.blocks, self.method)
        return SaTable(self.file, self.command, (), self.method)


@dataclass(frozen=True)
class IncidentMeta:
    """Facts about the capture itself (not about the routers)."""

    incident_id: str
    source: str  # "capture" or the bundle path it was read from
    captured_at: str | None = None  # ISO time
    armed_at: str | None = None  # every end armed and the receiver's log marked
    armed_ends: Mapping[str, str] = field(default_factory=dict)  # router -> its debugs on (ISO time)
    complete: bool = True
    incomplete_reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    sender_in_inventory: bool = True
    capture_errors: Mapping[str, str] = field(default_factory=dict)  # router -> error
    integrity_problems: tuple[str, ...] = ()  # files whose sha256 no longer matches the manifest
    disarm: Mapping[str, str] = field(default_factory=dict)  # router -> verification result


@dataclass(frozen=True)
class IncidentDiagnosis:
    inputs: DiagnosisInputs
    findings: tuple[Finding, ...]
    sa_tables: Mapping[str, SaTable | None]  # "receiver" / "sender" -> table towards the other end
    timeline: Sequence[Mapping[str, Any]]  # collector.timeline.build_timeline rows
    meta: IncidentMeta


@dataclass(frozen=True, slots=True)
class Verdict:
    key: str  # stable: out-of-sync-confirmed, out-of-sync-likely, recovered, transient, single, silent-drops, inconclusive
    headline: str


# --------------------------------------------------------------------------------------------
# Verdict


def verdict(findings: Sequence[Finding], inputs: DiagnosisInputs) -> Verdict:
    """One line that answers "what is this?", derived from the findings' stable ids."""
    by_id = {f.id: f for f in findings}
    spi = inputs.flow.spi_hex
    if (f := by_id.get("sa-out-of-sync")) is not None:
        return Verdict("out-of-sync-confirmed", f.title)
    if "flow-repeating" in by_id and "sa-in-sync" in by_id:
        return Verdict("recovered", f"SAs were out of sync (SPI {spi} repeated {inputs.occurrences} times) "
                                    "but look in sync at capture time")
    if "flow-repeating" in by_id or "sa-sync-unconfirmed" in by_id:
        why = (f"SPI {spi} repeated {inputs.occurrences} times" if "flow-repeating" in by_id
               else f"SPI {spi} is missing on one side")
        return Verdict("out-of-sync-likely", f"SAs out of sync, likely but not confirmed from both SA tables ({why})")
    if "transient-at-rekey" in by_id:
        return Verdict("transient", f"Transient at rekey: a single message for SPI {spi}")
    if "single-occurrence" in by_id:
        return Verdict("single", f"A single message for SPI {spi}: out of sync not shown")
    if "qfp-drops-unlogged" in by_id:
        return Verdict("silent-drops", "Drops on unknown SPIs with no log message")
    return Verdict("inconclusive", f"Inconclusive: the capture does not show what happened to SPI {spi}")


# --------------------------------------------------------------------------------------------
# Markdown helpers

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!~])")


def md_text(text: object) -> str:
    """Device text safe for inline Markdown and table cells (one line, specials escaped)."""
    flat = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", flat)


_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def md_prose(text: object) -> str:
    """The checks' own sentences (which quote commands in `code spans`) with device values
    inside: keep the code spans, neutralise HTML and line breaks outside them."""
    flat = " ".join(str(text).split())
    out, pos = [], 0
    for m in _CODE_SPAN.finditer(flat):
        out.append(_escape_html(flat[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_escape_html(flat[pos:]))
    return "".join(out)


def _escape_html(text: str) -> str:
    return text.replace("\\", "\\\\").replace("<", "\\<").replace(">", "\\>")


def md_code(text: object) -> str:
    """An inline code span for device text; falls back to escaped text when the text
    holds a backtick or a pipe (neither can be escaped inside a code span in a table)."""
    flat = " ".join(str(text).split())
    if not flat:
        return ""
    if "`" in flat or "|" in flat:
        return md_text(flat)
    return f"`{flat}`"


def md_fence(lines: Iterable[str], info: str = "text") -> str:
    body = "\n".join(line.rstrip() for line in lines)
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def _hex(spi: int | None) -> str:
    return "—" if spi is None else f"0x{spi:08X}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


# --------------------------------------------------------------------------------------------
# Sections


def _side_title(side: RouterSide, role: str, address: str) -> str:
    return f"{side.name} ({role}, {address})"


def _what_happened(d: IncidentDiagnosis) -> list[str]:
    inputs, meta = d.inputs, d.meta
    flow = inputs.flow
    rx, tx = inputs.receiver, inputs.sender
    lines = ["## What happened", ""]
    times = sorted(inputs.occurrence_times)
    when = ""
    if times:
        when = f", first at {times[0].isoformat()}" + (f", last at {times[-1].isoformat()}" if len(times) > 1 else "")
        when += " (receiver's clock)"
    lines.append(
        f"- **{md_text(rx.name)}** (the receiver, {flow.dst}) logged `%{INVALID_SPI_MNEMONIC}` "
        f"{inputs.occurrences} time(s) for packets from **{md_text(tx.name)}** ({flow.src}) on SPI "
        f"`{flow.spi_hex}`, protocol {flow.prot} ({'ESP' if flow.prot == 50 else 'AH'}){when}."
    )
    if not meta.sender_in_inventory:
        lines.append(f"- The sender {flow.src} is not in the inventory: only the receiver was captured.")
    elif inputs.peer_of_sender != flow.dst:
        lines.append(f"- {md_text(tx.name)} knows the receiver as {inputs.peer_of_sender}, not {flow.dst} "
                     "(NAT between them): its SAs and tunnel were read for that address.")
    if meta.armed_at:
        timing = ("before the repeat (they can show the cause)" if inputs.armed_before_repeat
                  else "after the repeat (they show the aftermath only)" if inputs.armed_before_repeat is False
                  else "(timing relative to the repeat not known)")
        ends = "; ".join(f"{md_text(router)} at {at}" for router, at in sorted(meta.armed_ends.items(), key=lambda i: datetime.fromisoformat(i[1])))
        if ends:
            lines.append(f"- Debugs were armed {timing}: {ends}; the receiver's log was marked at "
                         f"{meta.armed_at} (its lines after that mark are repeats caught armed).")
        else:
            lines.append(f"- Debugs were armed at {meta.armed_at}, {timing}.")
    else:
        lines.append("- No debugs were armed for this capture.")
    if meta.captured_at:
        lines.append(f"- Captured at {meta.captured_at} (agent clock).")
    if inputs.nat_t is not None:
        lines.append(f"- NAT-T (UDP 4500): {'yes' if inputs.nat_t else 'no'}.")
    if meta.complete:
        lines.append("- The capture is complete.")
    else:
        lines.append("- **The capture is incomplete:** " + "; ".join(md_text(r) for r in meta.incomplete_reasons))
    for router, error in sorted(meta.capture_errors.items()):
        lines.append(f"- Capture error on {md_text(router)}: {md_text(error)}")
    for note in meta.notes:
        lines.append(f"- Note: {md_text(note)}")
    for problem in meta.integrity_problems:
        lines.append(f"- **Bundle integrity:** {md_text(problem)}")
    for router, result in sorted(meta.disarm.items()):
        lines.append(f"- Disarm check on {md_text(router)}: {md_text(result)}")
    return lines


_KEY_DEBUG = re.compile(
    r"ignoring request to send delete notify|create_sa|installed IPSEC SA|delete_sa|deleting SA|"
    r"DELETE|INITIAL.CONTACT|DPD|R_U_THERE|INVALID_SPI|INVALID_SYNTAX|Invalid SPI|"
    r"Sending DELETE|key_engine_delete_sas|peer_reap",
)
_KEY_MNEMONIC = re.compile(r"^CRYPTO|^IKEV2|^ISAKMP|^IPSEC")
KEY_EVENTS_SHOWN = 30


_LINE_FLOW = re.compile(r"\bspi=0x(?P<spi>[0-9A-Fa-f]+)\b.*?\bsrcaddr=(?P<src>[0-9A-Fa-f:.]+)")


def _other_flow(text: str, flow: Flow | None) -> bool:
    """An invalid-SPI line that names another SPI or sender than the incident's flow (an
    internet scanner's, another tunnel's); a line that cannot be read counts as this flow's."""
    match = _LINE_FLOW.search(text) if flow is not None else None
    if match is None:
        return False
    try:
        return int(match.group("spi"), 16) != flow.spi or ip_address(match.group("src").rstrip(".,")) != flow.src
    except ValueError:
        return False


def timeline_summary(rows: Sequence[Mapping[str, Any]], flow: Flow | None = None) -> dict[str, Any]:
    """Counts per router, the first and last invalid-SPI message, and the key lines
    (invalid SPI, crypto syslog, deletes, notifies, SA creation, DPD) in time order. With
    `flow`, invalid-SPI lines of other flows (a busy receiver's buffer holds scanners' and
    other tunnels' lines) are counted in `other_flows`, not listed as key lines."""
    per_router: dict[str, dict[str, int]] = {}
    # Only what is shown is kept (a busy router's timeline has thousands of key lines):
    # the first KEY_EVENTS_SHOWN, the last third of that, the first and last invalid SPI.
    head_n, tail_n = KEY_EVENTS_SHOWN * 2 // 3, KEY_EVENTS_SHOWN // 3
    first_keys: list[Mapping[str, Any]] = []
    last_keys: deque[Mapping[str, Any]] = deque(maxlen=tail_n)
    keys = 0
    first_invalid = last_invalid = None
    for row in rows:
        router = str(row.get("router"))
        counts = per_router.setdefault(router, {"records": 0, "invalid_spi": 0, "debug": 0})
        counts["records"] += 1
        mnemonic = row.get("mnemonic")
        if mnemonic == INVALID_SPI_MNEMONIC:
            counts["invalid_spi"] += 1
            if _other_flow(str(row.get("line", "")), flow):
                counts["other_flows"] = counts.get("other_flows", 0) + 1
                continue
            if first_invalid is None:
                first_invalid = row
            last_invalid = row
        elif mnemonic is None:
            counts["debug"] += 1
            if not _KEY_DEBUG.search(str(row.get("line", ""))):
                continue
        elif not _KEY_MNEMONIC.search(str(mnemonic)):
            continue
        keys += 1
        if len(first_keys) < KEY_EVENTS_SHOWN:
            first_keys.append(row)
        last_keys.append(row)
    omitted = 0
    key = first_keys
    if keys > KEY_EVENTS_SHOWN:
        omitted = keys - head_n - tail_n
        key = first_keys[:head_n] + list(last_keys)

    def brief(row: Mapping[str, Any]) -> dict[str, Any]:
        return {"router": row.get("router"), "role": row.get("role"), "agent_time": row.get("agent_time"),
                "time_estimated": bool(row.get("time_estimated")),
                "device_time": row.get("device_time"), "mnemonic": row.get("mnemonic"),
                "line": str(row.get("line", "")).split("\n")[0][:300]}

    return {
        "routers": per_router,
        "first_invalid_spi": brief(first_invalid) if first_invalid is not None else None,
        "last_invalid_spi": brief(last_invalid) if last_invalid is not None else None,
        "key_events": [brief(r) for r in key],
        "key_events_omitted": omitted,
    }


def _timeline_section(summary: Mapping[str, Any], meta: IncidentMeta) -> list[str]:
    lines = ["## Timeline", ""]
    routers = summary["routers"]
    if not routers:
        return lines + ["No `show logging` output was captured, so there is no timeline.", ""]
    for name, c in routers.items():
        others = (f" ({c['other_flows']} of other flows, not listed below)" if c.get("other_flows") else "")
        lines.append(f"- {md_text(name)}: {c['records']} log records, {c['invalid_spi']} invalid-SPI messages"
                     f"{others}, {c['debug']} debug lines.")
    lines.append("")
    events = summary["key_events"]
    if events:
        estimates = " ≈: a time the clock readings can only estimate (see the notes)" if any(
            e.get("time_estimated") for e in events) else ""
        lines.append("Key lines, both routers merged in time order (agent clock, through each router's "
                     f"`show clock` readings){';' if estimates else ''}{estimates}:")
        lines.append("")
        rows = [[("≈ " if e.get("time_estimated") else "") + md_text(e["agent_time"] or e["device_time"] or "?"),
                 md_text(e["router"]), md_code(e["line"][:200])] for e in events]
        if summary["key_events_omitted"]:
            cut = KEY_EVENTS_SHOWN * 2 // 3
            rows.insert(cut, ["…", "", f"{summary['key_events_omitted']} more key lines (see timeline.jsonl)"])
        for router, at in sorted(meta.armed_ends.items(), key=lambda item: datetime.fromisoformat(item[1]),
                                 reverse=True):
            # a line above its router's mark was logged before that router's debugs were on
            armed = datetime.fromisoformat(at)
            place = next((i for i, e in enumerate(events)
                          if e["agent_time"] and datetime.fromisoformat(e["agent_time"]) > armed), len(events))
            place += bool(summary["key_events_omitted"]) and place >= KEY_EVENTS_SHOWN * 2 // 3
            rows.insert(place, [md_text(at), md_text(router), "*debugs armed (its last arm step acknowledged)*"])
        lines += _table(["time", "router", "line"], rows)
        lines.append("")
    if meta.armed_at or meta.captured_at:
        lines.append(f"Debugs armed (every end, the receiver's log marked): {meta.armed_at or 'never'}; "
                     f"captured: {meta.captured_at or '?'}.")
        lines.append("")
    return lines


def _entries(block: SaBlock, direction: str, logged: int) -> str:
    shown = []
    for e in block.entries:
        if e.direction != direction or e.protocol == "pcp":
            continue
        text = _hex(e.spi)
        if e.spi == logged:
            text = f"**{text}**"
        extras = [x for x in (e.protocol.upper() if e.protocol != "esp" else None, e.status) if x]
        shown.append(text + (f" ({md_text(', '.join(extras))})" if extras else ""))
    return ", ".join(shown) or "none"


def _per_blocks(table: SaTable | None, fmt) -> str:
    if table is None:
        return "not captured"
    if not table.blocks:
        return "no SA with this peer"
    return "<br>".join(fmt(b) for b in table.blocks)


def _sa_section(d: IncidentDiagnosis) -> list[str]:
    inputs = d.inputs
    flow = inputs.flow
    rx_t, tx_t = d.sa_tables.get("receiver"), d.sa_tables.get("sender")
    logged = flow.spi
    lines = ["## SA tables, side by side", ""]
    lines.append(f"`show crypto ipsec sa` on each end, limited to the SAs with the other end. "
                 f"The logged SPI `{flow.spi_hex}` is in bold where it appears.")
    lines.append("")

    def outbound(b: SaBlock) -> str:
        spi = b.current_outbound_spi
        if spi is None:
            return "—"
        if spi == 0:
            return "0x0 (no SA)"
        return f"**{_hex(spi)}**" if spi == logged else _hex(spi)

    def ident(b: SaBlock) -> str:
        return md_text(f"{b.local_ident or '?'} ↔ {b.remote_ident or '?'}")

    def where(b: SaBlock) -> str:
        return md_text(" / ".join(x for x in (b.interface, b.map_tag) if x) or "?")

    def peer(b: SaBlock) -> str:
        return md_text(f"{b.peer or '?'}" + (f" port {b.peer_port}" if b.peer_port else ""))

    def invalid(b: SaBlock) -> str:
        return "—" if b.invalid_sa_rcv is None else str(b.invalid_sa_rcv)

    def natt(b: SaBlock) -> str:
        return "yes" if b.nat_t else "no"

    def source(t: SaTable | None) -> str:
        return md_code(t.file) if t is not None else "not captured"

    rows = [
        ["read from", source(rx_t), source(tx_t)],
        ["interface / map tag", _per_blocks(rx_t, where), _per_blocks(tx_t, where)],
        ["proxy (local ↔ remote)", _per_blocks(rx_t, ident), _per_blocks(tx_t, ident)],
        ["current peer", _per_blocks(rx_t, peer), _per_blocks(tx_t, peer)],
        ["**current outbound spi**", _per_blocks(rx_t, outbound), _per_blocks(tx_t, outbound)],
        ["**inbound SAs**", _per_blocks(rx_t, lambda b: _entries(b, "inbound", logged)),
         _per_blocks(tx_t, lambda b: _entries(b, "inbound", logged))],
        ["outbound SAs", _per_blocks(rx_t, lambda b: _entries(b, "outbound", logged)),
         _per_blocks(tx_t, lambda b: _entries(b, "outbound", logged))],
        ["#pkts invalid sa (rcv)", _per_blocks(rx_t, invalid), _per_blocks(tx_t, invalid)],
        ["NAT-T", _per_blocks(rx_t, natt), _per_blocks(tx_t, natt)],
    ]
    header = ["", md_text(_side_title(inputs.receiver, "receiver", str(flow.dst))),
              md_text(_side_title(inputs.sender, "sender", str(flow.src)))]
    lines += _table(header, rows)
    lines.append("")
    cross = sa_cross_check(d)
    if cross:
        lines.append("Cross-check: is each end's current outbound SPI among the other end's inbound SAs?")
        lines.append("")
        lines += _table(["direction", "current outbound spi", "known to the receiving end?"],
                        [[md_text(c["direction"]), md_text(c["spi"]), c["verdict_md"]] for c in cross])
        lines.append("")
    return lines


def sa_cross_check(d: IncidentDiagnosis) -> list[dict[str, Any]]:
    """Both directions: the sending end's current outbound SPIs against the receiving end's
    inbound SAs. Empty when either table is missing."""
    inputs = d.inputs
    out: list[dict[str, Any]] = []
    pairs = (
        (inputs.sender, d.sa_tables.get("sender"), inputs.receiver, d.sa_tables.get("receiver")),
        (inputs.receiver, d.sa_tables.get("receiver"), inputs.sender, d.sa_tables.get("sender")),
    )
    for src, src_t, dst, dst_t in pairs:
        if src_t is None or dst_t is None:
            continue
        inbound = dst_t.inbound_spis
        for spi in sorted(src_t.outbound_spis) or [None]:
            direction = f"{src.name} → {dst.name}"
            if spi is None:
                out.append({"direction": direction, "spi": "—", "known": None, "verdict_md": "no SA on the sending end"})
            elif spi == 0:
                out.append({"direction": direction, "spi": "0x0", "known": None,
                            "verdict_md": "no outbound SA (next packet renegotiates)"})
            elif spi in inbound:
                out.append({"direction": direction, "spi": _hex(spi), "known": True, "verdict_md": "yes"})
            else:
                out.append({"direction": direction, "spi": _hex(spi), "known": False,
                            "verdict_md": f"**no** — missing from {md_text(dst.name)}'s inbound SAs"})
    return out


def _config_rows(side: RouterSide, peer) -> tuple[list[list[str]], str]:
    profile = side.profile
    if profile is None:
        return [], "running-config not captured"
    if not profile.tunnels:
        return [], "no IPsec tunnel found in the running-config"
    tunnels, how, _ = side_tunnels(side, peer)
    configured = profile.invalid_spi_recovery is not None
    rows = [[md_text(side.name), md_text(t.name), md_text(t.kind.value), md_text(t.ike_version),
             RECOVERY_LABEL[t.recovery], "yes" if configured else "no", "yes" if t.dpd else "no"]
            for t in tunnels]
    return rows, how


def _config_section(d: IncidentDiagnosis) -> list[str]:
    flow = d.inputs.flow
    lines = ["## Configuration of the tunnel on both ends", ""]
    rows: list[list[str]] = []
    for side, peer in ((d.inputs.receiver, flow.src), (d.inputs.sender, d.inputs.peer_of_sender)):
        found, how = _config_rows(side, peer)
        rows += found
        lines.append(f"- {md_text(side.name)}: {md_text(how)}")
    lines.append("")
    if rows:
        lines += _table(["router", "tunnel", "type", "IKE", "invalid-spi-recovery works (115801)",
                         "invalid-spi-recovery configured", "DPD"], rows)
        lines.append("")
    return lines


def _findings_section(findings: Sequence[Finding]) -> list[str]:
    lines = ["## Findings", ""]
    if not findings:
        return lines + ["No check fired: the capture holds too little to say more.", ""]
    for n, f in enumerate(findings, start=1):
        where = f" — {md_text(f.router)}" if f.router else ""
        lines.append(f"### {n}. [{f.severity.value.upper()}] {md_prose(f.title)}{where}")
        lines.append("")
        lines.append(f"`{f.id}`. {md_prose(f.detail)}")
        lines.append("")
        if f.evidence:
            lines.append("Evidence:")
            lines.append("")
            lines.append(md_fence(_evidence_line(e) for e in f.evidence))
            lines.append("")
        if f.recommendation:
            lines.append(f"**Recommendation:** {md_prose(f.recommendation)}")
            lines.append("")
    return lines


def _evidence_line(e: EvidenceRef) -> str:
    where = f"{e.file}:{e.line}" if e.line is not None else e.file
    text = " ".join(e.text.split("\n"))
    return f"{where}: {text}"


def next_steps(findings: Sequence[Finding], meta: IncidentMeta) -> list[dict[str, Any]]:
    """Recommendations, worst finding first, each once."""
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    for f in sorted(findings, key=lambda f: -f.severity.rank):
        if f.recommendation and f.recommendation not in seen:
            seen.add(f.recommendation)
            steps.append({"finding": f.id, "severity": f.severity.value, "router": f.router, "text": f.recommendation})
    if not meta.complete:
        steps.append({"finding": None, "severity": Severity.LOW.value, "router": None,
                      "text": "The capture is incomplete (see above): check the routers named there by hand, "
                              "including that no debug is left armed (`show debugging`, `show crypto debug-condition`)."})
    return steps


def _next_steps_section(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Next steps", ""]
    if not steps:
        return lines + ["Nothing to do from this capture.", ""]
    for n, s in enumerate(steps, start=1):
        who = f"{md_text(s['router'])}: " if s.get("router") else ""
        lines.append(f"{n}. {who}{md_prose(s['text'])}")
    lines.append("")
    lines.append("The tool carried out none of these steps (its own changes to routers, the debug steps, are "
                 "listed in the manifest with their undo and status); every `clear` command needs an "
                 "operator's decision.")
    lines.append("")
    return lines


# --------------------------------------------------------------------------------------------
# Entry points


def render_markdown(d: IncidentDiagnosis) -> str:
    inputs, meta = d.inputs, d.meta
    flow = inputs.flow
    v = verdict(d.findings, inputs)
    missing = [r for r in meta.incomplete_reasons if r.startswith(NO_DEBUG_AFTER_ARMING)]
    lines = [f"**INCOMPLETE: {md_prose(missing[0])}: this bundle holds no debug trail of the fault.**", ""] \
        if missing else []
    lines += [
        f"# Invalid SPI incident on {md_text(inputs.receiver.name)}: {flow.src} → {flow.dst}, SPI {flow.spi_hex}",
        "",
        f"**Verdict: {md_prose(v.headline)}**",
        "",
        f"Incident {md_code(meta.incident_id)}, diagnosed from {md_code(meta.source)}.",
        "",
    ]
    lines += _what_happened(d)
    lines.append("")
    lines += _timeline_section(timeline_summary(d.timeline, d.inputs.flow), meta)
    lines += _sa_section(d)
    lines += _config_section(d)
    lines += _findings_section(d.findings)
    lines += _next_steps_section(next_steps(d.findings, meta))
    lines.append("---")
    lines.append("Facts: Cisco 115801 (invalid SPI and the recovery table), 116005 (debugs on both ends, armed "
                 "before the event). Bug IDs are pattern matches on public titles, not verdicts.")
    return "\n".join(lines) + "\n"


def _sa_table_data(t: SaTable | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "file": t.file,
        "command": t.command,
        "method": t.method,
        "current_outbound_spis": [_hex(s) for s in sorted(t.outbound_spis)],
        "inbound_spis": [_hex(s) for s in sorted(t.inbound_spis)],
        "blocks": [{
            "interface": b.interface, "map_tag": b.map_tag, "local_addr": b.local_addr, "peer": b.peer,
            "peer_port": b.peer_port, "local_ident": b.local_ident, "remote_ident": b.remote_ident,
            "current_outbound_spi": None if b.current_outbound_spi is None else _hex(b.current_outbound_spi),
            "invalid_sa_rcv": b.invalid_sa_rcv, "nat_t": b.nat_t,
            "sas": [{"direction": e.direction, "protocol": e.protocol, "spi": _hex(e.spi), "status": e.status,
                     "lifetime": e.lifetime} for e in b.entries],
        } for b in t.blocks],
    }


def _side_data(side: RouterSide, role: str, address: str, peer) -> dict[str, Any]:
    tunnels: list[TunnelConfig] = []
    how = None
    if side.profile is not None and side.profile.tunnels:
        found, how, _ = side_tunnels(side, peer)
        tunnels = list(found)
    return {
        "name": side.name,
        "role": role,
        "address": address,
        "software_version": side.software_version,
        "platform_family": side.platform_family,
        "config_captured": side.config_text is not None or side.profile is not None,
        "debug_captured": side.debug_file is not None,
        "invalid_spi_recovery_configured": (side.profile.invalid_spi_recovery is not None) if side.profile else None,
        "tunnels_toward_peer": [{"name": t.name, "kind": t.kind.value, "ike_version": t.ike_version,
                                 "recovery": t.recovery.value, "recovery_label": RECOVERY_LABEL[t.recovery],
                                 "dpd": t.dpd, "peers": list(t.peers)} for t in tunnels],
        "tunnel_selection": how,
    }


def render_json(d: IncidentDiagnosis) -> dict[str, Any]:
    inputs, meta = d.inputs, d.meta
    flow = inputs.flow
    v = verdict(d.findings, inputs)
    return {
        "schema": REPORT_SCHEMA,
        "incident": meta.incident_id,
        "source": meta.source,
        "verdict": {"key": v.key, "headline": v.headline},
        "flow": {"receiver": flow.router, "srcaddr": str(flow.src), "destaddr": str(flow.dst),
                 "spi": flow.spi_hex, "spi_decimal": flow.spi, "prot": flow.prot},
        "occurrences": inputs.occurrences,
        "occurrence_times": [t.isoformat() for t in sorted(inputs.occurrence_times)],
        "nat_t": inputs.nat_t,
        "armed_before_repeat": inputs.armed_before_repeat,
        "rekey_near_event": inputs.rekey_near_event,
        "capture": {"captured_at": meta.captured_at, "armed_at": meta.armed_at, "complete": meta.complete,
                    "incomplete_reasons": list(meta.incomplete_reasons), "notes": list(meta.notes),
                    "sender_in_inventory": meta.sender_in_inventory, "capture_errors": dict(meta.capture_errors),
                    "integrity_problems": list(meta.integrity_problems), "disarm": dict(meta.disarm)},
        "receiver": _side_data(inputs.receiver, "receiver", str(flow.dst), flow.src),
        "sender": _side_data(inputs.sender, "sender", str(flow.src), inputs.peer_of_sender),
        "sa_tables": {"receiver": _sa_table_data(d.sa_tables.get("receiver")),
                      "sender": _sa_table_data(d.sa_tables.get("sender"))},
        "sa_cross_check": [{key: value for key, value in c.items() if key != "verdict_md"} for c in sa_cross_check(d)],
        "timeline_summary": timeline_summary(d.timeline, d.inputs.flow),
        "findings": [f.to_dict() for f in d.findings],
        "next_steps": next_steps(d.findings, meta),
    }


def render_report(d: IncidentDiagnosis) -> tuple[str, dict[str, Any]]:
    """(report.md text, report.json data)."""
    return render_markdown(d), render_json(d)


def failed_report(incident_id: str, source: str, error: str) -> tuple[str, dict[str, Any]]:
    """What goes into a bundle when the diagnosis itself broke: say so, keep the bundle."""
    markdown = (f"# Diagnosis failed for incident {md_text(incident_id)}\n\n"
                f"The evidence in this bundle is intact; the diagnosis could not be produced: {md_text(error)}\n\n"
                "Run `collector report <bundle>` again after an upgrade to retry.\n")
    return markdown, {"schema": REPORT_SCHEMA, "incident": incident_id, "source": source,
                      "verdict": {"key": "diagnosis-failed", "headline": "Diagnosis failed"}, "error": error,
                      "findings": [], "next_steps": []}
