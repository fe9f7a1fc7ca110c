"""The pool of sessions: at most one per router at a time, kept open between uses, and a
bounded budget of refused logins per router (TACACS locks accounts after a few)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from collector.hostkeys import KnownHosts
from collector.inventory import Host
from collector.sessions.device import DeviceSession
from collector.sessions.errors import AuthenticationFailed, CommandRefused, CommandTimeout, ConnectFailed, LinesBusy

log = logging.getLogger(__name__)

# Logins refused in a row before the pool stops trying a router, and the pause after the
# first refusal (doubled after each): TACACS servers lock an account after a few failures.
MAX_AUTH_FAILURES = 3
AUTH_BACKOFF_SECONDS = 60.0

class SessionPool:
    """Sessions kept open per router and handed out one thread at a time.

    One session per router from the tool, ever: a per-host lock serialises users, which
    also keeps the tool well inside a router's vty budget. `max_sessions` caps how many
    routers are talked to at once across the whole process."""

    def __init__(self, known_hosts: KnownHosts, *, max_sessions: int = 20,
                 keep_open: bool | Callable[[str], bool] = True, max_auth_failures: int = MAX_AUTH_FAILURES,
                 auth_backoff: float = AUTH_BACKOFF_SECONDS):
        self._known_hosts = known_hosts
        self._keep_open = keep_open  # for every router, or for those a rule names (router name -> keep?)
        self._slots = threading.BoundedSemaphore(max_sessions)
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._sessions: dict[str, DeviceSession] = {}
        self._reached: set[str] = set()  # routers this pool has logged into at least once
        self._max_auth_failures = max(1, max_auth_failures)
        self._auth_backoff = auth_backoff
        # name -> (logins refused in a row, next try allowed at, the last refusal)
        self._auth_failures: dict[str, tuple[int, float, str]] = {}

    def _host_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._host_locks.setdefault(name, threading.Lock())

    @contextmanager
    def session(self, host: Host) -> Iterator[DeviceSession]:
        """A session to `host`, opened (or reused) and held by the caller until exit.

        Raises:
            AuthenticationFailed: refused now, or not tried because it was refused
                recently or `max_auth_failures` times in a row (the message says how many).
            HostKeyRejected, KnownHostsUnusable: never retried.
            ConnectFailed, LinesBusy: after the host's retries with backoff."""
        with self._host_lock(host.name), self._slots:
            session = self._sessions.pop(host.name, None)
            if session is None or not session.is_open:
                if session is not None:
                    session.close()
                self._check_auth_budget(host.name)
                session = DeviceSession(host, self._known_hosts)
                try:
                    session.open()
                except AuthenticationFailed as exc:
                    raise self._auth_refused(host.name, exc) from None
                except ConnectFailed as exc:
                    if host.name in self._reached and exc.reason.startswith("connection refused"):
                        # IOS refuses the TCP connection when every vty line is in use; a
                        # router that took a session from us before most likely says that.
                        raise LinesBusy(host.name, f"{exc.reason}; it accepted SSH before, so most likely all "
                                                   "vty lines are busy") from None
                    raise
                self._auth_failures.pop(host.name, None)
                self._reached.add(host.name)
            healthy = False
            try:
                yield session
                healthy = True
            except (CommandRefused, CommandTimeout):
                # Refused: the prompt came back, the channel is clean. Timed out: the
                # session settles (reads its prompt back) before its next command.
                healthy = True
                raise
            finally:
                # After any other error the channel may hold half an output: start clean.
                if healthy and self._keeps(host.name) and session.is_open:
                    self._sessions[host.name] = session
                else:
                    session.close()

    def keep_open_for(self, rule: Callable[[str], bool]) -> None:
        """From now on keep a router's session open only while `rule(name)` says so (the
        agent's routers in an open incident); `close_unneeded` closes the others."""
        self._keep_open = rule

    def _keeps(self, name: str) -> bool:
        rule = self._keep_open
        if not callable(rule):
            return bool(rule)
        try:
            return bool(rule(name))
        except Exception:  # a rule that fails keeps nothing open
            log.exception("keep-open rule failed for %s", name)
            return False

    def close_unneeded(self) -> int:
        """Close the kept sessions the keep-open rule no longer wants (their incident ended);
        one in use is left for its release to decide. Returns how many were closed."""
        with self._lock:
            names = [name for name in self._sessions if not self._keeps(name)]
        closed = 0
        for name in names:
            lock = self._host_lock(name)
            if not lock.acquire(blocking=False):
                continue
            try:
                session = self._sessions.pop(name, None)
            finally:
                lock.release()
            if session is not None:
                session.close()
                closed += 1
        return closed

    def _check_auth_budget(self, name: str) -> None:
        failures, next_try, reason = self._auth_failures.get(name, (0, 0.0, ""))
        if failures >= self._max_auth_failures:
            raise AuthenticationFailed(name, f"{reason}, {failures} times in a row; not tried again (accounts lock "
                                             "after a few failures): fix the credentials and restart")
        wait = next_try - time.monotonic()
        if failures and wait > 0:
            raise AuthenticationFailed(name, f"{reason}, {failures} of {self._max_auth_failures} tries used; "
                                             f"not tried again for {wait:.0f}s")

    def _auth_refused(self, name: str, exc: AuthenticationFailed) -> AuthenticationFailed:
        failures = self._auth_failures.get(name, (0, 0.0, ""))[0] + 1
        pause = self._auth_backoff * 2 ** (failures - 1)
        self._auth_failures[name] = (failures, time.monotonic() + pause, exc.reason)
        if failures >= self._max_auth_failures:
            then = "no more tries (accounts lock after a few failures): fix the credentials and restart"
        else:
            then = f"next try not before {pause:.0f}s"
        return AuthenticationFailed(name, f"{exc.reason}; try {failures} of {self._max_auth_failures}, {then}",
                                    output=exc.output)

    def discard(self, name: str) -> None:
        """Close and forget the router's kept session, if there is one.

        Raises:
            Nothing: as `DeviceSession.close`.
        """
        with self._host_lock(name):
            session = self._sessions.pop(name, None)
        if session is not None:
            session.close()

    def close_all(self) -> None:
        """Close every kept session.

        Raises:
            Nothing: as `DeviceSession.close`.
        """
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()

    def __enter__(self) -> "SessionPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_all()
