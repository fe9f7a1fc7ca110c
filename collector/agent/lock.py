"""One agent per state folder: an exclusive lock file held for the agent's whole run."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from collector.errors import UserInputError


class AgentBusy(UserInputError):
    """Another agent (daemon or cron run) holds the state folder's lock."""


class StateLock:
    """`with StateLock(folder):` holds `folder/agent.lock` (flock) or raises AgentBusy."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "agent.lock"
        self._fd: int | None = None

    def __enter__(self) -> "StateLock":
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AgentBusy(f"another collector watch holds {self.path} (pid {holder}); not starting") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
