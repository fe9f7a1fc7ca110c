"""The log side of the store: cursors per router, every event received (the flow tracker's
tables are in `trackers`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from collector.state.database import Database
from collector.state.records import EVENT_SOURCES, EventRecord, LogCursorRecord, StateError, ts, dt


class LogTables(Database):
    """Where each router's log was last read, and what arrived."""

    # -- log cursors -----------------------------------------------------------

    def log_cursor(self, router: str) -> LogCursorRecord | None:
        """Where reading `router`'s log stopped last time, None before the first read.

        Raises:
            StateStoreError: the file cannot be read.
        """
        rows = self._read("SELECT * FROM log_cursors WHERE router = ?", (router,))
        if not rows:
            return None
        r = rows[0]
        return LogCursorRecord(
            router=r["router"],
            fingerprints=r["fingerprints"],
            last_seq=r["last_seq"],
            last_device_time=r["last_device_time"],
            last_line_hash=r["last_line_hash"],
            buffer_size=r["buffer_size"],
            messages_logged=r["messages_logged"],
            read_at=datetime.fromisoformat(r["read_at"]),
            whole_read_at=datetime.fromisoformat(r["whole_read_at"]) if r["whole_read_at"] else None,
        )

    def save_log_cursor(self, cursor: LogCursorRecord) -> None:
        """Replace `cursor.router`'s log cursor.

        Raises:
            StateStoreError: the file cannot be written, or `read_at` has no time zone.
        """
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO log_cursors VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cursor.router,
                    cursor.fingerprints,
                    cursor.last_seq,
                    cursor.last_device_time,
                    cursor.last_line_hash,
                    cursor.buffer_size,
                    cursor.messages_logged,
                    ts(cursor.read_at),
                    ts(cursor.whole_read_at) if cursor.whole_read_at is not None else None,
                ),
            )

    # -- events ----------------------------------------------------------------

    def record_event(self, event: EventRecord) -> int:
        """Store one event verbatim (duplicates too: they are evidence); returns its row id.

        Raises:
            StateStoreError: as `record_events`.
        """
        return self.record_events([event])[0]

    def record_events(self, events: Iterable[EventRecord]) -> list[int]:
        """Store several events in one transaction (all or none).

        Raises:
            StateStoreError: the file cannot be written, an event has an unknown source
                or a `received_at` without time zone; then none is stored.
        """
        with self._write() as conn:
            return self._insert_events(conn, events)

    @staticmethod
    def _insert_events(conn, events: Iterable[EventRecord]) -> list[int]:
        """Within a write transaction: store the events; their row ids."""
        ids: list[int] = []
        for e in events:
            if e.source not in EVENT_SOURCES:
                raise StateError(f"unknown event source {e.source!r}")
            cur = conn.execute(
                "INSERT INTO events (event_id, router, key, source, raw, device_time, received_at,"
                " incident_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    e.event_id,
                    e.router,
                    e.key,
                    e.source,
                    e.raw,
                    # device clocks often carry no zone: kept as printed (naive allowed)
                    None if e.device_time is None else e.device_time.isoformat(),
                    ts(e.received_at),
                    e.incident_id,
                ),
            )
            ids.append(int(cur.lastrowid))
        return ids

    def events(
        self,
        *,
        router: str | None = None,
        key: str | None = None,
        incident_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Events in arrival order, filtered by any of router, key, incident, received since.

        Raises:
            StateStoreError: the file cannot be read, or `since` has no time zone.
        """
        where, params = [], []
        for column, value in (("router", router), ("key", key), ("incident_id", incident_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("received_at >= ?")
            params.append(ts(since))
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY row_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            EventRecord(
                event_id=r["event_id"],
                router=r["router"],
                key=r["key"],
                source=r["source"],
                raw=r["raw"],
                device_time=dt(r["device_time"]),
                received_at=datetime.fromisoformat(r["received_at"]),
                incident_id=r["incident_id"],
                row_id=r["row_id"],
            )
            for r in self._read(sql, params)
        ]

    def prune_events(self, before: datetime) -> int:
        """Forget events received before `before`, except those of incidents still open
        (armed or capturing): the evidence of a finished incident is in its bundle.

        Raises:
            StateStoreError: the file cannot be written, or `before` has no time zone.
        """
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM events WHERE received_at < ? AND (incident_id IS NULL OR incident_id NOT IN"
                " (SELECT incident_id FROM incidents WHERE state IN ('armed', 'capturing')))",
                (ts(before),))
            return cur.rowcount

    def link_events(self, incident_id: str, key: str, since: datetime) -> int:
        """Attach the still unlinked events of `key` received since `since` to an incident.

        Raises:
            StateStoreError: the file cannot be written, or `since` has no time zone.
        """
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE events SET incident_id = ? WHERE key = ? AND received_at >= ? AND incident_id IS NULL",
                (incident_id, key, ts(since)),
            )
            return cur.rowcount
