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

A store that cannot be trusted must stop the agent, not make it forget armed routers:
`open_state_store()` refuses a file that is not a regular file, is corrupt (`PRAGMA
quick_check`), has a foreign schema, is locked by another process, or has lost commits
(its write-ahead log deleted). Lost commits are found two ways: the `-shm` index still
names WAL frames that are gone, or the commit counter kept beside the database
(`state.db.commits`, rewritten after every write that records an armed step or an
incident) is ahead of the counter inside it. Every SQLite failure, a full disk included,
becomes a one-line `StateStoreError` naming the file and what to do.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import stat
import struct
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

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
STATE_FILE = "state.db"
COMMITS_SUFFIX = ".commits"  # the commit counter beside the database (see the module docstring)
OPEN_LOCK_TIMEOUT = 2.0  # seconds open_state_store waits for another process's write lock
# What to do when the store cannot be used: the routers themselves know what the tool armed.
RECOVER_HINT = ("put routers back without it with `collector disarm --all --from-routers`, "
                "then move the file aside to start afresh")

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
        """The stored form of a parsed invalid-SPI line.

        Raises:
            Nothing: the event's fields are copied as they are.
        """
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

# Version 3: a commit counter, compared at open with the copy kept beside the file.
_SCHEMA_3 = """
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta VALUES ('commits', 0);
"""

