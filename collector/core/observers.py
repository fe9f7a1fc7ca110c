"""Observers of the agent: what the CLI, the demo, the tests and the metrics listen to.

The agent calls these methods on every observer it was given; an observer never changes
what the agent does. `AgentEvents` is the protocol; `NullEvents` implements every method
as a no-op, so an observer overrides only what it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from collector.core.results import ArmResult, DisarmResult
from collector.core.states import IncidentState


class AgentEvents(Protocol):
    def polled(self, router: str, *, ok: bool, lines: int, seconds: float, error_kind: str | None = None) -> None:
        """One read of a router's log (or QFP counters) finished."""

    def event_seen(self, router: str, source: str, *, known_source: bool) -> None:
        """One invalid-SPI line (or counter growth) from `source` (poll, syslog, qfp)."""

    def incident_opened(self, incident_id: str, router: str, flow: str, *, state: IncidentState) -> None:
        """A flow became an incident (armed, or skipped with a reason)."""

    def armed(self, incident_id: str, results: Sequence[ArmResult], seconds: float) -> None:
        """Both ends were armed (or tried): one result per router."""

    def captured(self, incident_id: str, bundle: Path, *, complete: bool, seconds: float) -> None:
        """An incident's bundle was sealed."""

    def disarmed(self, incident_id: str, results: Sequence[DisarmResult], state: IncidentState,
                 seconds: float) -> None:
        """An incident ended: its routers were disarmed (or handed over)."""

    def problem(self, router: str | None, message: str) -> None:
        """Something an operator should read: a failed poll, a refusal, a dry-run plan."""

    def poll_failed(self, router: str, message: str) -> None:
        """A log or QFP poll of `router` failed (`message` says why). It may fail the same
        way at every poll (a full disk, a router down): a `problem` said more than once."""

    def unknown_source(self, router: str, message: str) -> None:
        """A line from a source that is no peer (a scanner, spoofed ESP) was not armed:
        `message` says why. Frequent on routers with public addresses; not a `problem`."""

    def flows_tracked(self, count: int) -> None:
        """How many flows the tracker holds open windows for, after each decision."""

    def site_task(self, site: str, task: str, *, result: str, seconds: float) -> None:
        """One task sent to a site's worker (`--broker`) ended: result `ok` (answered),
        `error` (the worker answered with a failure) or `dark` (no answer)."""


class NullEvents:
    """Every event ignored: subclass and override what you need."""

    def polled(self, router, *, ok, lines, seconds, error_kind=None) -> None:
        pass

    def event_seen(self, router, source, *, known_source) -> None:
        pass

    def incident_opened(self, incident_id, router, flow, *, state) -> None:
        pass

    def armed(self, incident_id, results, seconds) -> None:
        pass

    def captured(self, incident_id, bundle, *, complete, seconds) -> None:
        pass

    def disarmed(self, incident_id, results, state, seconds) -> None:
        pass

    def problem(self, router, message) -> None:
        pass

    def poll_failed(self, router, message) -> None:
        self.problem(router, message)

    def unknown_source(self, router, message) -> None:
        pass

    def flows_tracked(self, count) -> None:
        pass

    def site_task(self, site, task, *, result, seconds) -> None:
        pass


class FanOut(NullEvents):
    """Several observers as one; an observer that raises is logged and skipped."""

    def __init__(self, *observers: AgentEvents):
        self.observers = [o for o in observers if o is not None]

    def __getattribute__(self, name: str):
        if name.startswith("_") or name == "observers" or name not in AgentEvents.__dict__:
            return object.__getattribute__(self, name)
        observers = object.__getattribute__(self, "observers")

        def call(*args, **kwargs) -> None:
            import logging
            for observer in observers:
                try:
                    getattr(observer, name)(*args, **kwargs)
                except Exception:  # an observer must never stop the agent
                    logging.getLogger(__name__).exception("observer %r failed on %s", observer, name)
        return call
