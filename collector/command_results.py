"""What running commands on routers produced, as values: one command's result, one
router's outcome, one collection run. Pure data (no sessions): sessions, `collect` and
the responder make them; the audit, the printers, the bundle and the report read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One command on one router: the one result type of a session's `run`, of `collect`
    and of the bundle (its manifest lists `summary()`).

    `text` is what came back without echo and prompt (partial output kept on an error,
    None when nothing came back); `parsed` holds the template's records where a template
    exists; `error_kind` says which failure (timeout, refused, skipped, parse, ...)."""

    router: str
    command: str
    text: str | None
    started: datetime
    ended: datetime
    parsed: list[dict] | None = None
    template: str | None = None
    error: str | None = None
    error_kind: str | None = None

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()

    def summary(self) -> dict:
        """The bundle manifest's entry for this command (no texts: those are files)."""
        return {"router": self.router, "command": self.command, "status": "ok" if self.error is None else "failed",
                "error": self.error, "started": self.started.isoformat(), "ended": self.ended.isoformat(),
                "template": self.template}


@dataclass(frozen=True, slots=True)
class HostOutcome:
    host: str
    results: tuple[CommandResult, ...]
    error: str | None = None  # connection-level failure: no or not all commands ran
    error_kind: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.error is None for r in self.results)

    @property
    def reason(self) -> str | None:
        if self.error:
            return self.error
        failed = [r for r in self.results if r.error]
        return failed[0].error if failed else None


@dataclass
class CollectionRun:
    commands: tuple[str, ...]
    started: datetime
    ended: datetime | None = None
    outcomes: list[HostOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[HostOutcome]:
        return [o for o in self.outcomes if not o.ok]
