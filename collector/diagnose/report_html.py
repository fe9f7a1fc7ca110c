"""An incident as one self-contained web page: `report.html`.

Rendered from the same `IncidentDiagnosis` as report.md (collector.diagnose.report), plus
the router changes of the bundle's manifest (arm and disarm times). The page has no
script, no external file and no network reference: it opens from a mail attachment or a
ticket as it is.

Sections:
  * the verdict and the flow;
  * both routers' timelines side by side on one time axis (an SVG): invalid-SPI lines,
    debug lines and other log lines per router, each router's clock offset already
    applied (timeline rows carry the agent time), with arm, capture and disarm marks;
    then the key lines in two columns, receiver left, sender right, in time order;
  * both SA tables side by side, the logged SPI marked;
  * the findings, with their evidence and recommendations.

Every piece of device text goes through `html.escape`. Elements carry `data-*`
attributes (router, kind, time) so tests and tools can read the page back.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Any

from collector.diagnose.report import (
    INVALID_SPI_MNEMONIC,
    IncidentDiagnosis,
    SaBlock,
    SaTable,
    next_steps,
    sa_cross_check,
    timeline_summary,
    verdict,
)

__all__ = ["render_html", "iter_html", "render_bundle_html", "render_capture_html", "capture_reports", "timeline_marks",
           "TimelineMark"]

# Drawing sizes (CSS pixels).
_WIDTH, _LANE, _LEFT, _RIGHT, _TOP = 1100, 70, 170, 30, 40
_KIND_COLOUR = {"invalid-spi": "#c62828", "debug": "#1565c0", "log": "#9e9e9e"}
_MARK_COLOUR = {"armed": "#2e7d32", "captured": "#6a1b9a", "disarmed": "#ef6c00"}
MAX_KEY_ROWS = 400  # rows of the side-by-side line table; the SVG shows every line

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#212121;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:2em}
.verdict{font-size:1.1em;padding:10px 14px;background:#fff3e0;border-left:5px solid #ef6c00}
table{border-collapse:collapse;width:100%;font-size:.9em}th,td{border:1px solid #ddd;padding:4px 6px;
vertical-align:top;text-align:left}th{background:#f5f5f5}code,pre,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:.85em}pre{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:6px}
mark{background:#ffeb3b;font-weight:bold}.sev-critical,.sev-high{color:#b71c1c}.sev-medium{color:#e65100}
.sev-low,.sev-info{color:#455a64}.legend span{display:inline-block;margin-right:16px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:50%}
td.empty{background:#fcfcfc}.muted{color:#757575}
"""


# --------------------------------------------------------------------------- times


