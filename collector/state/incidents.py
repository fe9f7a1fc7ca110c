"""Incidents and the steps armed for them, each step written before it runs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from collector.core.states import IncidentState, StepScope, StepStatus
from collector.core.steps import Step
from collector.state.database import Database
from collector.state.records import (
    INCIDENT_STATES,
    STEP_STATUSES,
    ArmedStep,
    IncidentRecord,
    StateError,
    check,
    dt,
    now,
    ts,
)


class IncidentTables(Database):
    """Incidents and their armed steps: `armed_routers()` and `armed_steps()` say what a
    crashed run left to undo."""

    # -- incidents ---------------------------------------------------------------

    def create_incident(
        self,
        incident_id: str,
        key: str,
        playbook: str,
        state: IncidentState = IncidentState.ARMED,
        *,
        routers: Iterable[str] = (),
        reason: str = "",
        at: datetime | None = None,
        armed_late: bool = False,
    ) -> IncidentRecord:
        """Record a new incident (before anything is armed for it) and return it.

        Raises:
            StateStoreError: the incident already exists, `state` is not an incident
                state, `at` has no time zone, or the file cannot be written.
        """
        check(state, INCIDENT_STATES, "incident state")
        when = ts(at or now())
        with self._write(critical=True) as conn:
            try:
                conn.execute(
                    "INSERT INTO incidents (incident_id, key, playbook, state, reason, bundle_path, routers,"
                    " created_at, updated_at, armed_late) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
                    (incident_id, key, playbook, str(state), reason, json.dumps(list(routers)), when, when,
                     int(armed_late)),
                )
            except sqlite3.IntegrityError:
                raise StateError(f"incident {incident_id} already exists") from None
        return self._incident_or_fail(incident_id)

    def update_incident(
        self,
        incident_id: str,
        *,
        state: IncidentState | None = None,
        reason: str | None = None,
        bundle_path: str | Path | None = None,
        routers: Iterable[str] | None = None,
        at: datetime | None = None,
        armed_at: datetime | None = None,
        armed_late: bool | None = None,
    ) -> IncidentRecord:
        """Change the fields given of an incident (always its `updated_at`) and return it.

        Raises:
            StateStoreError: there is no such incident, `state` is not an incident
                state, or the file cannot be written.
        """
        sets, params = ["updated_at = ?"], [ts(at or now())]
        if armed_at is not None:
            sets.append("armed_at = ?")
            params.append(ts(armed_at))
        if armed_late is not None:
            sets.append("armed_late = ?")
            params.append(int(armed_late))
        if state is not None:
            check(state, INCIDENT_STATES, "incident state")
            sets.append("state = ?")
            params.append(state)
        if reason is not None:
            sets.append("reason = ?")
            params.append(reason)
        if bundle_path is not None:
            sets.append("bundle_path = ?")
            params.append(str(bundle_path))
        if routers is not None:
            sets.append("routers = ?")
            params.append(json.dumps(list(routers)))
        with self._write(critical=True) as conn:
            cur = conn.execute(f"UPDATE incidents SET {', '.join(sets)} WHERE incident_id = ?", (*params, incident_id))
            if cur.rowcount == 0:
                raise StateError(f"no incident {incident_id}")
        return self._incident_or_fail(incident_id)

    def incident(self, incident_id: str) -> IncidentRecord | None:
        """One incident, None when there is no such incident.

        Raises:
            StateStoreError: the file cannot be read.
        """
        rows = self._read("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,))
        return _incident(rows[0]) if rows else None

    def incidents(self, states: Iterable[str] | None = None, key: str | None = None) -> list[IncidentRecord]:
        """Incidents oldest first, optionally only in some states or for one key.

        Raises:
            StateStoreError: a state asked for is not an incident state, or the file
                cannot be read.
        """
        where, params = [], []
        if states is not None:
            wanted = list(states)
            for s in wanted:
                check(s, INCIDENT_STATES, "incident state")
            where.append(f"state IN ({', '.join('?' * len(wanted))})")
            params += wanted
        if key is not None:
            where.append("key = ?")
            params.append(key)
        sql = "SELECT * FROM incidents" + (" WHERE " + " AND ".join(where) if where else "")
        return [_incident(r) for r in self._read(sql + " ORDER BY created_at, incident_id", params)]

    def _incident_or_fail(self, incident_id: str) -> IncidentRecord:
        found = self.incident(incident_id)
        if found is None:
            raise StateError(f"no incident {incident_id}")
        return found

    # -- armed steps ----------------------------------------------------------------

    def begin_step(self, incident_id: str, router: str, index: int, step: Step) -> None:
        """Record a step as `pending` BEFORE sending it: a crash after this line leaves
        enough on disk to undo it.

        Raises:
            StateStoreError: the file cannot be written: the step must then not be sent.
        """
        with self._write(critical=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO armed_steps (incident_id, router, step_index, mode, do, undo, why,"
                " status, error, updated_at, scope) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', NULL, ?, ?)",
                (
                    incident_id,
                    router,
                    index,
                    step.mode,
                    json.dumps(list(step.do)),
                    json.dumps(list(step.undo)),
                    step.why,
                    ts(now()),
                    str(step.scope),
                ),
            )

    def set_step_status(
        self, incident_id: str, router: str, index: int, status: StepStatus, error: str | None = None
    ) -> None:
        """applied (the do ran), failed (the do failed: may be half-applied, still undo it),
        undone (the undo ran). A failed undo keeps the status and records `error`.

        Raises:
            StateStoreError: `status` is not a step status, there is no such step, or
                the file cannot be written.
        """
        check(status, STEP_STATUSES, "step status")
        with self._write(critical=True) as conn:
            cur = conn.execute(
                "UPDATE armed_steps SET status = ?, error = ?, updated_at = ?"
                " WHERE incident_id = ? AND router = ? AND step_index = ?",
                (status, error, ts(now()), incident_id, router, index),
            )
            if cur.rowcount == 0:
                raise StateError(f"no step {index} of incident {incident_id} on {router}")

    def note_step_error(self, incident_id: str, router: str, index: int, error: str) -> None:
        """Record an error (e.g. an undo that failed) without changing the status.

        Raises:
            StateStoreError: the file cannot be written.
        """
        with self._write(critical=True) as conn:
            conn.execute(
                "UPDATE armed_steps SET error = ?, updated_at = ? WHERE incident_id = ? AND router = ? AND step_index = ?",
                (error, ts(now()), incident_id, router, index),
            )

    def armed_steps(
        self, router: str | None = None, incident_id: str | None = None, *, include_undone: bool = False
    ) -> list[ArmedStep]:
        """Steps still to undo (status pending/applied/failed), by router, incident, index.
        Disarm runs them in reverse.

        Raises:
            StateStoreError: the file cannot be read.
        """
        where, params = [], []
        if not include_undone:
            where.append("status != 'undone'")
        if router is not None:
            where.append("router = ?")
            params.append(router)
        if incident_id is not None:
            where.append("incident_id = ?")
            params.append(incident_id)
        sql = "SELECT * FROM armed_steps" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._read(sql + " ORDER BY router, incident_id, step_index", params)
        return [
            ArmedStep(
                incident_id=r["incident_id"],
                router=r["router"],
                index=r["step_index"],
                step=Step(
                    do=tuple(json.loads(r["do"])),
                    undo=tuple(json.loads(r["undo"])),
                    mode=r["mode"],
                    why=r["why"],
                    scope=StepScope(r["scope"]),
                ),
                status=StepStatus(r["status"]),
                error=r["error"],
                updated_at=datetime.fromisoformat(r["updated_at"]),
            )
            for r in rows
        ]

    def transfer_steps(self, router: str, from_incident: str, to_incident: str, keep: Iterable[int] = ()) -> int:
        """Hand a router's not-yet-undone steps (all but `keep`) from one incident to another
        that still needs them (two flows sharing a router: the debugs stay until the last one
        ends). The moved steps get indexes below the receiver's own, so its disarm, which runs
        indexes in reverse, undoes them after its own steps. Returns how many moved.

        Raises:
            StateStoreError: the file cannot be written; then no step moved.
        """
        kept = set(keep)
        with self._write(critical=True) as conn:
            rows = conn.execute(
                "SELECT step_index FROM armed_steps WHERE incident_id = ? AND router = ? AND status != 'undone'",
                (from_incident, router)).fetchall()
            moving = [r[0] for r in rows if r[0] not in kept]
            if not moving:
                return 0
            low = conn.execute("SELECT MIN(step_index) FROM armed_steps WHERE incident_id = ? AND router = ?",
                               (to_incident, router)).fetchone()[0]
            shift = min(low if low is not None else 0, 0) - max(moving) - 1
            for index in sorted(moving):
                conn.execute(
                    "UPDATE armed_steps SET incident_id = ?, step_index = ?, updated_at = ?"
                    " WHERE incident_id = ? AND router = ? AND step_index = ?",
                    (to_incident, index + shift, ts(now()), from_incident, router, index))
            return len(moving)

    def armed_routers(self) -> list[str]:
        """Routers with at least one step not undone: to disarm (reconcile) at start-up.

        Raises:
            StateStoreError: the file cannot be read.
        """
        return [r[0] for r in self._read("SELECT DISTINCT router FROM armed_steps WHERE status != 'undone' ORDER BY router")]


def _incident(r: sqlite3.Row) -> IncidentRecord:
    return IncidentRecord(
        incident_id=r["incident_id"],
        key=r["key"],
        playbook=r["playbook"],
        state=IncidentState(r["state"]),
        reason=r["reason"],
        bundle_path=r["bundle_path"],
        routers=tuple(json.loads(r["routers"])),
        created_at=datetime.fromisoformat(r["created_at"]),
        updated_at=datetime.fromisoformat(r["updated_at"]),
        armed_late=bool(r["armed_late"]),
        armed_at=dt(r["armed_at"]),
    )

