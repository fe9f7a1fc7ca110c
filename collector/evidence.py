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

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import re
from collections import Counter

from collector.bundle import BundleWriter, slug
from collector.clocks import ClockTrack, clock_from_records, passes, repeated_hour_text
from collector.command_results import CommandResult
from collector.core.results import LogSnapshot
from collector.detect.events import Flow
from collector.detect.logline import iter_log_records, year_printed

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

    @property
    def complete(self) -> bool:
        return not self.incomplete and self.debug_lines_after_arming().get(self.flow.router, 0) > 0

    def debug_lines_after_arming(self) -> dict[str, int]:
        """Crypto debug lines in each router's captured log that its pre-arm log did not
        hold: what the armed debugs printed (arming may empty the buffer; a line in both
        reads was there before)."""
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


def _debug_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if _DEBUG_LINE.search(line)]


def bundle_name(result: CaptureResult) -> str:
    return bundle_name_for(result.flow, result.captured_at)


def bundle_name_for(flow: Flow, captured_at: datetime) -> str:
    stamp = captured_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}_invalid-spi_{slug(flow.router, 40)}_{flow.spi_hex.lower()}"


def clock_tracks(captures: tuple[RouterCapture, ...], pre_arm: tuple[LogSnapshot, ...] = ()) -> dict[str, ClockTrack]:
    """Each captured router's clock: the capture's `show clock` (with its configuration),
    and the reading taken before arming where there was one."""
    earlier = {s.router: s for s in pre_arm if s.clock_text and s.clock_asked}
    tracks = {}
    for capture in captures:
        latest = clock_from_records((r.command, r.text, r.started, r.ended) for r in capture.commands)
        if latest is None:
            continue
        snapshot = earlier.get(capture.router)
        first = latest.reread(snapshot.clock_text, *snapshot.clock_asked) if snapshot else None
        tracks[capture.router] = ClockTrack(first, latest, capture.clock_offset)
    return tracks


