"""What a capture has produced so far, kept on disk as it arrives.

A run killed in the middle of a capture (cron's timeout, SIGKILL, a crash) loses what it
held in memory; the next run finds here each router's capture as far as it went:

    <bundle_root>/.staging/<incident>/captures/<router>/plan.json      commands to run
    <bundle_root>/.staging/<incident>/captures/<router>/records.jsonl  one per command done
    <bundle_root>/.staging/<incident>/captures/<router>/done.json      the capture ended
    <bundle_root>/.staging/<incident>/releases.jsonl                   one per router released

Texts are redacted before they are written (IOS secret forms and the inventory's own
credential values), as in a bundle: a folder left behind holds no secret. Files are 0600,
folders 0700. Writing never raises: a capture must not fail because its copy could not
be kept (it then stays in memory and the bundle is written from there). Once a router's
capture is all here, the worker keeps none of its outputs in memory (a 10 MB `show
logging` per incident would add up): `restore` puts them back when the bundle is sealed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import chain
from pathlib import Path

from collector.core.results import DisarmResult
from collector.clocks import clock_from_records
from collector.command_results import CommandResult
from collector.bundle import STREAM_CHARS
from collector.evidence import RouterCapture
from collector.redact import redact, redact_data, redact_pieces, redact_values, text_pieces

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedCapture:
    """One router's capture as a stopped run left it."""

    capture: RouterCapture
    finished: bool  # the capture ran to its end (with or without errors)
    not_run: tuple[str, ...]  # planned commands with no record (the run was stopped first)


class CaptureStage:
    """Writes one incident's capture progress; one instance per incident folder."""

    def __init__(self, folder: Path, secrets: tuple[str, ...] = ()):
        self.folder = folder
        self.secrets = tuple(s for s in secrets if s)

    # -- writing -------------------------------------------------------------------------

    def clear(self, router: str) -> None:
        """Drop what was staged of `router` (it is being captured anew)."""
        shutil.rmtree(self.folder / "captures" / _safe(router), ignore_errors=True)

    def plan(self, router: str, role: str, platform: str, peer: str, commands) -> None:
        self._write(router, "plan.json", (json.dumps({"router": router, "role": role, "platform": platform,
                                                      "peer": peer, "commands": list(commands)}),), append=False)

    def record(self, record: CommandResult) -> bool:
        """Stage one command's result; False when it could not be written."""
        text = record.text
        big = text is not None and len(text) > STREAM_CHARS
        row = {"command": record.command, "text": None if big else self._scrub(text),
               "parsed": redact_data(record.parsed, self.secrets) if record.parsed is not None else None,
               "template": record.template, "error": self._scrub(record.error), "error_kind": record.error_kind,
               "started": record.started.isoformat(), "ended": record.ended.isoformat()}
        line = json.dumps(row, default=str)
        if not big:
            return self._write(record.router, "records.jsonl", (line, "\n"), append=True)
        # A 10 MB output is redacted and escaped a piece at a time into the same JSON line
        # (JSON escapes character by character: the pieces make the whole text's string).
        assert text is not None
        head, tail = line.split('"text": null', 1)  # the key: inside a JSON string every " is escaped
        pieces = (json.dumps(piece)[1:-1] for piece in redact_pieces(text_pieces(text), self.secrets))
        return self._write(record.router, "records.jsonl", chain((head, '"text": "'), pieces, ('"', tail, "\n")),
                           append=True)

    def done(self, capture: RouterCapture) -> bool:
        """Mark the router's capture finished; False when it could not be written."""
        return self._write(capture.router, "done.json", (json.dumps({"router": capture.router, "role": capture.role,
                                                                     "platform": capture.platform,
                                                                     "peer": capture.peer,
                                                                     "clock_offset": capture.clock_offset,
                                                                     "error": self._scrub(capture.error)}),),
                           append=False)

    def release(self, result: DisarmResult) -> None:
        row = {"router": result.router, "summary": result.summary(), "clean": result.clean or result.nothing_armed,
               "actions": [change.to_json() for change in result.changes]}
        self._write(None, "releases.jsonl", (json.dumps(redact_data(row, self.secrets), default=str), "\n"),
                    append=True)

    def _scrub(self, text: str | None) -> str | None:
        return None if text is None else redact_values(redact(text), self.secrets)

    def _write(self, router: str | None, name: str, pieces: Iterable[str], *, append: bool) -> bool:
        folder = self.folder if router is None else self.folder / "captures" / _safe(router)
        try:
            make_private(folder)
            path = folder / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                for piece in pieces:
                    handle.write(piece)
        except OSError as exc:
            log.warning("could not stage %s for %s: %s", name, router or self.folder.name, exc.strerror or exc)
            return False
        return True

    # -- a capture kept here, not in memory ----------------------------------------------------

    @staticmethod
    def without_outputs(capture: RouterCapture) -> RouterCapture:
        """`capture` with its command texts and parsed tables dropped (they are staged)."""
        return replace(capture, commands=tuple(replace(r, text=None, parsed=None) for r in capture.commands))

    def restore(self, capture: RouterCapture) -> RouterCapture:
        """A capture made `without_outputs`, its texts and tables read back from here (as
        staged: redacted). Everything else is the one in memory (site, worker, errors).

        Raises:
            OSError: the router's staged capture is missing or does not match."""
        staged = _read_capture(self.folder / "captures" / _safe(capture.router))
        records = staged.capture.commands if staged is not None else ()
        if [r.command for r in records] != [r.command for r in capture.commands]:
            raise OSError(f"the staged capture of {capture.router} is missing or incomplete")
        return replace(capture, commands=tuple(replace(mine, text=kept.text, parsed=kept.parsed)
                                               for mine, kept in zip(capture.commands, records)))

    # -- reading -------------------------------------------------------------------------

    def captures(self) -> dict[str, StagedCapture]:
        """Each router's staged capture (routers with nothing staged are absent)."""
        found: dict[str, StagedCapture] = {}
        root = self.folder / "captures"
        if not root.is_dir():
            return found
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            staged = _read_capture(folder)
            if staged is not None:
                found[staged.capture.router] = staged
        return found

    def releases(self) -> list[dict]:
        return _read_jsonl(self.folder / "releases.jsonl")


