"""What a capture produced, and how it is laid out as an incident bundle.

    bundles/<UTC>_invalid-spi_<receiver>_<spi>/
        manifest.json      trigger lines, flow, both routers, every command with times and
                           status, clock skew, complete or incomplete and why, sha256 of files
        timeline.jsonl     both routers' log and debug lines merged in time order
        <router>/NN_<command>.txt / .json   raw and parsed output per router
        report.md, report.json             the diagnosis (when available)
    bundles/<same name>.tar.gz
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from collector.bundle import BundleWriter, slug
from collector.command_results import CommandResult
from collector.core.results import LogSnapshot
from collector.detect.events import Flow
from collector.textlines import iter_lines
from collector.timeline import ambiguous_time_notes, build_timeline, clock_tracks  # noqa: F401 - the diagnosis's imports

# A crypto debug line as IOS and IOS-XE print it (after any timestamp): the real forms in
# shared/real/debug (`ISAKMP: ...`, `ISAKMP-ERROR: (0):...`, `IKEv2:(SESSION ID = ...`,
# `IPSEC(update_current_outbound_sa): ...`, `Crypto mapdb ...`).
_DEBUG_LINE = re.compile(r"(?:^|[:.\d]\s)(ISAKMP|IKEv2|IPSEC|CRYPTO_SS|Crypto mapdb|crypto_engine)[\w-]*\s*[:(]")


@dataclass(frozen=True, slots=True)
class RouterCapture:
    router: str
    role: str  # "receiver" | "sender"
    platform: str
    peer: str  # the address its debugs were conditioned on
    commands: tuple[CommandResult, ...]
    clock_offset: float | None  # router clock minus agent clock, seconds (from `show clock`)
    error: str | None = None
    site: str | None = None  # the site whose worker captured it (`--broker`); None: this agent itself
    worker: str | None = None  # that worker's node name (site@host)

    def output(self, prefix: str) -> CommandResult | None:
        for record in self.commands:
            if record.command.startswith(prefix) and record.text is not None:
                return record
        return None


@dataclass(frozen=True)
class CaptureResult:
    incident_id: str
    flow: Flow
    trigger_lines: tuple[str, ...]
    captures: tuple[RouterCapture, ...]
    armed_at: datetime | None
    captured_at: datetime
    armed_before_repeat: bool
    sender: str | None  # inventory name of the sender, None when outside the inventory
    notes: tuple[str, ...] = ()
    actions: tuple[dict, ...] = ()  # every change made to a router: do/undo/status/times
    disarm: dict[str, str] = field(default_factory=dict)  # router -> verification result
    incomplete: tuple[str, ...] = ()  # reasons; empty means complete
    pre_arm: tuple[LogSnapshot, ...] = ()  # each router's log as read just before arming
    # router -> when its last arm step was acknowledged (its debugs on from about then);
    # `armed_at` is later: every end armed and the receiver's log marked
    armed_ends: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.incomplete and self.debug_lines_after_arming().get(self.flow.router, 0) > 0

    def debug_lines_after_arming(self) -> dict[str, int]:
        """Crypto debug lines in each router's captured log that its pre-arm log did not
        hold: what the armed debugs printed (arming may empty the buffer; a line in both
        reads was there before)."""
        return dict(self._debug_counts)

    @cached_property
    def _debug_counts(self) -> dict[str, int]:
        # Counted once per result: the manifest, the report and `complete` all ask, and each
        # count reads both logs of every router (10 MB each on a busy one).
        before = {s.router: Counter(_debug_lines(s.text)) for s in self.pre_arm}
        counts = {}
        for capture in self.captures:
            record = capture.output("show logging")
            if record is None:
                continue
            after = Counter(_debug_lines(record.text or ""))
            counts[capture.router] = sum((after - before.get(capture.router, Counter())).values())
        return counts

    def problems(self) -> tuple[str, ...]:
        """Why the bundle is incomplete: the recorded reasons, and no debug line after arming."""
        reasons = list(self.incomplete)
        missing = f"{NO_DEBUG_AFTER_ARMING} on the receiver ({self.flow.router})"
        if self.debug_lines_after_arming().get(self.flow.router, 0) == 0 and missing not in reasons:
            reasons.insert(0, missing)
        return tuple(reasons)


NO_DEBUG_AFTER_ARMING = "no debug line was logged after arming"


def _debug_lines(text: str) -> Iterator[str]:
    return (line.strip() for line in iter_lines(text) if _DEBUG_LINE.search(line))


def bundle_name(result: CaptureResult) -> str:
    return bundle_name_for(result.flow, result.captured_at)


def bundle_name_for(flow: Flow, captured_at: datetime) -> str:
    stamp = captured_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}_invalid-spi_{slug(flow.router, 40)}_{flow.spi_hex.lower()}"


Reports = tuple[tuple[str, dict] | None, Iterable[str] | None]  # (report.md and report.json, report.html pieces)


def write_incident_bundle(result: CaptureResult, root: Path, *, secrets: tuple[str, ...] = (),
                          report: tuple[str, dict] | None = None, tool_context: dict | None = None,
                          html: str | Iterable[str] | None = None,
                          reports: Callable[[], Reports] | None = None) -> Path:
    """Write the incident's bundle. `report` and `html` are written as given; `reports`,
    when given instead, is called once the timeline is written and gives both (`html` as
    pieces, left out if rendering them fails): a diagnosis of a 10 MB log and the
    bundle's own timeline of it are then never in memory at the same time."""
    writer = BundleWriter(root, bundle_name(result), secrets=secrets)
    commands = []
    for capture in result.captures:
        for index, record in enumerate(capture.commands, start=1):
            stem = f"{capture.router}/{index:02d}_{slug(record.command)}"
            entry = record.summary()
            if record.text is not None:
                writer.write_text(f"{stem}.txt", record.text)
                entry["raw"] = f"{stem}.txt"
            if record.parsed is not None:
                writer.write_json(f"{stem}.json", record.parsed)
                entry["parsed"] = f"{stem}.json"
            commands.append(entry)
    for snapshot in result.pre_arm:
        writer.write_text(f"{snapshot.router}/00_pre-arm_show_logging.txt", snapshot.text)
    writer.write_jsonl("timeline.jsonl", build_timeline(result.captures, year=result.captured_at.year,
                                                        pre_arm=result.pre_arm, trigger_lines=result.trigger_lines,
                                                        receiver=result.flow.router))
    if reports is not None:
        report, html = reports()
    if report is not None:
        markdown, data = report
        writer.write_text("report.md", markdown)
        writer.write_json("report.json", data)
    if isinstance(html, str):
        writer.write_text("report.html", html)
    elif html is not None:
        writer.write_pieces("report.html", html, optional=True)
    flow = result.flow
    changed = {a.get("router") for a in result.actions}
    manifest = {
        "kind": "invalid-spi",
        "incident": result.incident_id,
        "complete": result.complete,
        "incomplete_reasons": list(result.problems()),
        "debug_lines_after_arming": result.debug_lines_after_arming(),
        "pre_arm_reads": [{"router": s.router, "read_at": s.read_at.isoformat(),
                           "file": f"{s.router}/00_pre-arm_show_logging.txt", "clock": s.clock_json()}
                          for s in result.pre_arm],
        "trigger_lines": list(result.trigger_lines),
        "flow": {"receiver": flow.router, "srcaddr": str(flow.src), "destaddr": str(flow.dst),
                 "spi": flow.spi_hex, "spi_decimal": flow.spi, "prot": flow.prot},
        # `peer`: the address this router's queries named; `debug_condition_peer` only where
        # this incident changed the router (a router refused arming was never conditioned)
        "routers": [{"name": c.router, "role": c.role, "platform": c.platform, "peer": c.peer,
                     "debug_condition_peer": c.peer if c.router in changed else None,
                     "clock_offset_seconds": c.clock_offset, "error": c.error, "site": c.site,
                     "site_worker": c.worker} for c in result.captures],
        "sender_in_inventory": result.sender is not None,
        "clock_skew_seconds": _skew(result.captures),
        "armed_at": result.armed_at.isoformat() if result.armed_at else None,
        "armed_ends": {router: at.isoformat() for router, at in result.armed_ends.items()},
        "captured_at": result.captured_at.isoformat(),
        "armed_before_repeat": result.armed_before_repeat,
        "notes": list(result.notes),
        "commands": commands,
        "router_changes": list(result.actions),
        "disarm_verification": result.disarm,
        **(tool_context or {}),
    }
    return writer.finish(manifest)


def _skew(captures: tuple[RouterCapture, ...]) -> float | None:
    offsets = [c.clock_offset for c in captures if c.clock_offset is not None]
    if len(offsets) < 2:
        return None
    return round(offsets[0] - offsets[1], 3)
