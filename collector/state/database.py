"""The SQLite file under the store: connections per thread, write transactions, the
commit counter beside the file, and the schema brought up to date at open."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from collector.state.problems import os_problem, sqlite_problem, write_small_file
from collector.state.records import StateError
from collector.state.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

COMMITS_SUFFIX = ".commits"  # the commit counter beside the database (see the package docstring)


def commits_path(db_path: str | Path) -> Path:
    """The file beside the database that keeps a copy of its commit count.

    Raises:
        Nothing.
    """
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + COMMITS_SUFFIX)


def _wal_mode(conn: sqlite3.Connection, busy_seconds: float) -> None:
    """Switch `conn` to write-ahead logging, waiting up to `busy_seconds` for other processes.

    While another process is creating the file or switching it to WAL, SQLite answers
    this pragma "database is locked" at once, without its busy handler (seen when
    `collector incidents` or a monitoring script opens the store as the agent creates
    it: the agent then refused to start). So the wait is done here, in short steps."""
    deadline = time.monotonic() + busy_seconds
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class Database:
    """One SQLite file shared by a process's threads: one connection per thread, every
    write in a `BEGIN IMMEDIATE` transaction that also counts a commit in `meta`.

    The tables' own classes (logs, incidents, routers) build on `_read` and `_write`."""

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
        # This process's writers queue here, not in SQLite: a thread that finds the file
        # locked by another is put to sleep by SQLite's busy handler in steps of up to
        # 100 ms, not woken when the lock is free (a burst of armings waited 0.3 s on it).
        self._writer = threading.Lock()
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
        """The file beside the database that keeps a copy of its commit count.

    Raises:
        Nothing.
    """
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
            raise StateError(os_problem(self.path, exc)) from None

    def _connection(self, busy_seconds: float | None = None) -> sqlite3.Connection:
        """This thread's connection, opened on first use. `busy_seconds` bounds the wait
        for another process that holds the file while it is set up (default: the busy timeout)."""
        if self._closed:
            raise StateError("state store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
                )
                conn.row_factory = sqlite3.Row
                _wal_mode(conn, self._timeout if busy_seconds is None else busy_seconds)
                conn.execute("PRAGMA synchronous=FULL")  # an armed step must survive power loss
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                raise StateError(sqlite_problem(self.path, exc)) from None
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self, *, critical: bool = False, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. Every transaction counts one commit in `meta`; a
        `critical` one (armed steps, incidents) then copies the count beside the file,
        so a lost write-ahead log is noticed at the next open. `synced=False`: the commit
        is not synced to disk by itself (it survives the process, not a power loss, until
        the next synced commit or checkpoint): for records whose loss changes nothing."""
        conn = self._connection()
        commits = None
        with self._writer:  # see __init__
            if not synced:
                conn.execute("PRAGMA synchronous=NORMAL")
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
                raise StateError(sqlite_problem(self.path, exc)) from None
            finally:
                if not synced:
                    conn.execute("PRAGMA synchronous=FULL")
        if critical and commits is not None:
            self._save_commits(int(commits))

    _counting = False  # set once the schema has the `meta` table

    def _save_commits(self, commits: int) -> None:
        with self._commits_lock:
            if commits <= self._commits_written:
                return
            try:
                write_small_file(self.commits_path, f"{commits}\n")
            except OSError as exc:
                # The record itself is committed: raising would make a caller retry a write
                # that succeeded. The copy lags (weaker lost-WAL detection) until a later write.
                log.warning("%s", os_problem(self.commits_path, exc))
                return
            self._commits_written = commits

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        try:
            return self._connection().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StateError(sqlite_problem(self.path, exc)) from None

    def _migrate(self, open_timeout_seconds: float | None = None) -> None:
        conn = self._connection(open_timeout_seconds)
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
                    for statement in MIGRATIONS[target].split(";"):
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