# Each schema change is one entry; `_migrate` applies them in order.
_MIGRATIONS: dict[int, str] = {1: _SCHEMA, 2: _SCHEMA_2, 3: _SCHEMA_3}


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

    def __init__(self, path: str | Path, *, timeout_seconds: float = 30.0, create: bool = True,
                 open_timeout_seconds: float | None = None):
        """Open (and with `create`, create) the store and bring its schema up to date.

        `open_timeout_seconds` bounds the wait for another process's lock while opening
        (the first transaction); `timeout_seconds` is the busy timeout afterwards.

        Raises:
            StateStoreError: the file cannot be opened, read or migrated (one line).
        """
        self.path = Path(path)
        self._timeout = timeout_seconds
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._commits_lock = threading.Lock()
        self._commits_written = -1
        self._closed = False
        if not create and not self.path.is_file():
            raise StateError(f"{self.path}: no state store here")
        self._prepare_files(create)
        try:
            self._migrate(open_timeout_seconds)
        except BaseException:
            self.close()
            raise

    @property
    def commits_path(self) -> Path:
        return commits_path(self.path)

    # -- plumbing ------------------------------------------------------------

    def _prepare_files(self, create: bool) -> None:
        folder = self.path.parent
        try:
            if not folder.exists() and create:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
            flags = os.O_RDWR | (os.O_CREAT if create else 0) | os.O_NONBLOCK  # a FIFO must not block
            fd = os.open(self.path, flags, 0o600)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise StateError(f"{self.path}: not a regular file; give --state a folder of your own")
            finally:
                os.close(fd)
            os.chmod(self.path, 0o600)  # SQLite gives -wal and -shm the file's mode
        except OSError as exc:
            raise StateError(_os_problem(self.path, exc)) from None

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StateError("state store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
                )
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # an armed step must survive power loss
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                raise StateError(_sqlite_problem(self.path, exc)) from None
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self, *, critical: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. Every transaction counts one commit in `meta`; a
        `critical` one (armed steps, incidents) then copies the count beside the file,
        so a lost write-ahead log is noticed at the next open."""
        conn = self._connection()
        commits = None
        try:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
            try:
                yield conn
                if self._counting:
                    conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'commits'")
                    commits = conn.execute("SELECT value FROM meta WHERE name = 'commits'").fetchone()[0]
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise StateError(_sqlite_problem(self.path, exc)) from None
        if critical and commits is not None:
            self._save_commits(int(commits))

    _counting = False  # set once the schema has the `meta` table

    def _save_commits(self, commits: int) -> None:
        with self._commits_lock:
            if commits <= self._commits_written:
                return
            try:
                _write_small_file(self.commits_path, f"{commits}\n")
            except OSError as exc:
                # The record itself is committed: raising would make a caller retry a write
                # that succeeded. The copy lags (weaker lost-WAL detection) until a later write.
                log.warning("%s", _os_problem(self.commits_path, exc))
                return
            self._commits_written = commits

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        try:
            return self._connection().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StateError(_sqlite_problem(self.path, exc)) from None

    def _migrate(self, open_timeout_seconds: float | None = None) -> None:
        conn = self._connection()
        if open_timeout_seconds is not None:
            conn.execute(f"PRAGMA busy_timeout={int(open_timeout_seconds * 1000)}")
        try:
            with self._write() as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StateError(
                        f"{self.path}: schema version {version} is newer than this collector ({SCHEMA_VERSION});"
                        " use the newer collector, or a --state folder of its own"
                    )
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[target].split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={target}")
        finally:
            if open_timeout_seconds is not None and not self._closed:
                conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        self._counting = True

    def commits(self) -> int:
        """How many write transactions this database has committed (schema 3 on).

        Raises:
            StateStoreError: the file cannot be read (one line naming it).
        """
        return int(self._read("SELECT value FROM meta WHERE name = 'commits'")[0][0])

    def quick_check(self) -> list[str]:
        """`PRAGMA quick_check`: ["ok"] for a sound file, else the problems found.

        Raises:
            StateStoreError: the file cannot be read at all.
        """
        return [str(r[0]) for r in self._read("PRAGMA quick_check")]

    def tables(self) -> dict[str, tuple[str, ...]]:
        """Table name -> column names, as the file has them.

        Raises:
            StateStoreError: the file cannot be read.
        """
        names = [r[0] for r in self._read("SELECT name FROM sqlite_master WHERE type = 'table'"
                                          " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {n: tuple(r[1] for r in self._read(f'PRAGMA table_info("{n}")')) for n in names}

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    @property
    def journal_mode(self) -> str:
        return str(self._read("PRAGMA journal_mode")[0][0])

    def close(self) -> None:
        """Close every thread's connection. Call when no other thread uses the store.

        Raises:
            Nothing.
        """
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
        )

    def save_log_cursor(self, cursor: LogCursorRecord) -> None:
        """Replace `cursor.router`'s log cursor.

        Raises:
            StateStoreError: the file cannot be written, or `read_at` has no time zone.
        """
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
        (armed or capturing): the evidence of a finished incident is in its bundle.

        Raises:
            StateStoreError: the file cannot be written, or `before` has no time zone.
        """
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM events WHERE received_at < ? AND (incident_id IS NULL OR incident_id NOT IN"
                " (SELECT incident_id FROM incidents WHERE state IN ('armed', 'capturing')))",
                (_ts(before),))
            return cur.rowcount

    def link_events(self, incident_id: str, key: str, since: datetime) -> int:
        """Attach the still unlinked events of `key` received since `since` to an incident.

        Raises:
            StateStoreError: the file cannot be written, or `since` has no time zone.
        """
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE events SET incident_id = ? WHERE key = ? AND received_at >= ? AND incident_id IS NULL",
                (incident_id, key, _ts(since)),
            )
            return cur.rowcount

    # -- tracker -----------------------------------------------------------------

    def save_tracker(self, tracker: str, snapshot: TrackerSnapshot) -> None:
        """Replace the stored state of tracker `tracker` (one per playbook) atomically.

        Raises:
            StateStoreError: the file cannot be written, or a time has no time zone;
                then the previous state stays.
        """
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
        """The last saved state of `tracker`, None if it was never saved.

        Raises:
            StateStoreError: the file cannot be read.
        """
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
        """Record a new incident (before anything is armed for it) and return it.

        Raises:
            StateStoreError: the incident already exists, `state` is not an incident
                state, `at` has no time zone, or the file cannot be written.
        """
        _check(state, INCIDENT_STATES, "incident state")
        when = _ts(at or _now())
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
                    _ts(_now()),
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
        _check(status, STEP_STATUSES, "step status")
        with self._write(critical=True) as conn:
            cur = conn.execute(
                "UPDATE armed_steps SET status = ?, error = ?, updated_at = ?"
                " WHERE incident_id = ? AND router = ? AND step_index = ?",
                (status, error, _ts(_now()), incident_id, router, index),
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
                (error, _ts(_now()), incident_id, router, index),
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
                    (to_incident, index + shift, _ts(_now()), from_incident, router, index))
            return len(moving)

    # -- unknown sources -----------------------------------------------------------

    def note_unknown_source(self, router: str, src: str, reason: str, at: datetime) -> None:
        """Count a line whose srcaddr is no inventory router and no configured peer.

        Raises:
            ValueError: `src` is not an IP address.
            StateStoreError: the file cannot be written, or `at` has no time zone.
        """
        src = str(ip_address(src))
        with self._write() as conn:
            conn.execute(
                "INSERT INTO unknown_sources VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (router, src) DO UPDATE"
                " SET lines = lines + 1, last_seen = excluded.last_seen, reason = excluded.reason",
                (router, src, _ts(at), _ts(at), reason))

    def unknown_sources(self) -> list[dict]:
        """Sources of invalid-SPI lines that are no inventory router and no configured peer, latest first.

        Raises:
            StateStoreError: the file cannot be read.
        """
        rows = self._read("SELECT * FROM unknown_sources ORDER BY last_seen DESC, router, src")
        return [{"router": r["router"], "src": r["src"], "lines": r["lines"], "first_seen": r["first_seen"],
                 "last_seen": r["last_seen"], "reason": r["reason"]} for r in rows]

    def armed_routers(self) -> list[str]:
        """Routers with at least one step not undone: to disarm (reconcile) at start-up.

        Raises:
            StateStoreError: the file cannot be read.
        """
        return [r[0] for r in self._read("SELECT DISTINCT router FROM armed_steps WHERE status != 'undone' ORDER BY router")]

    # -- QFP counters -----------------------------------------------------------------

    def qfp_counters(self, router: str) -> QfpReading | None:
        """The router's last QFP drop counter values, None before the first reading.

        Raises:
            StateStoreError: the file cannot be read.
        """
        rows = self._read("SELECT name, value, read_at FROM qfp_counters WHERE router = ?", (router,))
        if not rows:
            return None
        return QfpReading(
            router=router,
            counters={r["name"]: r["value"] for r in rows},
            read_at=max(datetime.fromisoformat(r["read_at"]) for r in rows),
        )

    def save_qfp_counters(self, router: str, counters: Mapping[str, int], at: datetime) -> None:
        """Replace the router's last counter values (the baseline for the next delta).

        Raises:
            StateStoreError: the file cannot be written, or `at` has no time zone.
        """
        with self._write() as conn:
            conn.execute("DELETE FROM qfp_counters WHERE router = ?", (router,))
            conn.executemany(
                "INSERT INTO qfp_counters VALUES (?, ?, ?, ?)",
                [(router, name, int(value), _ts(at)) for name, value in counters.items()],
            )

    # -- discovered addresses -------------------------------------------------------------

    def save_addresses(self, router: str, addresses: Iterable[IPv4Address | IPv6Address], at: datetime) -> None:
        """Replace what is known of `router`'s own addresses (used to find a flow's other end).

        Raises:
            ValueError: one of `addresses` is not an IP address (nothing replaced).
            StateStoreError: the file cannot be written, or `at` has no time zone.
        """
        checked = sorted({str(ip_address(str(a))) for a in addresses})
        with self._write() as conn:
            conn.execute("DELETE FROM addresses WHERE router = ?", (router,))
            conn.executemany("INSERT INTO addresses VALUES (?, ?, ?)", [(router, a, _ts(at)) for a in checked])

    def addresses(self, router: str | None = None) -> list[RouterAddress]:
        """What is known of the routers' own addresses (one router's, or all).

        Raises:
            StateStoreError: the file cannot be read.
        """
        sql, params = "SELECT * FROM addresses", []
        if router is not None:
            sql, params = sql + " WHERE router = ?", [router]
        return [
            RouterAddress(r["router"], ip_address(r["address"]), datetime.fromisoformat(r["seen_at"]))
            for r in self._read(sql + " ORDER BY router, address", params)
        ]

    def routers_with_address(self, address: IPv4Address | IPv6Address) -> list[str]:
        """Which routers own `address` (normally one; more means an overlap to report).

        Raises:
            ValueError: `address` is not an IP address.
            StateStoreError: the file cannot be read.
        """
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


