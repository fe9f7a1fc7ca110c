"""Sealing: an ended incident's context turned into its bundle, then its staging dropped.

No router is touched here: everything the bundle holds was gathered by the worker's
arm, capture and release (in this run, or kept in the staging folder by a stopped one).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from collector.agent.contexts import IncidentContext, IncidentContexts
from collector.bundle import discard_abandoned_partial
from collector.core.decide import Close
from collector.core.states import IncidentState
from collector.evidence import CaptureResult, bundle_name, write_incident_bundle

log = logging.getLogger(__name__)


class BundleSealer:
    """Writes the bundle of an incident that ended captured; forgets every ended incident.

    Threads: `seal` runs in one of the agent's worker threads, once per incident, after
    its last Release answered (the core closes an incident only then), so the context it
    reads is no longer changed by anyone.

    Invariants: a bundle is written only for an incident that ended CAPTURED with a
    capture; an earlier run's unfinished folder of the same bundle is removed first, so
    one incident gives one bundle; the staging folder goes in every case."""

    def __init__(self, contexts: IncidentContexts, bundle_root: Path):
        self.contexts = contexts
        self.bundle_root = bundle_root
        # One bundle at a time: sealing reads both ends' whole logs (10 MB each on a busy
        # router) into a diagnosis and a timeline, and incidents that end together would
        # otherwise each hold theirs at once. No router waits on it: they are released.
        self._one_at_a_time = threading.Lock()

    def seal(self, close: Close, *, trigger_lines: tuple[str, ...], secrets: tuple[str, ...],
             diagnose) -> Path | None:
        """Write the incident's bundle (a capture happened), then drop its staging folder.
        `diagnose(result)` gives (report.md and report.json, report.html pieces); it is
        called once the bundle's timeline is written. A bundle folder that cannot be
        written (full, read-only, not a folder) gives None, said in one line: the routers
        were released before, the incident's end is still recorded."""
        with self._one_at_a_time:
            try:
                return self._seal(close, trigger_lines=trigger_lines, secrets=secrets, diagnose=diagnose)
            except OSError as exc:
                log.error("incident %s: its bundle could not be written: %s", close.incident_id, exc)
                self.contexts.forget(close.incident_id)
                return None

    def _seal(self, close: Close, *, trigger_lines: tuple[str, ...], secrets: tuple[str, ...],
              diagnose) -> Path | None:
        context = self.contexts.get(close.incident_id)
        if close.state is not IncidentState.CAPTURED or context.captured_at is None:
            self.contexts.forget(close.incident_id)
            return None
        captures, pre_arm, lost = self.contexts.for_bundle(context)  # the logs, read back from the staging folder
        incomplete = [f"{c.router}: {c.error}" for c in captures if c.error] + context.incomplete + lost
        incomplete += [f"{r.router}: {r.summary()}" for r in context.releases if not (r.clean or r.nothing_armed)]
        actions, disarm = self._release_record(context)
        result = CaptureResult(
            incident_id=close.incident_id, flow=context.flow, trigger_lines=trigger_lines, captures=captures,
            armed_at=context.armed_at, armed_ends=dict(context.armed_ends), captured_at=context.captured_at,
            armed_before_repeat=context.armed_before_repeat and context.armed_at is not None,
            sender=context.sender, notes=tuple(context.notes), actions=actions, disarm=disarm,
            incomplete=tuple(dict.fromkeys(incomplete)), pre_arm=pre_arm)
        for path in discard_abandoned_partial(self.bundle_root, bundle_name(result)):
            log.info("%s: unfinished bundle of a stopped run removed; its incident is sealed again", path.name)
        bundle = write_incident_bundle(result, self.bundle_root, secrets=secrets, reports=lambda: diagnose(result))
        self.contexts.forget(close.incident_id)
        return bundle

    def _release_record(self, context: IncidentContext) -> tuple[tuple[dict, ...], dict[str, str]]:
        """Every change taken back and each router's disarm verdict: a stopped run's (from
        the staging folder) first, then this run's (a "nothing armed" here does not hide
        what the stopped run's own disarm found)."""
        actions: list[dict] = []
        disarm: dict[str, str] = {}
        if context.resumed:
            staged = self.contexts.stage(context.incident_id).releases()
            mine = len(context.releases)
            for row in staged[:max(0, len(staged) - mine)]:  # this run's own are staged too, at the end
                actions += [a for a in row.get("actions", []) if isinstance(a, dict)]
                disarm[str(row.get("router"))] = str(row.get("summary"))
        for result in context.releases:
            actions += [change.to_json() for change in result.changes]
            if not (result.nothing_armed and result.router in disarm):
                disarm[result.router] = result.summary()
        return tuple(actions), disarm