def make_private(folder: Path) -> None:
    """Create `folder` and each missing parent 0700 (`mkdir(parents=True)` would make the
    parents 0755: the staging folder holds router outputs)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def _read_capture(folder: Path) -> StagedCapture | None:
    plan = _read_json(folder / "plan.json")
    done = _read_json(folder / "done.json")
    if plan is None and done is None:
        return None
    head = done or plan
    router = str(head.get("router") or folder.name)
    records = []
    for row in _read_jsonl(folder / "records.jsonl"):
        try:
            records.append(CommandResult(router, row["command"], row["text"], datetime.fromisoformat(row["started"]),
                                         datetime.fromisoformat(row["ended"]), parsed=row["parsed"],
                                         template=row["template"], error=row["error"],
                                         error_kind=row.get("error_kind")))
        except (KeyError, TypeError, ValueError):
            continue  # a line cut by the kill
    offset = done.get("clock_offset") if done else None
    if offset is None:
        clock = clock_from_records((r.command, r.text, r.started, r.ended) for r in records)
        offset = None if clock is None else clock.skew_seconds
    ran = {r.command for r in records}
    not_run = tuple(c for c in (plan or {}).get("commands", []) if c not in ran) if done is None else ()
    capture = RouterCapture(router, head.get("role", "receiver"), head.get("platform", "unknown"),
                            head.get("peer", ""), tuple(records), offset,
                            error=done.get("error") if done else None)
    return StagedCapture(capture, finished=done is not None, not_run=not_run)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        with path.open(encoding="utf-8") as handle:  # a line at a time: one may hold a 10 MB output
            for line in handle:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # the last line, cut by the kill
                if isinstance(row, dict):
                    rows.append(row)
    except OSError:
        return []
    return rows


def _safe(router: str) -> str:
    """An inventory name as one folder name (names are checked at load; this is a guard)."""
    return router.replace("/", "_").replace("\x00", "_") if router not in (".", "..") else f"_{router}"
