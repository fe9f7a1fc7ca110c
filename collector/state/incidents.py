"""Incidents and the steps armed for them, each step written before it runs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from collector.core.states import IncidentState
from collector.state.database import Database
from collector.state.records import (
    INCIDENT_STATES,
    IncidentRecord,
    StateError,
    check,
    dt,
    now,
    ts,
)


class IncidentTables(Database):
    """Incidents: what was opened, why, and how it ended (their steps: `StepTables`)."""

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