def build_timeline(captures: tuple[RouterCapture, ...], *, year: int, pre_arm: tuple[LogSnapshot, ...] = (),
                   trigger_lines: tuple[str, ...] = (), receiver: str | None = None,
                   pre_arm_lines: bool = True) -> list[dict]:
    """Every line the incident saw, once, in one order on the agent's clock.

    `source` says where a line was first seen: `trigger` (the flow's lines as the agent
    read them), `pre-arm read` (a router's log just before arming), `capture` (its log at
    capture); `seen_in` lists every one of those reads that held it (a line still in the
    buffer at capture was there before arming too). Each router's stamps are put on the
    agent's clock through that router's `show clock` and configuration (`collector.clocks`:
    its zone, whether log and debug stamps are UTC or local, its skew), and stamps without
    a year take the router's own year, so two boxes in different zones, or on either side
    of New Year, still interleave; where `show clock` was also read before arming, lines
    between the two readings are interpolated (clocks.ClockTrack). `year` is used only for a
    router whose clock is unknown. `pre_arm_lines` False: the pre-arm reads give their
    clock readings only, not their lines."""
    rows: list[tuple[datetime, int, int, dict]] = []
    roles = {c.router: c.role for c in captures}
    tracks = clock_tracks(captures, pre_arm)
    clocks = {router: track.latest for router, track in tracks.items()}
    offsets = {c.router: c.clock_offset for c in captures}
    by_text: dict[tuple[str, str], list[list]] = {}  # (router, line) -> its rows' entries, oldest first

    def on_agent_clock(router: str, line, fold: int) -> datetime | None:
        if line.timestamp is None:
            return None
        clock = clocks.get(router)
        if clock is None:  # no `show clock`: the skew as recorded, stamps read as UTC
            stamp = line.timestamp.replace(tzinfo=timezone.utc) if line.timestamp.tzinfo is None else line.timestamp
            return stamp - timedelta(seconds=offsets.get(router) or 0.0)
        return tracks[router].to_agent(line.timestamp, line.tz, "log" if line.mnemonic else "debug", fold)

    def records_of(router: str, text: str) -> list:
        clock = clocks.get(router)
        records = list(iter_log_records(text, year=clock.now_in(None).year if clock else year))
        if clock is None:
            return records
        newest = next((r for r in reversed(records) if r.timestamp is not None and not year_printed(r)), None)
        if newest is not None:
            wanted = clock.year_of_newest(newest.timestamp, newest.tz, "log" if newest.mnemonic else "debug")
            if wanted != newest.timestamp.year:
                records = list(iter_log_records(text, year=wanted))
        return records

    def add(order: int, router: str, text: str, source: str) -> None:
        used: Counter = Counter()
        previous: datetime | None = None  # the last stamped line above, in buffer order
        records = records_of(router, text)
        # the hour repeated when summer time ends: which pass each stamp is on, from this read's order
        folds = passes(clocks[router], ((r.timestamp, r.tz, "log" if r.mnemonic else "debug") for r in records)) \
            if router in clocks else [0] * len(records)
        for n, line in enumerate(records):
            key = (router, line.raw.strip())
            earlier = by_text.setdefault(key, [])
            if used[key] < len(earlier):  # the same line, already listed from an earlier read
                entry = earlier[used[key]]
                row = entry[3]
                used[key] += 1
                if source not in row["seen_in"]:
                    row["seen_in"].append(source)
                if "time_ambiguous" in row and folds[n] is not None:  # this read tells its pass
                    entry[0] = on_agent_clock(router, line, folds[n])
                    row["agent_time"] = entry[0].isoformat()
                    del row["time_ambiguous"]
                continue
            agent_time = on_agent_clock(router, line, folds[n] or 0)
            # A line printed without a stamp (`no service timestamps debug`, the default for
            # debugs on many routers) was logged after the stamped line above it: it takes
            # that time, marked as inferred, so it sorts where the buffer put it.
            inferred = agent_time is None and previous is not None
            if agent_time is not None:
                previous = agent_time
            elif inferred:
                agent_time = previous
            row = {"router": router, "role": roles.get(router, "receiver" if router == receiver else "sender"),
                   "source": source, "seen_in": [source], "device_time": line.timestamp_text,
                   "agent_time": agent_time.isoformat() if agent_time else None, "time_inferred": inferred,
                   "mnemonic": line.mnemonic, "line": line.raw}
            if folds[n] is None:  # in the repeated hour, pass unknown: placed on the first, and said so
                row["time_ambiguous"] = repeated_hour_text(clocks[router], line.timestamp,
                                                           "log" if line.mnemonic else "debug")
            entry = [agent_time or datetime.min.replace(tzinfo=timezone.utc), order, n, row]
            earlier.append(entry)
            used[key] += 1
            rows.append(entry)

    if receiver is not None and trigger_lines:
        add(0, receiver, "\n".join(trigger_lines), "trigger")
    for snapshot in pre_arm if pre_arm_lines else ():
        add(1, snapshot.router, snapshot.text, "pre-arm read")
    for capture in captures:
        record = capture.output("show logging")
        if record is not None:
            add(2, capture.router, record.text or "", "capture")
    rows.sort(key=lambda r: (_aware(r[0]), r[1], r[2]))
    return [r[3] for r in rows]


def ambiguous_time_notes(rows) -> list[str]:
    """One sentence per router and repeated hour whose lines' pass could not be told."""
    counts: Counter = Counter((r["router"], r["time_ambiguous"]) for r in rows if r.get("time_ambiguous"))
    return [f"{router}: {count} line{'s' if count != 1 else ''} stamped {text}" for (router, text), count in counts.items()]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def write_incident_bundle(result: CaptureResult, root: Path, *, secrets: tuple[str, ...] = (),
                          report: tuple[str, dict] | None = None, tool_context: dict | None = None,
                          html: str | None = None) -> Path:
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
    if report is not None:
        markdown, data = report
        writer.write_text("report.md", markdown)
        writer.write_json("report.json", data)
    if html is not None:
        writer.write_text("report.html", html)
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