def _parse_time(value: object) -> datetime | None:
    """ISO text or datetime as an aware UTC datetime (naive values are the agent's UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


class TimelineMark:
    """An arm, capture or disarm moment on the common axis (router None: both)."""

    __slots__ = ("kind", "router", "at", "label")

    def __init__(self, kind: str, router: str | None, at: datetime, label: str):
        self.kind, self.router, self.at, self.label = kind, router, at, label

    def __repr__(self) -> str:
        return f"TimelineMark({self.kind!r}, {self.router!r}, {self.at.isoformat()!r})"


def timeline_marks(d: IncidentDiagnosis, actions: Iterable[Mapping[str, Any]] = ()) -> list[TimelineMark]:
    """Arm (each end's debugs on, as the manifest's `armed_ends` says; else the first applied
    change per router; else the incident's armed_at), capture and disarm (last undone
    change per router) moments."""
    marks: list[TimelineMark] = []
    applied: dict[str, datetime] = {}
    undone: dict[str, datetime] = {}
    for action in actions:
        router, at = action.get("router"), _parse_time(action.get("at"))
        if not router or at is None:
            continue
        status = str(action.get("status", ""))
        if status.startswith("undone"):
            undone[router] = max(at, undone.get(router, at))
        elif status in ("applied", "sent"):
            applied[router] = min(at, applied.get(router, at))
    armed = _parse_time(d.meta.armed_at)
    ends = {router: at for router, text in d.meta.armed_ends.items() if (at := _parse_time(text)) is not None}
    if ends:
        marks += [TimelineMark("armed", r, t, f"armed {r}") for r, t in sorted(ends.items())]
    elif applied:
        marks += [TimelineMark("armed", r, t, f"armed {r}") for r, t in sorted(applied.items())]
    elif armed is not None:
        marks.append(TimelineMark("armed", None, armed, "armed"))
    captured = _parse_time(d.meta.captured_at)
    if captured is not None:
        marks.append(TimelineMark("captured", None, captured, "captured"))
    marks += [TimelineMark("disarmed", r, t, f"disarmed {r}") for r, t in sorted(undone.items())]
    return marks


def _kind(row: Mapping[str, Any]) -> str:
    if row.get("mnemonic") == INVALID_SPI_MNEMONIC:
        return "invalid-spi"
    return "debug" if row.get("mnemonic") is None else "log"


# --------------------------------------------------------------------------- sections


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _hex(spi: int | None) -> str:
    return "—" if spi is None else f"0x{spi:08X}"


def _lanes(d: IncidentDiagnosis) -> list[tuple[str, str]]:
    """(router, role) per lane: receiver first, then the sender."""
    lanes = [(d.inputs.receiver.name, "receiver"), (d.inputs.sender.name, "sender")]
    for row in d.timeline:  # routers that logged but are neither (should not happen)
        router = str(row.get("router"))
        if router not in (name for name, _ in lanes):
            lanes.append((router, str(row.get("role") or "")))
    return lanes


def _timeline_svg(d: IncidentDiagnosis, marks: Sequence[TimelineMark],
                  offsets: Mapping[str, float | None]) -> Iterator[str]:
    """The SVG's lines, one at a time: a busy router's log is tens of thousands of points."""
    lanes = _lanes(d)
    start = end = None
    for t in chain((_parse_time(row.get("agent_time")) for row in d.timeline), (m.at for m in marks)):
        if t is not None:
            start, end = (t, t) if start is None else (min(start, t), max(end, t))
    height = _TOP + _LANE * len(lanes) + 40
    if start is None or end is None:
        yield '<p class="muted">No `show logging` output was captured, so there is no timeline.</p>'
        return
    span = max((end - start).total_seconds(), 1.0)
    plot = _WIDTH - _LEFT - _RIGHT

    def x(t: datetime) -> float:
        return round(_LEFT + plot * (t - start).total_seconds() / span, 1)

    yield (f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{_WIDTH}" height="{height}" '
           f'viewBox="0 0 {_WIDTH} {height}" role="img" aria-label="timelines of both routers" '
           f'data-start="{start.isoformat()}" data-end="{end.isoformat()}">')
    out: list[str] = []
    out.append(f'<rect x="0" y="0" width="{_WIDTH}" height="{height}" fill="#ffffff"/>')
    lane_y: dict[str, float] = {}
    for i, (router, role) in enumerate(lanes):
        y = _TOP + _LANE * i + _LANE / 2
        lane_y[router] = y
        offset = offsets.get(router)
        note = "offset unknown" if offset is None else f"clock {offset:+.3f} s"
        out.append(f'<g class="lane" data-router="{_e(router)}" data-role="{_e(role)}" '
                   f'data-clock-offset="{"" if offset is None else offset}">')
        out.append(f'<line x1="{_LEFT}" y1="{y}" x2="{_WIDTH - _RIGHT}" y2="{y}" stroke="#bdbdbd"/>')
        out.append(f'<text x="8" y="{y - 4}" font-size="13" font-weight="bold">{_e(router)}</text>')
        out.append(f'<text x="8" y="{y + 12}" font-size="11" fill="#616161">{_e(role)}, {_e(note)}</text>')
        out.append("</g>")
    yield from out
    for row in d.timeline:
        router = str(row.get("router"))
        t = _parse_time(row.get("agent_time"))
        if t is None or router not in lane_y:
            continue
        kind = _kind(row)
        radius = 5 if kind == "invalid-spi" else 3
        dy = {"invalid-spi": 0, "debug": -14, "log": 14}[kind]
        first = str(row.get("line", "")).split("\n")[0][:300]
        yield (f'<circle class="event" cx="{x(t)}" cy="{lane_y[router] + dy}" r="{radius}" '
               f'fill="{_KIND_COLOUR[kind]}" data-router="{_e(router)}" data-kind="{kind}" '
               f'data-time="{t.isoformat()}" data-device-time="{_e(row.get("device_time"))}">'
               f'<title>{_e(row.get("device_time"))} {_e(first)}</title></circle>')
    out = []
    bottom = _TOP + _LANE * len(lanes)
    for m in marks:
        colour = _MARK_COLOUR[m.kind]
        if m.router is not None and m.router in lane_y:
            y1, y2 = lane_y[m.router] - _LANE / 2 + 4, lane_y[m.router] + _LANE / 2 - 4
        else:
            y1, y2 = _TOP - 6, bottom
        out.append(f'<g class="mark" data-kind="{m.kind}" data-router="{_e(m.router or "")}" '
                   f'data-time="{m.at.isoformat()}"><line x1="{x(m.at)}" y1="{y1}" x2="{x(m.at)}" y2="{y2}" '
                   f'stroke="{colour}" stroke-width="2" stroke-dasharray="5,3"/>'
                   f'{_label(x(m.at), y1 + 10, m.label, colour)}</g>')
    # axis: start, middle, end (UTC, agent clock)
    for t in (start, start + (end - start) / 2, end):
        out.append(f'<text class="tick" x="{x(t)}" y="{bottom + 18}" font-size="11" text-anchor="middle" '
                   f'fill="#424242">{t.strftime("%H:%M:%S")}</text>')
    out.append(f'<text x="{_LEFT}" y="{bottom + 34}" font-size="11" fill="#757575">agent clock (UTC), '
               f'{start.strftime("%Y-%m-%d")}; each router\'s log placed through its show clock readings</text>')
    out.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{c}"></i>{k}</span>'
                     for k, c in (*_KIND_COLOUR.items(), *_MARK_COLOUR.items()))
    yield from out
    yield f'<p class="legend">{legend}</p>'


def _label(x: float, y: float, text: str, colour: str) -> str:
    """A mark's label beside its line; on the left of it near the right edge (not clipped)."""
    if x > _WIDTH - _RIGHT - 110:
        return f'<text x="{x - 3}" y="{y}" font-size="11" fill="{colour}" text-anchor="end">{_e(text)}</text>'
    return f'<text x="{x + 3}" y="{y}" font-size="11" fill="{colour}">{_e(text)}</text>'


