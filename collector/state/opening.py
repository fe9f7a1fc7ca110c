"""Opening a store only if it can be trusted: the agent's start and the emergency tools."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

from collector.state.problems import RECOVER_HINT, os_problem
from collector.state.records import StateError
from collector.state.schema import reference_tables
from collector.state.store import StateStore

STATE_FILE = "state.db"
OPEN_LOCK_TIMEOUT = 2.0  # seconds open_state_store waits for another process's write lock


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
        raise StateError(os_problem(path, exc)) from None
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
def _check_schema(store: StateStore) -> None:
    have, want = store.tables(), reference_tables()
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

