"""Incident states and step statuses: the enums the state store's CHECKs are built from."""

from __future__ import annotations

from enum import StrEnum


class IncidentState(StrEnum):
    """Where one incident stands. Final states are every one but ARMED and CAPTURING."""

    ARMED = "armed"  # debugs on (or being put on) at one or both ends, waiting for a repeat
    CAPTURING = "capturing"  # a repeat logged after arming was seen; evidence being taken
    CAPTURED = "captured"  # bundle written (complete or marked incomplete)
    TRANSIENT = "transient"  # seen once, not repeated within the window: a rekey transient
    NOT_CAPTURED = "not-captured"  # it had repeated, but no line was logged after arming in the window
    STOPPED = "stopped"  # the agent was stopped (SIGTERM/SIGINT) and disarmed on the way out
    FAILED = "failed"  # could not arm, capture or disarm as planned; the reason says why
    SKIPPED = "skipped"  # not armed on purpose (cap, dry run, unknown source, refusal)

    @property
    def is_open(self) -> bool:
        return self in (IncidentState.ARMED, IncidentState.CAPTURING)


class StepStatus(StrEnum):
    """One recorded change on one router."""

    PENDING = "pending"  # recorded, about to be sent (or sent and the answer lost)
    APPLIED = "applied"
    UNDONE = "undone"
    FAILED = "failed"  # the router refused it or the session broke; its undo still runs


class StepScope(StrEnum):
    """Whom a step serves: the whole router (logging, debugs, applet) or one flow (its condition)."""

    ROUTER = "router"
    FLOW = "flow"


def sql_check(column: str, enum: type[StrEnum]) -> str:
    """`CHECK (column IN (...))` for a schema, generated from the enum."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"CHECK ({column} IN ({values}))"
