"""The agent's memory: one SQLite file, written before the agent acts.

What lives here, and why it must survive a crash or a restart:
  * log cursors per router: where the last read of `show logging` ended, so the next
    poll takes only new lines, even across buffer wrap, `clear logging` or a clock jump;
  * every event received (poll, syslog, QFP), verbatim: nothing is lost;
  * the flow tracker's state per playbook, so `--once` runs keep counting across runs;
  * armed steps per router, each written BEFORE it runs: at start-up `armed_routers()`
    says which routers a crashed run left armed, and `armed_steps()` what to undo;
  * incidents and their outcome; QFP counter baselines; discovered addresses per router.

`StateStore` is the whole interface; SQLite (stdlib `sqlite3`, WAL, synchronous=FULL)
is an implementation detail, so Redis or PostgreSQL can replace it later. It is safe
for a daemon's threads: one connection per thread, writes in `BEGIN IMMEDIATE`
transactions, a busy timeout for the rare writer collision. The folder is created
0700 and the file 0600 (it holds raw log lines and addresses).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Literal

from collector.detect.events import InvalidSpiEvent
from collector.detect.tracker import (
    FlowWindow,
    TrackerSnapshot,
    decode_key,
    decode_pair,
    encode_key,
    encode_pair,
)
from collector.core.states import IncidentState, StepScope, StepStatus, sql_check
from collector.core.steps import Step
from collector.errors import StateStoreError

SCHEMA_VERSION = 2

EventSource = Literal["poll", "syslog", "qfp"]
INCIDENT_STATES: tuple[str, ...] = tuple(IncidentState)
STEP_STATUSES: tuple[str, ...] = tuple(StepStatus)
EVENT_SOURCES: tuple[str, ...] = ("poll", "syslog", "qfp")


class StateError(StateStoreError, RuntimeError):
    """The state file cannot be used (newer schema, not a database, bad value)."""


# ---------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class LogCursorRecord:
    """Where the last read of one router's log buffer ended.

    `fingerprints` is the opaque text of `collector.detect.cursor.LogCursor.to_text()`
    (which lines were in the buffer), the part that finds new lines across wrap and
    `clear logging`. The other fields are for checks and reports: `messages_logged`
    going down or `buffer_size` changing means the buffer was cleared or resized;
    `last_seq` / `last_device_time` show where the router's own numbering and clock were."""

    router: str
    fingerprints: str
    last_seq: int | None
    last_device_time: str | None  # the timestamp text as the router printed it
    last_line_hash: str | None
    buffer_size: int | None  # `Log Buffer (N bytes)` at the last read
    messages_logged: int | None  # `Buffer logging: ... N messages logged` at the last read
    read_at: datetime


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One received line (or counter change), as it arrived."""

    event_id: str  # the agent's dedupe id (same line via poll and syslog -> same id)
    router: str
    key: str  # tracker key text (`encode_key`), "" if the line maps to no flow
    source: EventSource
    raw: str
    device_time: datetime | None
    received_at: datetime
    incident_id: str | None = None
    row_id: int | None = None  # assigned by the store

    @classmethod
    def from_invalid_spi(
        cls, event: InvalidSpiEvent, event_id: str, incident_id: str | None = None
    ) -> EventRecord:
        return cls(
            event_id=event_id,
            router=event.flow.router,
            key=encode_key(event.flow),
            source=event.source,  # type: ignore[arg-type]
            raw=event.raw,
            device_time=event.device_time,
            received_at=event.received_at,
            incident_id=incident_id,
        )


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    incident_id: str
    key: str  # tracker key text
    playbook: str
    state: IncidentState
    reason: str
    bundle_path: str | None
    routers: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    armed_late: bool = False  # armed only after the flow had repeated: capture holds the aftermath
    armed_at: datetime | None = None  # every end armed and the receiver's log marked


@dataclass(frozen=True, slots=True)
class ArmedStep:
    """One arm step on one router as recorded; undo it when status is not `undone`."""

    incident_id: str
    router: str
    index: int
    step: Step
    status: StepStatus
    error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class QfpReading:
    router: str
    counters: Mapping[str, int]
    read_at: datetime


@dataclass(frozen=True, slots=True)
class RouterAddress:
    router: str
    address: IPv4Address | IPv6Address
    seen_at: datetime


# ---------------------------------------------------------------------- schema

_SCHEMA = """
CREATE TABLE log_cursors (
    router TEXT PRIMARY KEY,
    fingerprints TEXT NOT NULL,         -- collector.detect.cursor.LogCursor.to_text()
    last_seq INTEGER,
    last_device_time TEXT,
    last_line_hash TEXT,
    buffer_size INTEGER,
    messages_logged INTEGER,
    read_at TEXT NOT NULL
);
CREATE TABLE events (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    router TEXT NOT NULL,
    key TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('poll', 'syslog', 'qfp')),
    raw TEXT NOT NULL,
    device_time TEXT,
    received_at TEXT NOT NULL,
    incident_id TEXT
);
CREATE INDEX events_by_event_id ON events (event_id);
CREATE INDEX events_by_key ON events (key, received_at);
CREATE INDEX events_by_router ON events (router, received_at);
CREATE TABLE flows (                    -- open tracker windows, per tracker (playbook)
    tracker TEXT NOT NULL,
    key TEXT NOT NULL,
    ord INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    count INTEGER NOT NULL,
    repeated INTEGER NOT NULL,
    pair TEXT,
    PRIMARY KEY (tracker, key)
);
CREATE TABLE cooldowns (
    tracker TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('flow', 'pair')),
    key TEXT NOT NULL,
    until TEXT NOT NULL,
    PRIMARY KEY (tracker, kind, key)
);
CREATE TABLE seen_events (
    tracker TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ord INTEGER NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (tracker, event_id)
);
CREATE TABLE pending_transients (
    tracker TEXT NOT NULL,
    ord INTEGER NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tracker, ord)
);
CREATE TABLE trackers (
    tracker TEXT PRIMARY KEY,
    saved_at TEXT NOT NULL
);
CREATE TABLE incidents (
    incident_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    playbook TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('armed', 'capturing', 'captured', 'transient', 'failed', 'skipped')),
    reason TEXT NOT NULL,
    bundle_path TEXT,
    routers TEXT NOT NULL,              -- JSON list
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX incidents_by_state ON incidents (state);
CREATE TABLE armed_steps (
    incident_id TEXT NOT NULL,
    router TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('exec', 'config')),
    do TEXT NOT NULL,                   -- JSON list of commands
    undo TEXT NOT NULL,                 -- JSON list of commands
    why TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'undone', 'failed')),
    error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, router, step_index)
);
CREATE INDEX armed_steps_by_router ON armed_steps (router, status);
CREATE TABLE qfp_counters (
    router TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    read_at TEXT NOT NULL,
    PRIMARY KEY (router, name)
);
CREATE TABLE addresses (
    router TEXT NOT NULL,
    address TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (router, address)
);
CREATE INDEX addresses_by_address ON addresses (address);
"""

# Version 2: incident states and step statuses come from the enums of collector.core.states
# (SQLite cannot alter a CHECK, so the incidents table is rebuilt); an incident says
# whether it was armed only after its flow had repeated (`armed_late`), and a step whom it
# serves (`scope`), so nothing has to be recognised by reading prose or command text.
_SCHEMA_2 = f"""
CREATE TABLE incidents_v2 (
    incident_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    playbook TEXT NOT NULL,
    state TEXT NOT NULL {sql_check("state", IncidentState)},
    reason TEXT NOT NULL,
    bundle_path TEXT,
    routers TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    armed_late INTEGER NOT NULL DEFAULT 0,
    armed_at TEXT                        -- every end armed (and the receiver's log marked) at
);
INSERT INTO incidents_v2 (incident_id, key, playbook, state, reason, bundle_path, routers, created_at, updated_at)
    SELECT incident_id, key, playbook, state, reason, bundle_path, routers, created_at, updated_at FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_v2 RENAME TO incidents;
CREATE INDEX incidents_by_state ON incidents (state);
ALTER TABLE armed_steps ADD COLUMN scope TEXT NOT NULL DEFAULT 'router' {sql_check("scope", StepScope)};
CREATE TABLE unknown_sources (           -- invalid-SPI lines from no inventory router or peer
    router TEXT NOT NULL,
    src TEXT NOT NULL,
    lines INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (router, src)
);
"""

# Each schema change is one entry; `_migrate` applies them in order.
_MIGRATIONS: dict[int, str] = {1: _SCHEMA, 2: _SCHEMA_2}


def _ts(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise StateError(f"timestamps must be timezone-aware, got {value!r}")
    return value.isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------------- the store


class StateStore:
    """All persistent state of the agent. One instance per process; share it between threads."""

    def __init__(self, path: str | Path, *, timeout_seconds: float = 30.0):
        self.path = Path(path)
        self._timeout = timeout_seconds
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._prepare_files()
        self._migrate()

    # -- plumbing ------------------------------------------------------------

    def _prepare_files(self) -> None:
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)  # SQLite gives -wal and -shm the file's mode

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StateError("state store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise StateError(f"{self.path}: not a usable state database ({exc})") from None
            conn.execute("PRAGMA synchronous=FULL")  # an armed step must survive power loss
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, tuple(params)).fetchall()

    def _migrate(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path}: schema version {version} is newer than this collector ({SCHEMA_VERSION})"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={target}")

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    @property
    def journal_mode(self) -> str:
        return str(self._read("PRAGMA journal_mode")[0][0])

    def close(self) -> None:
        """Close every thread's connection. Call when no other thread uses the store."""
        self._closed = True
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- log cursors -----------------------------------------------------------

    def log_cursor(self, router: str) -> LogCursorRecord | None:
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
        )

    def save_log_cursor(self, cursor: LogCursorRecord) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO log_cursors VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cursor.router,
                    cursor.fingerprints,
                    cursor.last_seq,
                    cursor.last_device_time,
                    cursor.last_line_hash,
                    cursor.buffer_size,
                    cursor.messages_logged,
                    _ts(cursor.read_at),
                ),
            )

    # -- events ----------------------------------------------------------------

    def record_event(self, event: EventRecord) -> int:
        """Store one event verbatim (duplicates too: they are evidence); returns its row id."""
        return self.record_events([event])[0]

    def record_events(self, events: Iterable[EventRecord]) -> list[int]:
        """Store several events in one transaction (all or none)."""
        ids: list[int] = []
        with self._write() as conn:
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
                        _ts(e.received_at),
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
        """Events in arrival order, filtered by any of router, key, incident, received since."""
        where, params = [], []
        for column, value in (("router", router), ("key", key), ("incident_id", incident_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("received_at >= ?")
            params.append(_ts(since))
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
                device_time=_dt(r["device_time"]),
                received_at=datetime.fromisoformat(r["received_at"]),
                incident_id=r["incident_id"],
                row_id=r["row_id"],
            )
            for r in self._read(sql, params)
        ]

    def prune_events(self, before: datetime) -> int:
        """Forget events received before `before`, except those of incidents still open
        (armed or capturing): the evidence of a finished incident is in its bundle."""
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM events WHERE received_at < ? AND (incident_id IS NULL OR incident_id NOT IN"
                " (SELECT incident_id FROM incidents WHERE state IN ('armed', 'capturing')))",
                (_ts(before),))
            return cur.rowcount

    def link_events(self, incident_id: str, key: str, since: datetime) -> int:
        """Attach the still unlinked events of `key` received since `since` to an incident."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE events SET incident_id = ? WHERE key = ? AND received_at >= ? AND incident_id IS NULL",
                (incident_id, key, _ts(since)),
            )
            return cur.rowcount

    # -- tracker -----------------------------------------------------------------

    def save_tracker(self, tracker: str, snapshot: TrackerSnapshot) -> None:
        """Replace the stored state of tracker `tracker` (one per playbook) atomically."""
        with self._write() as conn:
            for table in ("flows", "cooldowns", "seen_events", "pending_transients"):
                conn.execute(f"DELETE FROM {table} WHERE tracker = ?", (tracker,))
            conn.executemany(
                "INSERT INTO flows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        tracker,
                        encode_key(w.key),
                        i,
                        _ts(w.first_seen),
                        _ts(w.last_seen),
                        w.count,
                        int(w.repeated),
                        None if w.pair is None else encode_pair(w.pair),
                    )
                    for i, w in enumerate(snapshot.windows)
                ],
            )
            conn.executemany(
                "INSERT INTO cooldowns VALUES (?, 'flow', ?, ?)",
                [(tracker, encode_key(k), _ts(t)) for k, t in snapshot.flow_cooldowns],
            )
            conn.executemany(
                "INSERT INTO cooldowns VALUES (?, 'pair', ?, ?)",
                [(tracker, encode_pair(p), _ts(t)) for p, t in snapshot.pair_cooldowns],
            )
            conn.executemany(
                "INSERT INTO seen_events VALUES (?, ?, ?, ?)",
                [(tracker, e, i, _ts(t)) for i, (e, t) in enumerate(snapshot.seen_events)],
            )
            conn.executemany(
                "INSERT INTO pending_transients VALUES (?, ?, ?)",
                [(tracker, i, encode_key(k)) for i, k in enumerate(snapshot.pending_transients)],
            )
            conn.execute("INSERT OR REPLACE INTO trackers VALUES (?, ?)", (tracker, _ts(_now())))

    def load_tracker(self, tracker: str) -> TrackerSnapshot | None:
        """The last saved state of `tracker`, None if it was never saved."""
        conn = self._connection()
        conn.execute("BEGIN")  # one consistent read across the tables
        try:
            if not conn.execute("SELECT 1 FROM trackers WHERE tracker = ?", (tracker,)).fetchall():
                return None
            flows = conn.execute("SELECT * FROM flows WHERE tracker = ? ORDER BY ord", (tracker,)).fetchall()
            cools = conn.execute("SELECT * FROM cooldowns WHERE tracker = ?", (tracker,)).fetchall()
            seen = conn.execute("SELECT * FROM seen_events WHERE tracker = ? ORDER BY ord", (tracker,)).fetchall()
            pending = conn.execute(
                "SELECT key FROM pending_transients WHERE tracker = ? ORDER BY ord", (tracker,)
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        return TrackerSnapshot(
            windows=tuple(
                FlowWindow(
                    key=decode_key(r["key"]),
                    first_seen=datetime.fromisoformat(r["first_seen"]),
                    last_seen=datetime.fromisoformat(r["last_seen"]),
                    count=r["count"],
                    repeated=bool(r["repeated"]),
                    pair=None if r["pair"] is None else decode_pair(r["pair"]),
                )
                for r in flows
            ),
            flow_cooldowns=tuple(
                (decode_key(r["key"]), datetime.fromisoformat(r["until"])) for r in cools if r["kind"] == "flow"
            ),
            pair_cooldowns=tuple(
                (decode_pair(r["key"]), datetime.fromisoformat(r["until"])) for r in cools if r["kind"] == "pair"
            ),
            seen_events=tuple((r["event_id"], datetime.fromisoformat(r["seen_at"])) for r in seen),
            pending_transients=tuple(decode_key(r["key"]) for r in pending),
        )

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
        _check(state, INCIDENT_STATES, "incident state")
        when = _ts(at or _now())
        with self._write() as conn:
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
        sets, params = ["updated_at = ?"], [_ts(at or _now())]
        if armed_at is not None:
            sets.append("armed_at = ?")
            params.append(_ts(armed_at))
        if armed_late is not None:
            sets.append("armed_late = ?")
            params.append(int(armed_late))
        if state is not None:
            _check(state, INCIDENT_STATES, "incident state")
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
        with self._write() as conn:
            cur = conn.execute(f"UPDATE incidents SET {', '.join(sets)} WHERE incident_id = ?", (*params, incident_id))
            if cur.rowcount == 0:
                raise StateError(f"no incident {incident_id}")
        return self._incident_or_fail(incident_id)

    def incident(self, incident_id: str) -> IncidentRecord | None:
        rows = self._read("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,))
        return _incident(rows[0]) if rows else None

    def incidents(self, states: Iterable[str] | None = None, key: str | None = None) -> list[IncidentRecord]:
        """Incidents oldest first, optionally only in some states or for one key."""
        where, params = [], []
        if states is not None:
            wanted = list(states)
            for s in wanted:
                _check(s, INCIDENT_STATES, "incident state")
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
        enough on disk to undo it."""
        with self._write() as conn:
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
                    _ts(_now()),
                    str(step.scope),
                ),
            )

    def set_step_status(
        self, incident_id: str, router: str, index: int, status: StepStatus, error: str | None = None
    ) -> None:
        """applied (the do ran), failed (the do failed: may be half-applied, still undo it),
        undone (the undo ran). A failed undo keeps the status and records `error`."""
        _check(status, STEP_STATUSES, "step status")
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE armed_steps SET status = ?, error = ?, updated_at = ?"
                " WHERE incident_id = ? AND router = ? AND step_index = ?",
                (status, error, _ts(_now()), incident_id, router, index),
            )
            if cur.rowcount == 0:
                raise StateError(f"no step {index} of incident {incident_id} on {router}")

    def note_step_error(self, incident_id: str, router: str, index: int, error: str) -> None:
        """Record an error (e.g. an undo that failed) without changing the status."""
        with self._write() as conn:
            conn.execute(
                "UPDATE armed_steps SET error = ?, updated_at = ? WHERE incident_id = ? AND router = ? AND step_index = ?",
                (error, _ts(_now()), incident_id, router, index),
            )

    def armed_steps(
        self, router: str | None = None, incident_id: str | None = None, *, include_undone: bool = False
    ) -> list[ArmedStep]:
        """Steps still to undo (status pending/applied/failed), by router, incident, index.
        Disarm runs them in reverse."""
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
        indexes in reverse, undoes them after its own steps. Returns how many moved."""
        kept = set(keep)
        with self._write() as conn:
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
                    (to_incident, index + shift, _ts(_now()), from_incident, router, index))
            return len(moving)

    # -- unknown sources -----------------------------------------------------------

    def note_unknown_source(self, router: str, src: str, reason: str, at: datetime) -> None:
        """Count a line whose srcaddr is no inventory router and no configured peer."""
        src = str(ip_address(src))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO unknown_sources VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (router, src) DO UPDATE"
                " SET lines = lines + 1, last_seen = excluded.last_seen, reason = excluded.reason",
                (router, src, _ts(at), _ts(at), reason))

    def unknown_sources(self) -> list[dict]:
        rows = self._read("SELECT * FROM unknown_sources ORDER BY last_seen DESC, router, src")
        return [{"router": r["router"], "src": r["src"], "lines": r["lines"], "first_seen": r["first_seen"],
                 "last_seen": r["last_seen"], "reason": r["reason"]} for r in rows]

    def armed_routers(self) -> list[str]:
        """Routers with at least one step not undone: to disarm (reconcile) at start-up."""
        return [r[0] for r in self._read("SELECT DISTINCT router FROM armed_steps WHERE status != 'undone' ORDER BY router")]

    # -- QFP counters -----------------------------------------------------------------

    def qfp_counters(self, router: str) -> QfpReading | None:
        rows = self._read("SELECT name, value, read_at FROM qfp_counters WHERE router = ?", (router,))
        if not rows:
            return None
        return QfpReading(
            router=router,
            counters={r["name"]: r["value"] for r in rows},
            read_at=max(datetime.fromisoformat(r["read_at"]) for r in rows),
        )

    def save_qfp_counters(self, router: str, counters: Mapping[str, int], at: datetime) -> None:
        """Replace the router's last counter values (the baseline for the next delta)."""
        with self._write() as conn:
            conn.execute("DELETE FROM qfp_counters WHERE router = ?", (router,))
            conn.executemany(
                "INSERT INTO qfp_counters VALUES (?, ?, ?, ?)",
                [(router, name, int(value), _ts(at)) for name, value in counters.items()],
            )

    # -- discovered addresses -------------------------------------------------------------

    def save_addresses(self, router: str, addresses: Iterable[IPv4Address | IPv6Address], at: datetime) -> None:
        """Replace what is known of `router`'s own addresses (used to find a flow's other end)."""
        checked = sorted({str(ip_address(str(a))) for a in addresses})
        with self._write() as conn:
            conn.execute("DELETE FROM addresses WHERE router = ?", (router,))
            conn.executemany("INSERT INTO addresses VALUES (?, ?, ?)", [(router, a, _ts(at)) for a in checked])

    def addresses(self, router: str | None = None) -> list[RouterAddress]:
        sql, params = "SELECT * FROM addresses", []
        if router is not None:
            sql, params = sql + " WHERE router = ?", [router]
        return [
            RouterAddress(r["router"], ip_address(r["address"]), datetime.fromisoformat(r["seen_at"]))
            for r in self._read(sql + " ORDER BY router, address", params)
        ]

    def routers_with_address(self, address: IPv4Address | IPv6Address) -> list[str]:
        """Which routers own `address` (normally one; more means an overlap to report)."""
        rows = self._read(
            "SELECT router FROM addresses WHERE address = ? ORDER BY router", (str(ip_address(str(address))),)
        )
        return [r[0] for r in rows]


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise StateError(f"unknown {what} {value!r} (one of {', '.join(allowed)})")


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
        armed_at=_dt(r["armed_at"]),
    )