# ---------------------------------------------------------------------- opening safely


def default_state_dir() -> Path:
    """Where the agent keeps its memory when `--state` is not given: `$COLLECTOR_STATE`,
    else `$XDG_STATE_HOME/collector`, else `~/.local/state/collector`. Never the current
    folder: a second agent started elsewhere must meet the first one's lock.

    Raises:
        RuntimeError: neither $COLLECTOR_STATE nor $XDG_STATE_HOME is set and no home folder
            can be found (the folder is only named, not created).
    """
    from collector.hostkeys import default_state_dir as shared

    return shared()


def commits_path(db_path: str | Path) -> Path:
    """The file beside the database that keeps a copy of its commit count.

    Raises:
        Nothing.
    """
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + COMMITS_SUFFIX)


def open_state_store(path: str | Path, *, create: bool = True,
                     lock_timeout_seconds: float = OPEN_LOCK_TIMEOUT) -> StateStore:
    """Open the state store only if it can be trusted; the agent calls this at start.

    `path` is the database file (`<state dir>/state.db`). With `create=False` a missing
    file is an error and nothing is created (the emergency tools use this).

    Raises:
        StateStoreError: one line naming the file and what to do, when the path is not a
            regular file or cannot be read, the file is corrupt or truncated, its schema is
            not this tool's, another process holds its lock longer than
            `lock_timeout_seconds`, or commits recorded beside it are missing from it.
    """
    path = Path(path)
    _check_path(path, create)
    _check_wal_not_lost(path)
    store = StateStore(path, create=create, open_timeout_seconds=lock_timeout_seconds)
    try:
        problems = store.quick_check()
        if problems != ["ok"]:
            raise StateError(f"{path}: the database is damaged ({problems[0]}); {RECOVER_HINT}")
        _check_schema(store)
        _check_commits(store)
    except BaseException:
        store.close()
        raise
    return store


