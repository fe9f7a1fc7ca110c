"""What running commands on routers produced, as values: one command's result, one
router's outcome, one collection run. Pure data (no sessions): `collect` makes them,
the audit, the printers and the bundle read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CommandResult:
    host: str
    command: str
    raw: str | None
    parsed: list[dict] | None
    template: str | None
    error: str | None
    error_kind: str | None
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


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
