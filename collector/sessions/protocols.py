"""The seam between the agent and a router: what a session does, and where sessions come
from. The agent, the responder, preflight and facts are typed against these; tests hand
them a scripted fake (tests/fakes.py)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from collector.command_results import CommandResult
from collector.inventory import Host


class RouterSession(Protocol):
    """The device boundary: one open CLI session to one router, used by one thread at a time.

    `DeviceSession` is the real one (SSH); tests use a scripted fake (tests/fakes.py).
    Everything that talks to a router (agent, responder, pre-flight, facts, collect) is
    typed against this, never against SSH."""

    host: Host

    def run(self, command: str, *, read_timeout: float | None = None, check: bool = True) -> CommandResult:
        """Run one exec command; returns its output without echo and prompt.

        Raises:
            CommandUnauthorized: with `check`, AAA command authorization refused the line.
            CommandRefused: with `check`, IOS refused the line (output on the exception).
            CommandTimeout: no prompt in time; the session reads its prompt back before
                the next command (and is closed if it does not come).
            SessionDropped: the session is gone."""

    def run_many(self, commands: Sequence[str], *, read_timeout: float | None = None) -> list[CommandResult]:
        """Read-only commands typed ahead in one write (one round trip for them all), each
        result as `run(command, check=False)` gives it: the caller checks refusals.

        Raises:
            SessionDropped: the session is gone, or the answers did not all come in time
                (the session is then closed)."""

    def configure(self, lines: Sequence[str], *, read_timeout: float | None = None) -> list[CommandResult]:
        """`configure terminal`, the lines, `end` (even on failure).

        Raises:
            CommandUnauthorized, CommandRefused: a line was refused; the lines after it were
                not sent, `end` was (the exception's `command` names the line)."""


class SessionSource(Protocol):
    """Hands out sessions by host: `with source.session(host) as s: s.run(...)`."""

    def session(self, host: Host) -> AbstractContextManager[RouterSession]:
        """A session to `host`, opened (or reused) and held by the caller until exit.

        Raises:
            AuthenticationFailed: refused (a few tries per router, with a pause between).
            HostKeyRejected, KnownHostsUnusable: never retried.
            ConnectFailed, LinesBusy: after the host's retries with backoff."""
