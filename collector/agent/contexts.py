"""What the worker knows of each incident, in memory and in its staging folder.

An incident spans actions and, under cron, runs (arm in one process, capture in the
next), so its context (the other end's address as the sender itself knows it, the notes,
each router's log as read just before arming) is written beside the bundles:

    <bundle_root>/.staging/<incident>/context.json
    <bundle_root>/.staging/<incident>/<router>.pre-arm.log

next to what staging.py keeps of the capture and the disarms.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from collector.agent.staging import CaptureStage, StagedCapture, make_private
from collector.bundle import discard_abandoned_partial
from collector.core.results import DisarmResult, LogSnapshot
from collector.detect.events import Flow
from collector.detect.tracker import decode_key
from collector.evidence import RouterCapture, bundle_name_for
from collector.inventory import Inventory
from collector.state import StateStore


@dataclass
class IncidentContext:
    """What the worker knows of one incident: its ends and what it has seen of them."""

    incident_id: str
    flow: Flow
    receiver: str
    sender: str | None
    sender_peer: str | None = None  # the receiver's address as the sender knows it (NAT-T)
    notes: list[str] = field(default_factory=list)
    armed_at: datetime | None = None
    pre_arm: dict[str, LogSnapshot] = field(default_factory=dict)
    captures: tuple[RouterCapture, ...] = ()
    captured_at: datetime | None = None
    armed_before_repeat: bool = False
    releases: list[DisarmResult] = field(default_factory=list)
    resumed: bool = False  # a stopped run left this incident capturing; this run finishes it
    incomplete: list[str] = field(default_factory=list)  # what the bundle lacks, beyond capture errors


class IncidentContexts:
    """Each open incident's context, kept in memory and mirrored to its staging folder.

    Threads: called from the agent's worker threads (arm, capture, release, seal) and
    from the loop thread at start-up (`resume`). Only one action of an incident runs at a
    time (the core asks for the next only after the previous one answered), so an
    incident's context and folder have one user at a time; the dict needs no lock beyond
    its own atomicity.

    Invariants: nothing is written in a dry run; folders are 0700 and files 0600 (they
    hold router output); `forget` drops both the memory and the folder, so a sealed or
    ended incident leaves nothing behind."""

    def __init__(self, *, inventory: Inventory, store: StateStore, bundle_root: Path, dry_run: bool = False):
        self.inventory = inventory
        self.store = store
        self.bundle_root = bundle_root
        self.dry_run = dry_run
        self._contexts: dict[str, IncidentContext] = {}

    def start(self, context: IncidentContext) -> IncidentContext:
        """Hold a new incident's context (at its arm)."""
        self._contexts[context.incident_id] = context
        return context

    def get(self, incident_id: str) -> IncidentContext:
        """The incident's context, from memory or from its staging folder (an earlier run).

        Raises:
            KeyError: the incident is unknown to the state store.
        """
        context = self._contexts.get(incident_id)
        if context is None:
            context = self._load(incident_id)
            self._contexts[incident_id] = context
        return context

    def forget(self, incident_id: str) -> None:
        self._contexts.pop(incident_id, None)
        shutil.rmtree(self.folder(incident_id), ignore_errors=True)

    def folder(self, incident_id: str) -> Path:
        return self.bundle_root / ".staging" / incident_id

    def stage(self, incident_id: str) -> CaptureStage:
        return CaptureStage(self.folder(incident_id), tuple(self.inventory.secret_values()))

    def staged_captures(self, incident_id: str) -> dict[str, StagedCapture]:
        """What a stopped run captured of this incident, per router (nothing: {})."""
        return self.stage(incident_id).captures()

    def staged_captured_at(self, incident_id: str) -> datetime | None:
        """When the stopped run's capture ended (its bundle's name), if it saved one."""
        try:
            data = json.loads((self.folder(incident_id) / "context.json").read_text())
            return datetime.fromisoformat(data["captured_at"]) if data.get("captured_at") else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def discard_stopped_bundle(self, incident_id: str) -> list[Path]:
        """Remove the unfinished bundle folder a stopped run left for this incident: it is
        sealed again in full from the staging folder (before start-up's recovery would seal
        the cut-short folder as a bundle of its own)."""
        at = self.staged_captured_at(incident_id)
        if at is None:
            return []
        return discard_abandoned_partial(self.bundle_root, bundle_name_for(self.get(incident_id).flow, at))

    def save(self, context: IncidentContext) -> None:
        if self.dry_run:
            return
        folder = self.folder(context.incident_id)
        make_private(folder)
        data = {"flow": context.flow.key(), "receiver": context.receiver, "sender": context.sender,
                "sender_peer": context.sender_peer, "notes": context.notes,
                "armed_at": context.armed_at.isoformat() if context.armed_at else None,
                "captured_at": context.captured_at.isoformat() if context.captured_at else None,
                "pre_arm": {name: {"read_at": s.read_at.isoformat(), "file": f"{name}.pre-arm.log",
                                   "clock": s.clock_json()}
                            for name, s in context.pre_arm.items()}}
        for name, snapshot in context.pre_arm.items():
            _write_private(folder / f"{name}.pre-arm.log", snapshot.text)
        _write_private(folder / "context.json", json.dumps(data))

    def _load(self, incident_id: str) -> IncidentContext:
        record = self.store.incident(incident_id)
        folder = self.folder(incident_id)
        try:
            data = json.loads((folder / "context.json").read_text())
        except (OSError, ValueError):
            data = {}
        if record is None:
            raise KeyError(f"incident {incident_id} is unknown to the state store")
        flow = decode_key(record.key)
        others = [r for r in record.routers if r != flow.router]
        context = IncidentContext(incident_id, flow, flow.router, others[0] if others else None)
        context.armed_at = record.armed_at
        context.sender_peer = data.get("sender_peer")
        context.notes = list(data.get("notes", []))
        for name, item in data.get("pre_arm", {}).items():
            try:
                text = (folder / item["file"]).read_text()
            except (OSError, KeyError):
                continue
            context.pre_arm[name] = LogSnapshot.read_back(name, text, datetime.fromisoformat(item["read_at"]),
                                                          item.get("clock"))
        return context


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(text)
