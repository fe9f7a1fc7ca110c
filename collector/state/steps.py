"""The step ledger: every change the tool makes to a router, recorded before it is sent.

`armed_routers()` and `armed_steps()` say what a crashed run left to undo.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from collector.core.states import StepScope, StepStatus
from collector.core.steps import Step
from collector.state.database import Database
from collector.state.records import STEP_STATUSES, ArmedStep, StateError, check, now, ts


class StepTables(Database):
    """Each router's armed steps, per incident, with their status (pending, applied,
    failed, undone)."""

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

    def begin_steps(self, incident_id: str, router: str, steps: Sequence[tuple[int, Step]]) -> None:
        """`begin_step` for several steps in one write (one sync to disk, not one each):
        all are `pending` before the first is sent. Those that end up not sent are
        dropped with `forget_steps`.

        Raises:
            StateStoreError: the file cannot be written: no step may then be sent.
        """
        self.begin_steps_of(router, [(incident_id, index, step) for index, step in steps])

    def begin_steps_of(self, router: str, steps: Sequence[tuple[str, int, Step]]) -> None:
        """`begin_steps` for the steps of several incidents on one router (incident, index,
        step), in one write: flows joining a router at once.

        Raises:
            StateStoreError: the file cannot be written: no step may then be sent.
        """
        at = ts(now())
        with self._write(critical=True) as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO armed_steps (incident_id, router, step_index, mode, do, undo, why,"
                " status, error, updated_at, scope) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', NULL, ?, ?)",
                [(incident_id, router, index, step.mode, json.dumps(list(step.do)), json.dumps(list(step.undo)),
                  step.why, at, str(step.scope)) for incident_id, index, step in steps],
            )

    def steps_applied(self, incident_id: str, router: str, indexes: Sequence[int]) -> None:
        """Mark these `pending` steps `applied`, in one write. Not synced step by step:
        until it is written a step stays `pending`, which the disarm undoes all the same.

        Raises:
            StateStoreError: the file cannot be written.
        """
        self.steps_applied_of(router, [(incident_id, index) for index in indexes])

    def steps_applied_of(self, router: str, steps: Sequence[tuple[str, int]]) -> None:
        """`steps_applied` for steps (incident, index) of several incidents on one router.

        Raises:
            StateStoreError: the file cannot be written.
        """
        if not steps:
            return
        at = ts(now())
        with self._write(synced=False) as conn:
            conn.executemany(
                "UPDATE armed_steps SET status = 'applied', updated_at = ?"
                " WHERE incident_id = ? AND router = ? AND step_index = ? AND status = 'pending'",
                [(at, incident_id, router, index) for incident_id, index in steps],
            )

    def forget_steps(self, incident_id: str, router: str, indexes: Sequence[int]) -> None:
        """Drop `pending` steps that were never sent (the arming stopped before them).

        Raises:
            StateStoreError: the file cannot be written.
        """
        self.forget_steps_of(router, [(incident_id, index) for index in indexes])

    def forget_steps_of(self, router: str, steps: Sequence[tuple[str, int]]) -> None:
        """`forget_steps` for steps (incident, index) of several incidents on one router.

        Raises:
            StateStoreError: the file cannot be written.
        """
        if not steps:
            return
        with self._write(critical=True) as conn:
            conn.executemany(
                "DELETE FROM armed_steps WHERE incident_id = ? AND router = ? AND step_index = ? AND status = 'pending'",
                [(incident_id, router, index) for incident_id, index in steps],
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
