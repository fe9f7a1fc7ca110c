"""Make a live `StateStore` refuse every write, as a full disk or a read-only file does,
while it goes on reading (what a running agent meets when its disk fills up).

`read-only`: SQLite itself refuses (`PRAGMA query_only` on every connection, those of
threads yet to come too): "attempt to write a readonly database". `full`: each write
transaction fails with SQLite's own disk-full error text, mapped by the store as it maps
SQLITE_FULL. Both end with `writable(store)`.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager

from collector.state import StateStore
from collector.state.problems import sqlite_problem
from collector.state.records import StateError

FAULTS = ("read-only", "full")


def unwritable(store: StateStore, fault: str) -> None:
    assert fault in FAULTS
    store._fault = fault  # type: ignore[attr-defined]
    if fault == "read-only":
        with store._connections_lock:
            for conn in store._connections:
                conn.execute("PRAGMA query_only=1")
        plain = type(store)._connection

        def connection(self=store):
            conn = plain(self)
            if getattr(self, "_fault", None) == "read-only":
                conn.execute("PRAGMA query_only=1")
            return conn

        store._connection = connection  # type: ignore[method-assign]
    else:
        @contextmanager
        def refused(**_write_options):
            raise StateError(sqlite_problem(store.path, sqlite3.OperationalError("database or disk is full")))
            yield  # pragma: no cover

        store._write = refused  # type: ignore[method-assign]


def writable(store: StateStore) -> None:
    fault = getattr(store, "_fault", None)
    store._fault = None  # type: ignore[attr-defined]
    if fault == "read-only":
        with store._connections_lock:
            for conn in store._connections:
                conn.execute("PRAGMA query_only=0")
        del store._connection
    elif fault == "full":
        del store._write