def _side_by_side_lines(d: IncidentDiagnosis) -> str:
    lanes = _lanes(d)[:2]
    names = [name for name, _ in lanes]
    shown: list[Mapping[str, Any]] = []
    omitted = 0  # counted, not kept: a busy router's debug lines run to thousands
    for r in d.timeline:
        if _kind(r) != "log" or str(r.get("mnemonic", "")).startswith(("CRYPTO", "IKE", "ISAKMP", "IPSEC")):
            if len(shown) < MAX_KEY_ROWS:
                shown.append(r)
            else:
                omitted += 1
    out = ['<table id="lines"><thead><tr><th>agent time</th>'
           + "".join(f'<th data-router="{_e(n)}">{_e(n)} ({_e(role)})</th>' for n, role in lanes)
           + "</tr></thead><tbody>"]
    for row in shown:
        router = str(row.get("router"))
        t = _parse_time(row.get("agent_time"))
        kind = _kind(row)
        text = _e(str(row.get("line", "")))
        if kind == "invalid-spi":
            text = f"<mark>{text}</mark>"
        cells = []
        for name in names:
            if name == router:
                cells.append(f'<td class="mono" data-kind="{kind}" data-router="{_e(name)}">{text}</td>')
            else:
                cells.append('<td class="empty"></td>')
        out.append(f'<tr data-time="{t.isoformat() if t else ""}"><td class="mono">'
                   f'{"≈ " if t and row.get("time_estimated") else ""}'
                   f'{_e(t.strftime("%H:%M:%S.%f")[:-3] if t else "—")}</td>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    if omitted:
        out.append(f'<p class="muted">{omitted} more lines in timeline.jsonl.</p>')
    return "\n".join(out)


def _blocks(table: SaTable | None, fmt) -> str:
    if table is None:
        return '<span class="muted">not captured</span>'
    if not table.blocks:
        return '<span class="muted">no SA with the other end</span>'
    return "<hr>".join(fmt(b) for b in table.blocks)


def _sa_tables(d: IncidentDiagnosis) -> str:
    flow = d.inputs.flow
    logged = flow.spi
    rx, tx = d.sa_tables.get("receiver"), d.sa_tables.get("sender")

    def spi_cell(spi: int | None) -> str:
        if spi is None:
            return "—"
        if spi == 0:
            return "0x0 (no SA)"
        text = _hex(spi)
        return f'<mark data-spi="{text}">{text}</mark>' if spi == logged else f'<span data-spi="{text}">{text}</span>'

    def entries(direction: str):
        def fmt(b: SaBlock) -> str:
            found = [e for e in b.entries if e.direction == direction and e.protocol in ("esp", "ah")]
            if not found:
                return "none"
            return "<br>".join(f"{spi_cell(e.spi)} {_e(e.protocol)} {_e(e.status or '')}" for e in found)
        return fmt

    rows = [
        ("read from", lambda t: f"<code>{_e(t.file)}</code>" if t is not None else '<span class="muted">not captured</span>', True),
        ("interface / map tag", lambda b: _e(" / ".join(x for x in (b.interface, b.map_tag) if x) or "?"), False),
        ("proxy (local ↔ remote)", lambda b: _e(f"{b.local_ident or '?'} ↔ {b.remote_ident or '?'}"), False),
        ("current peer", lambda b: _e(f"{b.peer or '?'}" + (f" port {b.peer_port}" if b.peer_port else "")), False),
        ("current outbound spi", lambda b: spi_cell(b.current_outbound_spi), False),
        ("inbound SAs", entries("inbound"), False),
        ("outbound SAs", entries("outbound"), False),
        ("#pkts invalid sa (rcv)", lambda b: "—" if b.invalid_sa_rcv is None else str(b.invalid_sa_rcv), False),
        ("NAT-T", lambda b: "yes" if b.nat_t else "no", False),
    ]
    rx_name, tx_name = d.inputs.receiver.name, d.inputs.sender.name
    out = ['<table id="sa-tables"><thead><tr><th></th>'
           f'<th data-role="receiver">{_e(rx_name)} (receiver, {_e(flow.dst)})</th>'
           f'<th data-role="sender">{_e(tx_name)} (sender, {_e(flow.src)})</th></tr></thead><tbody>']
    for label, fmt, whole in rows:
        cells = [fmt(t) if whole else _blocks(t, fmt) for t in (rx, tx)]
        out.append(f'<tr><th>{_e(label)}</th><td data-role="receiver">{cells[0]}</td>'
                   f'<td data-role="sender">{cells[1]}</td></tr>')
    out.append("</tbody></table>")
    cross = sa_cross_check(d)
    if cross:
        out.append('<p>Is each end\'s current outbound SPI among the other end\'s inbound SAs?</p>'
                   '<table id="sa-cross-check"><thead><tr><th>direction</th><th>current outbound spi</th>'
                   '<th>known to the receiving end?</th></tr></thead><tbody>')
        for c in cross:
            known = {True: "yes", False: "no", None: "—"}[c["known"]]
            out.append(f'<tr data-known="{known}"><td>{_e(c["direction"])}</td><td class="mono">{_e(c["spi"])}</td>'
                       f'<td>{_e(known)}</td></tr>')
        out.append("</tbody></table>")
    return "\n".join(out)


def _findings(d: IncidentDiagnosis) -> str:
    if not d.findings:
        return '<p class="muted">No check fired: the capture holds too little to say more.</p>'
    out = []
    for n, f in enumerate(d.findings, start=1):
        who = f" — {_e(f.router)}" if f.router else ""
        out.append(f'<section class="finding" data-id="{_e(f.id)}" data-severity="{_e(f.severity.value)}">')
        out.append(f'<h3><span class="sev-{_e(f.severity.value)}">[{_e(f.severity.value.upper())}]</span> '
                   f'{n}. {_e(f.title)}{who}</h3>')
        out.append(f"<p><code>{_e(f.id)}</code>. {_e(f.detail)}</p>")
        if f.evidence:
            lines = "\n".join(f"{e.file}:{e.line}: {e.text}" if e.line is not None else f"{e.file}: {e.text}"
                              for e in f.evidence)
            out.append(f'<pre class="evidence">{_e(lines)}</pre>')
        if f.recommendation:
            out.append(f'<p class="recommendation"><b>Recommendation:</b> {_e(f.recommendation)}</p>')
        out.append("</section>")
    return "\n".join(out)


def _facts(d: IncidentDiagnosis, marks: Sequence[TimelineMark]) -> str:
    inputs, meta, flow = d.inputs, d.meta, d.inputs.flow
    summary = timeline_summary(d.timeline, flow)
    items = [
        f"<li><b>{_e(inputs.receiver.name)}</b> (receiver, {_e(flow.dst)}) logged "
        f"<code>%{INVALID_SPI_MNEMONIC}</code> {inputs.occurrences} time(s) for packets from "
        f"<b>{_e(inputs.sender.name)}</b> ({_e(flow.src)}) on SPI <code>{_e(flow.spi_hex)}</code>, protocol "
        f"{flow.prot} ({'ESP' if flow.prot == 50 else 'AH'}).</li>",
    ]
    for name, c in summary["routers"].items():
        items.append(f'<li data-router="{_e(name)}" class="counts">{_e(name)}: {c["records"]} log records, '
                     f'<span class="n-invalid">{c["invalid_spi"]}</span> invalid-SPI messages, '
                     f'<span class="n-debug">{c["debug"]}</span> debug lines.</li>')
    for m in marks:
        items.append(f'<li>{_e(m.label)} at {_e(m.at.isoformat())}</li>')
    items.append(f"<li>The capture is {'complete' if meta.complete else '<b>incomplete</b>: ' + _e('; '.join(meta.incomplete_reasons))}.</li>")
    for router, result in sorted(meta.disarm.items()):
        items.append(f"<li>Disarm check on {_e(router)}: {_e(result)}</li>")
    for note in meta.notes:
        items.append(f"<li>Note: {_e(note)}</li>")
    for problem in meta.integrity_problems:
        items.append(f"<li><b>Bundle integrity:</b> {_e(problem)}</li>")
    return "<ul>" + "\n".join(items) + "</ul>"


def render_html(d: IncidentDiagnosis, *, actions: Iterable[Mapping[str, Any]] = (),
                clock_offsets: Mapping[str, float | None] | None = None) -> str:
    """report.html for a diagnosis. `actions` are the manifest's `router_changes` (arm and
    disarm times); `clock_offsets` (router -> router clock minus agent clock, seconds) are
    shown per lane (the timeline rows already have them applied)."""
    return "".join(iter_html(d, actions=actions, clock_offsets=clock_offsets))


def iter_html(d: IncidentDiagnosis, *, actions: Iterable[Mapping[str, Any]] = (),
              clock_offsets: Mapping[str, float | None] | None = None) -> Iterator[str]:
    """`render_html`'s text in pieces, made as they are asked for (the page of a busy
    router's log is tens of MB: it goes to its file a piece at a time)."""
    flow = d.inputs.flow
    v = verdict(d.findings, d.inputs)
    marks = timeline_marks(d, actions)
    offsets = dict(clock_offsets or {})
    steps = next_steps(d.findings, d.meta)
    title = f"Invalid SPI incident on {d.inputs.receiver.name}: {flow.src} → {flow.dst}, SPI {flow.spi_hex}"
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>",
        f'<body data-incident="{_e(d.meta.incident_id)}" data-spi="{_e(flow.spi_hex)}">',
        f"<h1>{_e(title)}</h1>",
        f'<p class="verdict" data-verdict="{_e(v.key)}"><b>Verdict:</b> {_e(v.headline)}</p>',
        f'<p class="muted">Incident <code>{_e(d.meta.incident_id)}</code>, diagnosed from {_e(d.meta.source)}.</p>',
        '<h2 id="what">What happened</h2>', _facts(d, marks),
        '<h2 id="timelines">Timelines, side by side</h2>',
    ]
    for part in head:
        yield part + "\n"
    for part in _timeline_svg(d, marks, offsets):
        yield part + "\n"
    parts = [
        '<h3>Crypto log and debug lines</h3>', _side_by_side_lines(d),
        '<h2 id="sa">SA tables, side by side</h2>', _sa_tables(d),
        '<h2 id="findings">Findings</h2>', _findings(d),
        '<h2 id="next">Next steps</h2>',
    ]
    if steps:
        parts.append("<ol>" + "".join(f"<li>{_e(s['router'] + ': ' if s.get('router') else '')}{_e(s['text'])}</li>"
                                      for s in steps) + "</ol>")
        parts.append('<p class="muted">The tool carried out none of these steps (its own changes to routers, '
                     "the debug steps, are listed in the manifest with their undo and status); every "
                     "<code>clear</code> command needs an operator's decision.</p>")
    else:
        parts.append('<p class="muted">Nothing to do from this capture.</p>')
    parts.append('<hr><p class="muted">Facts: Cisco 115801 (invalid SPI and the recovery table), 116005 (debugs on '
                 "both ends, armed before the event).</p></body></html>")
    for part in parts:
        yield part + "\n"


