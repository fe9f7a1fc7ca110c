"""Work done on routers through site workers (the scale-out): which site, which worker."""

from __future__ import annotations

from collector.state.database import Database
from collector.state.records import WorkRecord, dt, ts


class SiteWorkTables(Database):
    """One row per arm, join, capture, disarm or hand-over a site worker did (or did not
    answer) for an incident: `collector incidents` and the manifest say which site did each."""

    def record_work(self, work: WorkRecord) -> None:
        """Record one piece of router work.

        Raises:
            StateStoreError: the file cannot be written, or `work.at` has no time zone.
        """
        with self._write() as conn:
            conn.execute(
                "INSERT INTO incident_work (incident_id, router, action, site, worker, ok, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (work.incident_id, work.router, work.action, work.site, work.worker, int(work.ok), work.detail,
                 ts(work.at)),
            )

    def work(self, incident_id: str | None = None) -> list[WorkRecord]:
        """Router work done through site workers, oldest first (of one incident, or all)."""
        where, params = ("WHERE incident_id = ?", (incident_id,)) if incident_id is not None else ("", ())
        rows = self._read(f"SELECT * FROM incident_work {where} ORDER BY at, rowid", params)
        return [WorkRecord(r["incident_id"], r["router"], r["action"], r["site"], r["worker"], bool(r["ok"]),
                           r["detail"], dt(r["at"])) for r in rows]
