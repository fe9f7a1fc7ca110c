"""What the worker knows of each incident, in memory and in its staging folder.

An incident spans actions and, under cron, runs (arm in one process, capture in the
next), so its context (the other end's address as the sender itself knows it, the notes,
each router's log as read just before arming) is written beside the bundles:

    <bundle_root>/.staging/<incident>/context.json
    <bundle_root>/.staging/<incident>/<router>.pre-arm.log

next to what staging.py keeps of the capture and the disarms. The big parts (each
router's pre-arm log, its capture's outputs: up to a 10 MB `show logging` each) are kept
there only, once written, and read back when the bundle is sealed (`for_bundle`): an
incident waiting for its repeat holds no router log in memory.
"""

from __future__ import annotations

import json
import shutil
import threading
import weakref
from collections.abc import Iterable
from concurrent.futures import Future
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
from collector.redact import redact_pieces, text_pieces
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
    armed_ends: dict[str, datetime] = field(default_factory=dict)  # router -> its last arm step acknowledged
    pre_arm: dict[str, LogSnapshot] = field(default_factory=dict)  # not yet written to the staging folder
    pre_arm_staged: dict[str, datetime] = field(default_factory=dict)  # router -> read at; the log is on disk
    # router -> its `show clock` read after that log (LogSnapshot.clock_json; None: no reading), kept
    # beside the staged log and saved in context.json so a later run's bundle still has it
    pre_arm_clocks: dict[str, dict | None] = field(default_factory=dict)
    captures: tuple[RouterCapture, ...] = ()
    captures_staged: set[str] = field(default_factory=set)  # routers whose outputs are on disk, not in `captures`
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
        self._pre_arm_files = _PreArmFiles()

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
        """Write the context; each pre-arm log written is then dropped from memory."""
        if self.dry_run:
            return
        folder = self.folder(context.incident_id)
        make_private(folder)
        secrets = tuple(self.inventory.secret_values())
        for name, snapshot in list(context.pre_arm.items()):
            # Redacted as the capture's outputs are (staging.py): the folder holds no
            # secret, and the bundle compares the two reads line by line.
            self._pre_arm_files.write(snapshot, folder / _pre_arm_file(name), secrets)
            context.pre_arm_staged[name] = snapshot.read_at
            context.pre_arm_clocks[name] = snapshot.clock_json()
            del context.pre_arm[name]
        data = {"flow": context.flow.key(), "receiver": context.receiver, "sender": context.sender,
                "sender_peer": context.sender_peer, "notes": context.notes, "incomplete": context.incomplete,
                "armed_at": context.armed_at.isoformat() if context.armed_at else None,
                "armed_ends": {router: at.isoformat() for router, at in context.armed_ends.items()},
                "captured_at": context.captured_at.isoformat() if context.captured_at else None,
                "pre_arm": {name: {"read_at": at.isoformat(), "file": _pre_arm_file(name),
                                   "clock": context.pre_arm_clocks.get(name)}
                            for name, at in context.pre_arm_staged.items()}}
        _write_private(folder / "context.json", (json.dumps(data),))

    def keep_on_disk(self, context: IncidentContext, capture: RouterCapture) -> RouterCapture:
        """The capture to hold in memory: without its outputs (`CaptureStage.without_outputs`),
        which the staging folder holds whole; they come back with `for_bundle`."""
        context.captures_staged.add(capture.router)
        return CaptureStage.without_outputs(capture)

    def for_bundle(self, context: IncidentContext) -> tuple[tuple[RouterCapture, ...], tuple[LogSnapshot, ...],
                                                           list[str]]:
        """The captures and pre-arm logs with every text, read back from the staging folder,
        and what could not be read back (one line each: the bundle lacks it)."""
        folder = self.folder(context.incident_id)
        stage = self.stage(context.incident_id)
        lost: list[str] = []
        captures = []
        for capture in context.captures:
            if capture.router in context.captures_staged:
                try:
                    capture = stage.restore(capture)
                except OSError as exc:
                    lost.append(f"{capture.router}: its outputs could not be read back from the staging folder "
                                f"({exc.strerror or exc}): the bundle lists its commands without them")
            captures.append(capture)
        snapshots = dict(context.pre_arm)
        for name, at in context.pre_arm_staged.items():
            if name in snapshots:
                continue
            try:
                snapshots[name] = LogSnapshot.read_back(name, _read_private(folder / _pre_arm_file(name)), at,
                                                        context.pre_arm_clocks.get(name))
            except OSError as exc:
                lost.append(f"{name}: its log read before arming could not be read back from the staging folder "
                            f"({exc.strerror or exc})")
        return tuple(captures), tuple(snapshots.values()), lost

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
        context.armed_ends = _times(data.get("armed_ends"))
        context.notes = list(data.get("notes", []))
        context.incomplete = [str(reason) for reason in data.get("incomplete", [])]
        for name, item in data.get("pre_arm", {}).items():
            try:
                read_at = datetime.fromisoformat(item["read_at"])
            except (KeyError, TypeError, ValueError):
                continue
            if "/" not in name and not name.startswith(".") and (folder / _pre_arm_file(name)).is_file():
                context.pre_arm_staged[name] = read_at  # the log itself is read when the bundle is sealed
                context.pre_arm_clocks[name] = item.get("clock")
        return context


def _pre_arm_file(router: str) -> str:
    return f"{router}.pre-arm.log"


class _PreArmFiles:
    """Pre-arm logs written to staging folders, each log redacted once: flows joined to
    one router at once share one read of its log (`Arming.logs_as_they_were`), and each of
    their folders gets it. The first incident to save a log redacts and writes it; the
    others copy that file (a 10 MB log redacted once per flow cost the agent a core-second
    in a burst of 20 flows). Entries go with the log (weakly keyed).

    Threads: called from worker threads at once; `_lock` guards `_files`, never held while
    writing. Invariant: a copy is taken only of a file whose writing finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # the log -> the path its first writer wrote (or the error it met), once it is done
        self._files: weakref.WeakKeyDictionary[LogSnapshot, Future] = weakref.WeakKeyDictionary()

    def write(self, snapshot: LogSnapshot, path: Path, secrets: tuple[str, ...]) -> None:
        with self._lock:
            first = self._files.get(snapshot)
            if first is None:
                self._files[snapshot] = mine = Future()
        if first is None:
            try:
                _write_private(path, redact_pieces(text_pieces(snapshot.text), secrets))
            except BaseException as exc:
                mine.set_exception(exc)
                raise
            mine.set_result(path)
            return
        try:
            path.touch(mode=0o600, exist_ok=True)
            shutil.copyfile(first.result(), path)
        except Exception:  # noqa: BLE001 - its write failed, or its folder is gone (sealed): write it here
            _write_private(path, redact_pieces(text_pieces(snapshot.text), secrets))


def _write_private(path: Path, pieces: Iterable[str]) -> None:
    path.touch(mode=0o600, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        for piece in pieces:
            handle.write(piece)


def _read_private(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        return handle.read()


def _times(value: object) -> dict[str, datetime]:
    """A saved {name: ISO time} map; an entry that does not read back is left out (the
    bundle then lacks that end's arm time, nothing else)."""
    times = {}
    for name, text in value.items() if isinstance(value, dict) else ():
        try:
            at = datetime.fromisoformat(str(text))
        except ValueError:
            continue
        if at.tzinfo is not None:
            times[str(name)] = at
    return times
