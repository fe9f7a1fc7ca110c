"""One-line explanations of what went wrong with the state files, and what to do."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from pathlib import Path

# What to do when the store cannot be used: the routers themselves know what the tool armed.
RECOVER_HINT = ("put routers back without it with `collector disarm --all --from-routers`, "
                "then move the file aside to start afresh")


def write_small_file(path: Path, text: str) -> None:
    """Replace `path` atomically and durably (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # writers never share one
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def os_problem(path: Path, exc: OSError) -> str:
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


def sqlite_problem(path: Path, exc: sqlite3.Error) -> str:
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