def _check_path(path: Path, create: bool) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if not create:
            raise StateError(f"{path}: no state store here") from None
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise StateError(f"{path}: {parent} is not a folder; give --state a folder") from None
        return
    except OSError as exc:
        raise StateError(_os_problem(path, exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise StateError(f"{path}: is a folder, not a state database; give --state the folder that holds {STATE_FILE}")
    if not stat.S_ISREG(info.st_mode):
        raise StateError(f"{path}: not a regular file (a device, FIFO or socket); give --state a folder of your own")
    if not os.access(path, os.R_OK | os.W_OK):
        raise StateError(f"{path}: not readable and writable by this user (uid {os.getuid()}); "
                         "run as the user that owns it, or fix its mode")


_SHM_HEADER = struct.Struct("=IIIBBHI")  # iVersion, unused, iChange, isInit, bigEndCksum, szPage, mxFrame
_WAL_HEADER_BYTES, _WAL_FRAME_HEADER_BYTES = 32, 24


def _check_wal_not_lost(path: Path) -> None:
    """A `-shm` index that names WAL frames while the `-wal` file is gone (or shorter)
    means committed transactions were deleted with it: SQLite would silently open the
    older database. Checked before any connection, which would rebuild the index."""
    shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
    try:
        with open(shm, "rb") as f:
            header = f.read(_SHM_HEADER.size)
    except OSError:
        return  # no index: nothing to compare (the commit counter still is)
    if len(header) < _SHM_HEADER.size:
        return
    version, _unused, _change, is_init, _big_end, page_size, frames = _SHM_HEADER.unpack(header)
    if version != 3007000 or not is_init or frames == 0:
        return
    page_size = 65536 if page_size == 1 else page_size
    needed = _WAL_HEADER_BYTES + frames * (_WAL_FRAME_HEADER_BYTES + page_size)
    try:
        have = wal.stat().st_size
    except FileNotFoundError:
        have = -1
    if have < needed:
        lost = "is gone" if have < 0 else f"is cut short ({have} of {needed} bytes)"
        raise StateError(f"{path}: its write-ahead log {wal.name} {lost}, so recent commits (armed routers) "
                         f"are lost; {RECOVER_HINT}")


_REFERENCE_TABLES: dict[str, tuple[str, ...]] | None = None


def _reference_tables() -> dict[str, tuple[str, ...]]:
    global _REFERENCE_TABLES
    if _REFERENCE_TABLES is None:
        conn = sqlite3.connect(":memory:")
        for target in range(1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                            " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        _REFERENCE_TABLES = {n: tuple(r[1] for r in conn.execute(f'PRAGMA table_info("{n}")')) for n in names}
        conn.close()
    return _REFERENCE_TABLES


def _check_schema(store: StateStore) -> None:
    have, want = store.tables(), _reference_tables()
    for table, columns in want.items():
        if table not in have:
            raise StateError(f"{store.path}: not a collector state database (no table {table}); "
                             "give --state a folder of its own")
        missing = [c for c in columns if c not in have[table]]
        if missing:
            raise StateError(f"{store.path}: table {table} lacks column {missing[0]}: not this collector's schema; "
                             "give --state a folder of its own")


def _check_commits(store: StateStore) -> None:
    try:
        text = store.commits_path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return  # first use, or the file was copied alone: nothing to compare
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"{store.commits_path}: unreadable ({exc}); remove it if {store.path} is sound") from None
    if not text.isdigit():
        raise StateError(f"{store.commits_path}: not a commit count ({text[:20]!r}); remove it if {store.path} is sound")
    recorded, inside = int(text), store.commits()
    if inside < recorded:
        raise StateError(
            f"{store.path}: {recorded - inside} recorded commits are missing (its write-ahead log "
            f"{store.path.name}-wal was lost, or an older copy was put back), so armed routers may be "
            f"forgotten; {RECOVER_HINT} with {store.commits_path.name}")
    store._commits_written = recorded


def _write_small_file(path: Path, text: str) -> None:
    """Replace `path` atomically and durably (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # writers never share one
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _os_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"{path}: cannot write, the disk is full; free space there (nothing armed is forgotten while the agent runs)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{path}: permission denied for uid {os.getuid()}; run as the user that owns it, or fix its mode"
    if exc.errno == errno.EROFS:
        return f"{path}: the file system is read-only; give --state a writable folder"
    if exc.errno == errno.ENOTDIR:
        return f"{path}: a part of the path is not a folder; give --state a folder"
    if exc.errno == errno.ENXIO:
        return f"{path}: not a regular file (a FIFO without a writer); give --state a folder of your own"
    return f"{path}: {exc.strerror or exc}"


def _sqlite_problem(path: Path, exc: sqlite3.Error) -> str:
    """One line for an SQLite failure: what happened to which file and what to do."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return f"{path}: cannot write, the disk is full; free space there (nothing armed is forgotten while the agent runs)"
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
        holders = _lock_holders(path)
        who = f" (pid {', '.join(map(str, holders))})" if holders else ""
        return (f"{path}: locked by another process{who}; stop it or wait, or run "
                "`collector disarm --all --from-routers` to put routers back without the store")
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return f"{path}: not a usable state database ({text}); {RECOVER_HINT}"
    if code == sqlite3.SQLITE_READONLY or "readonly" in text:
        return f"{path}: cannot be written ({text}); run as the user that owns it, or give --state a writable folder"
    if code == sqlite3.SQLITE_CANTOPEN or "unable to open" in text:
        return f"{path}: cannot be opened ({text}); check the folder exists and is writable"
    if code == sqlite3.SQLITE_IOERR or "disk I/O" in text:
        return f"{path}: input/output error ({text}); check the disk, then {RECOVER_HINT}"
    return f"{path}: state database error ({text})"


def _lock_holders(path: Path) -> list[int]:
    """Process ids holding POSIX locks on the database or its -shm file (Linux /proc/locks)."""
    ids = set()
    for candidate in (path, Path(f"{path}-shm")):
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        ids.add(f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}")
    holders: set[int] = set()
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if "->" in fields:
            continue  # a waiter, not a holder
        if len(fields) >= 6 and fields[5] in ids and fields[4].isdigit() and int(fields[4]) != os.getpid():
            holders.add(int(fields[4]))
    return sorted(holders)
