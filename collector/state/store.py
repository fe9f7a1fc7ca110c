"""`StateStore`: the agent's memory as one object, made of the tables' classes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from collector.state.incidents import IncidentTables
from collector.state.logs import LogTables
from collector.state.records import EventRecord
from collector.state.routers import RouterTables
from collector.state.sites import SiteWorkTables
from collector.state.steps import StepTables
from collector.state.trackers import TrackerTables


class StateStore(LogTables, TrackerTables, IncidentTables, StepTables, RouterTables, SiteWorkTables):
    """All persistent state of the agent. One instance per process; share it between threads.

    Each base class owns its tables (logs, trackers, incidents, steps, router facts, site work) and they
    share one `Database`: one connection per thread, one write transaction at a time."""

    def record_seen(self, events: Sequence[EventRecord],
                    unknown_sources: Sequence[tuple[str, str, str, datetime]] = ()) -> None:
        """Store the lines an agent loop counted and the unknown sources it noted
        (router, src, reason, at) since it last did, in one transaction (all or none).

        Raises:
            ValueError: a src is not an IP address (nothing stored).
            StateStoreError: as `record_events` and `note_unknown_source` (nothing stored).
        """
        if not events and not unknown_sources:
            return
        with self._write() as conn:
            self._insert_events(conn, events)
            self._count_unknown_sources(conn, unknown_sources)
