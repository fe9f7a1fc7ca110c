"""What acting on a router produced, as values: arm, disarm and each change made.

The worker returns these; the decision code and the observers read their fields, never a
sentence. `summary()` is for people only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from collector.core.states import StepStatus


@dataclass(frozen=True, slots=True)
class RouterChange:
    """One change sent to (or taken back from) a router, as the bundle's manifest lists it."""

    router: str
    incident_id: str
    step: int
    why: str
    do: tuple[str, ...]
    undo: tuple[str, ...]
    status: StepStatus
    at: datetime
    note: str | None = None  # what the router said, when it said more than its prompt

    def to_json(self) -> dict:
        return {"router": self.router, "incident": self.incident_id, "step": self.step, "why": self.why,
                "do": list(self.do), "undo": list(self.undo), "status": str(self.status),
                "at": self.at.isoformat(), "note": self.note}


@dataclass(frozen=True, slots=True, weakref_slot=True)  # weakly keyed by the staging it shares
class LogSnapshot:
    """A router's log as read at one moment (just before arming: arming may empty it), and
    its `show clock` read right after, with the agent's UTC times around that question: a
    second reading of the router's clock beside the capture's (see clocks.ClockTrack)."""

    router: str
    text: str
    read_at: datetime
    clock_text: str | None = None
    clock_asked: tuple[datetime, datetime] | None = None

    def clock_json(self) -> dict | None:
        """The clock reading as the manifest and the saved incident context keep it."""
        if self.clock_text is None or self.clock_asked is None:
            return None
        return {"show_clock": self.clock_text, "asked": [t.isoformat() for t in self.clock_asked]}

    @classmethod
    def read_back(cls, router: str, text: str, read_at: datetime, clock: object) -> LogSnapshot:
        """A snapshot from its saved form; a clock reading that is not of `clock_json`'s
        shape is left out (the timeline then uses the capture's reading alone)."""
        try:
            asked = tuple(datetime.fromisoformat(t) for t in clock["asked"])  # type: ignore[index]
            if len(asked) == 2 and all(t.tzinfo for t in asked) and isinstance(clock["show_clock"], str):  # type: ignore[index]
                return cls(router, text, read_at, clock["show_clock"], asked)  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            pass
        return cls(router, text, read_at)


@dataclass(frozen=True, slots=True)
class ArmResult:
    """Arming (or joining) one router for one incident."""

    router: str
    armed: bool
    joined: bool = False  # the router was already armed for another incident
    refused: bool = False  # a safety rule said no (pre-flight, authorization, plan): nothing was sent
    error: str | None = None
    changes: tuple[RouterChange, ...] = ()
    armed_at: datetime | None = None  # agent clock when the last step was acknowledged
    pre_arm_log: LogSnapshot | None = None
    # `arm(..., log_later=True)`: the log as it stood before arming is still to be read, cut
    # back to this pre-flight count (`Arming.logs_as_they_were`); None when read or not readable
    log_due_as_of: int | None = None
    skipped: tuple[str, ...] = ()  # arm steps not sent: that debug/condition was already on (not ours)
    stale_applets: tuple[str, ...] = ()  # the tool's dead-man applets found on the router, of no armed step
    notes: tuple[str, ...] = ()  # what pre-flight could not check, or allowed with a warning

    def summary(self) -> str:
        if self.armed:
            return f"{self.router}: {'joined' if self.joined else 'armed'}"
        return f"{self.router}: not armed: {self.error or 'unknown reason'}"


@dataclass(frozen=True, slots=True)
class DisarmResult:
    """Taking an incident's changes back from one router, and what was checked after."""

    router: str
    clean: bool  # verified: none of the tool's own debugs or conditions left (or handed over)
    leftovers: tuple[str, ...] = ()  # the tool's own debugs/conditions still on
    changes: tuple[RouterChange, ...] = ()
    handed_over_to: str | None = None  # incident that keeps the router's shared steps
    nothing_armed: bool = False
    error: str | None = None  # why it could not finish (the dead-man applet will)
    foreign: tuple[str, ...] = field(default=())  # debugs/conditions someone else set: left alone
    notes: tuple[str, ...] = ()  # what else happened on the way (an escalation, a record not written)

    def summary(self) -> str:
        return self._verdict() + "".join(f"; {note}" for note in self.notes)

    def _verdict(self) -> str:
        if self.nothing_armed:
            return "nothing armed"
        if self.error:
            return f"disarm incomplete: {self.error}"
        if self.handed_over_to:
            return f"clean for this flow; shared steps handed over to incident {self.handed_over_to}"
        if self.clean:
            kept = f"; left someone else's: {', '.join(self.foreign)}" if self.foreign else ""
            return "clean: none of the tool's debugs or conditions left" + kept
        return "NOT clean: " + ", ".join(self.leftovers)
