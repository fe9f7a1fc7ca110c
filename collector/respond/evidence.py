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

from collector.bundle import BundleWriter, slug
from collector.detect.events import Flow
from collector.detect.logline import iter_log_records


@dataclass(frozen=True, slots=True)
class CommandRecord:
    router: str
    command: str
    text: str | None
    parsed: list[dict] | None
    template: str | None
    error: str | None
    started: datetime
    ended: datetime

    def summary(self) -> dict:
        return {"router": self.router, "command": self.command, "status": "ok" if self.error is None else "failed",
                "error": self.error, "started": self.started.isoformat(), "ended": self.ended.isoformat(),
                "template": self.template}


@dataclass(frozen=True, slots=True)
class RouterCapture:
    router: str
    role: str  # "receiver" | "sender"
    platform: str
    peer: str  # the address its debugs were conditioned on
    commands: tuple[CommandRecord, ...]
    clock_offset: float | None  # router clock minus agent clock, seconds (from `show clock`)
    error: str | None = None

    def output(self, prefix: str) -> CommandRecord | None:
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

    @property
    def complete(self) -> bool:
        return not self.incomplete


def bundle_name(result: CaptureResult) -> str:
    stamp = result.captured_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}_invalid-spi_{slug(result.flow.router, 40)}_{result.flow.spi_hex.lower()}"


def build_timeline(captures: tuple[RouterCapture, ...], *, year: int) -> list[dict]:
    """Both routers' `show logging` records in one order, on the agent's clock.

    Each router's timestamps are shifted by its measured clock offset so lines from two
    boxes whose clocks disagree still interleave as they happened."""
    rows: list[tuple[datetime, int, dict]] = []
    for index, capture in enumerate(captures):
        record = capture.output("show logging")
        if record is None:
            continue
        shift = timedelta(seconds=capture.clock_offset or 0.0)
        for n, line in enumerate(iter_log_records(record.text or "", year=year)):
            device_time = line.timestamp
            agent_time = (device_time - shift) if device_time else None
            rows.append((
                agent_time or datetime.min,
                n,
                {"router": capture.router, "role": capture.role,
                 "device_time": line.timestamp_text, "agent_time": agent_time.isoformat() if agent_time else None,
                 "mnemonic": line.mnemonic, "line": line.raw},
            ))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows]


def write_incident_bundle(result: CaptureResult, root: Path, *, secrets: tuple[str, ...] = (),
                          report: tuple[str, dict] | None = None, tool_context: dict | None = None) -> Path:
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
    writer.write_jsonl("timeline.jsonl", build_timeline(result.captures, year=result.captured_at.year))
    if report is not None:
        markdown, data = report
        writer.write_text("report.md", markdown)
        writer.write_json("report.json", data)
    flow = result.flow
    manifest = {
        "kind": "invalid-spi",
        "incident": result.incident_id,
        "complete": result.complete,
        "incomplete_reasons": list(result.incomplete),
        "trigger_lines": list(result.trigger_lines),
        "flow": {"receiver": flow.router, "srcaddr": str(flow.src), "destaddr": str(flow.dst),
                 "spi": flow.spi_hex, "spi_decimal": flow.spi, "prot": flow.prot},
        "routers": [{"name": c.router, "role": c.role, "platform": c.platform, "debug_condition_peer": c.peer,
                     "clock_offset_seconds": c.clock_offset, "error": c.error} for c in result.captures],
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