def render_bundle_html(path: Path) -> str:
    """report.html for a bundle folder on disk (read only; BundleError if it is not one)."""
    from collector.diagnose.incident import diagnose, load_bundle

    loaded = load_bundle(path)
    d = diagnose(loaded.result, source=f"bundle {loaded.path.name}", files=loaded.files,
                 integrity_problems=loaded.integrity_problems)
    return render_html(d, actions=loaded.result.actions,
                       clock_offsets={c.router: c.clock_offset for c in loaded.result.captures})


def capture_reports(result, *, contexts=None):
    """(report.md and report.json, report.html pieces) of a capture about to be bundled,
    from one diagnosis (the agent's path: `write_incident_bundle(..., reports=...)`).
    Never raises: a broken diagnosis gives the failed report and no page; the page's pieces
    are made as the bundle writes them (it leaves the page out if they break)."""
    from collector.diagnose.incident import diagnose
    from collector.diagnose.report import failed_report, render_report

    try:
        d = diagnose(result, contexts=contexts)
        report = render_report(d)
    except Exception as exc:  # noqa: BLE001 - the bundle matters more than its report
        return failed_report(result.incident_id, "capture", f"{type(exc).__name__}: {exc}"), None
    offsets = {c.router: c.clock_offset for c in result.captures}
    return report, iter_html(d, actions=result.actions, clock_offsets=offsets)


def render_capture_html(result, *, contexts=None) -> str | None:
    """report.html for a capture about to be bundled (the agent's path, next to
    `diagnose_capture`); None when the diagnosis breaks (the bundle matters more)."""
    from collector.diagnose.incident import diagnose

    try:
        d = diagnose(result, contexts=contexts)
        return render_html(d, actions=result.actions, clock_offsets={c.router: c.clock_offset for c in result.captures})
    except Exception:  # noqa: BLE001 - never lose a capture over its picture
        return None
