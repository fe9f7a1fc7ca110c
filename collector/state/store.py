"""`StateStore`: the agent's memory as one object, made of the tables' classes."""

from __future__ import annotations

from collector.state.incidents import IncidentTables
from collector.state.logs import LogTables
from collector.state.routers import RouterTables
from collector.state.sites import SiteWorkTables
from collector.state.steps import StepTables


class StateStore(LogTables, IncidentTables, StepTables, RouterTables, SiteWorkTables):
    """All persistent state of the agent. One instance per process; share it between threads.

    Each base class owns its tables (logs, incidents, steps, router facts, site work) and they
    share one `Database`: one connection per thread, one write transaction at a time."""
