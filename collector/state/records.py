"""What the state store holds, as values: one frozen dataclass per kind of row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from collector.core.states import IncidentState, StepStatus
from collector.core.steps import Step
from collector.detect.events import InvalidSpiEvent
from collector.detect.tracker import encode_key
from collector.errors import StateStoreError
from collector.timeutil import utcnow

EventSource = Literal["poll", "syslog", "qfp"]
INCIDENT_STATES: tuple[str, ...] = tuple(IncidentState)
STEP_STATUSES: tuple[str, ...] = tuple(StepStatus)
EVENT_SOURCES: tuple[str, ...] = ("poll", "syslog", "qfp")


class StateError(StateStoreError, RuntimeError):
    """The state file cannot be used (newer schema, not a database, bad value)."""



@dataclass(frozen=True, slots=True)
class LogCursorRecord:
    """Where the last read of one router's log buffer ended.

    `fingerprints` is the opaque text of `collector.detect.cursor.LogCursor.to_text()`
    (which lines were in the buffer), the part that finds new lines across wrap and
    `clear logging`. The other fields are for checks and reports: `messages_logged`
    going down or `buffer_size` changing means the buffer was cleared or resized;
    `last_seq` / `last_device_time` show where the router's own numbering and clock were."""

    router: str
    fingerprints: str
    last_seq: int | None
    last_device_time: str | None  # the timestamp text as the router printed it
    last_line_hash: str | None
    buffer_size: int | None  # `Log Buffer (N bytes)` at the last read
    messages_logged: int | None  # `Buffer logging: ... N messages logged` at the last read
    read_at: datetime
    whole_read_at: datetime | None = None  # the last read of the whole buffer (None: never)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One received line (or counter change), as it arrived."""

    event_id: str  # the agent's dedupe id (same line via poll and syslog -> same id)
    router: str
    key: str  # tracker key text (`encode_key`), "" if the line maps to no flow
    source: EventSource
    raw: str
    device_time: datetime | None
    received_at: datetime
    incident_id: str | None = None
    row_id: int | None = None  # assigned by the store

    @classmethod
    def from_invalid_spi(
        cls, event: InvalidSpiEvent, event_id: str, incident_id: str | None = None
    ) -> EventRecord:
        """The stored form of a parsed invalid-SPI line.

        Raises:
            Nothing: the event's fields are copied as they are.
        """
        return cls(
            event_id=event_id,
            router=event.flow.router,
            key=encode_key(event.flow),
            source=event.source,  # type: ignore[arg-type]
            raw=event.raw,
            device_time=event.device_time,
            received_at=event.received_at,
            incident_id=incident_id,
        )


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    incident_id: str
    key: str  # tracker key text
    playbook: str
    state: IncidentState
    reason: str
    bundle_path: str | None
    routers: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    armed_late: bool = False  # armed only after the flow had repeated: capture holds the aftermath
    armed_at: datetime | None = None  # every end armed and the receiver's log marked


@dataclass(frozen=True, slots=True)
class ArmedStep:
    """One arm step on one router as recorded; undo it when status is not `undone`."""

    incident_id: str
    router: str
    index: int
    step: Step
    status: StepStatus
    error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WorkRecord:
    """One piece of router work of an incident done through a site worker (`--broker`)."""

    incident_id: str
    router: str
    action: str  # arm, join, capture, disarm, hand-over, emergency-disarm
    site: str  # the site whose worker did it, or was asked and did not answer
    worker: str | None  # the worker's node name (site@host); None when no worker answered
    ok: bool
    detail: str
    at: datetime

    def to_json(self) -> dict:
        return {"router": self.router, "action": self.action, "site": self.site, "worker": self.worker,
                "ok": self.ok, "detail": self.detail, "at": self.at.isoformat()}


@dataclass(frozen=True, slots=True)
class QfpReading:
    router: str
    counters: Mapping[str, int]
    read_at: datetime


@dataclass(frozen=True, slots=True)
class RouterAddress:
    router: str
    address: IPv4Address | IPv6Address
    seen_at: datetime



# -- how values are written in the file


def ts(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise StateError(f"timestamps must be timezone-aware, got {value!r}")
    return value.isoformat()


def dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


now = utcnow  # the store's timestamps: aware UTC, like every other in the tool


def check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise StateError(f"unknown {what} {value!r} (one of {', '.join(allowed)})")

