"""SSH sessions to routers: the only code that talks to a device.

netmiko does what it is good at (connect, authenticate, `enable`, terminal set-up, jump
hosts through ssh_config). Commands then go through a lean reader on the same paramiko
channel: write the command, read until the device prompt stands at the very end of the
buffer. That keeps a command round trip near the floor (netmiko's `send_command` spends
tens of milliseconds per command in pattern searches and sleeps) and never mistakes a
prompt-looking line inside a long output for the end, because the prompt only counts
when it is the last thing received and nothing more is waiting on the channel.

Errors are distinct types so a caller can tell an authentication failure (never retried:
retry storms lock accounts on TACACS) from a timeout, a changed host key, all vty lines
busy, a dropped session or a command the router refused.
"""

from __future__ import annotations

import codecs
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

import paramiko
from netmiko.cisco.cisco_ios import CiscoIosSSH
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

from collector.errors import DeviceError
from collector.hostkeys import HostKeyError, KnownHosts, apply_host_key_policy, explain_bad_host_key
from collector.inventory import Host

log = logging.getLogger(__name__)

# What IOS prints when it refuses a command line; the output is kept, the command failed.
_REFUSED = re.compile(r"^% (Invalid input detected|Incomplete command|Ambiguous command|Unknown command)", re.M)
_PAGER = "--More--"
# What IOS sends to wipe the pager marker: spaces and backspaces ending on a backspace.
# The marker stands at the start of a line, so after the wipe the next line (or the
# prompt) starts there.
_ERASE = re.compile(r"[ \x08]+\x08")
_TAIL = 512  # bytes of the buffer end searched for the prompt


class SessionError(DeviceError):
    """A failure talking to one router. `kind` is a short stable tag for reports."""

    kind = "error"

    def __init__(self, host: str, message: str, output: str | None = None):
        super().__init__(f"{host}: {message}")
        self.host = host
        self.reason = message
        self.output = output  # what the router printed before the failure, if anything


class AuthenticationFailed(SessionError):
    kind = "auth-failed"


class ConnectFailed(SessionError):
    kind = "connect-failed"


class HostKeyRejected(SessionError):
    kind = "host-key"


class LinesBusy(SessionError):
    kind = "lines-busy"


class SessionDropped(SessionError):
    kind = "dropped"


class CommandTimeout(SessionError):
    kind = "timeout"


class CommandRefused(SessionError):
    kind = "invalid-input"


@dataclass(frozen=True, slots=True)
class CommandOutput:
    command: str
    text: str
    started: datetime
    ended: datetime

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()


class RouterSession(Protocol):
    """The device boundary: one open CLI session to one router, used by one thread at a time.

    `DeviceSession` is the real one (SSH); tests use a scripted fake (tests/fakes.py).
    Everything that talks to a router (agent, responder, pre-flight, facts, collect) is
    typed against this, never against SSH."""

    host: Host

    def run(self, command: str, *, read_timeout: float | None = None, check: bool = True) -> CommandOutput:
        """Run one exec command; returns its output without echo and prompt.

        Raises:
            CommandRefused: with `check`, the router refused the line (output on the exception).
            CommandTimeout, SessionDropped: the session is unusable afterwards."""

    def configure(self, lines: Sequence[str], *, read_timeout: float | None = None) -> list[CommandOutput]:
        """`configure terminal`, the lines, `end` (even on failure).

        Raises:
            CommandRefused: a line was refused; the lines after it were not sent."""


class SessionSource(Protocol):
    """Hands out sessions by host: `with source.session(host) as s: s.run(...)`."""

    def session(self, host: Host) -> AbstractContextManager[RouterSession]:
        """A session to `host`, opened (or reused) and held by the caller until exit.

        Raises:
            AuthenticationFailed, HostKeyRejected: never retried.
            ConnectFailed, LinesBusy: after the host's retries with backoff."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _HostKeyCheckedIos(CiscoIosSSH):
    """netmiko's IOS driver with the tool's own host-key policy installed on its client."""

    def __init__(self, *args, host_key_policy: str, known_hosts: KnownHosts, **kwargs):
        self._collector_policy = host_key_policy
        self._collector_known = known_hosts
        super().__init__(*args, **kwargs)

    def _build_ssh_client(self) -> paramiko.SSHClient:
        client = super()._build_ssh_client()
        apply_host_key_policy(client, self.host, self.port, self._collector_policy, self._collector_known)
        return client


class DeviceSession:
    """One interactive SSH session to one router. Not thread-safe: the pool hands it to
    one thread at a time."""

    def __init__(self, host: Host, known_hosts: KnownHosts):
        self.host = host
        self._known_hosts = known_hosts
        self._conn: CiscoIosSSH | None = None
        self._channel: paramiko.Channel | None = None
        self._prompt: re.Pattern[str] | None = None
        self.prompt_name = ""

    # -- connecting -------------------------------------------------------------------

    def open(self) -> None:
        """Connect, authenticate, enter enable mode. Retries transient failures with
        backoff; never retries a refused password or a changed host key."""
        opts = self.host.options
        attempts = max(1, opts.retries + 1)
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                self._connect_once()
                return
            except (AuthenticationFailed, HostKeyRejected):
                raise
            except SessionError as exc:
                if attempt == attempts:
                    raise
                log.info("%s: connect attempt %d failed (%s); retrying in %.1fs", self.host.name, attempt, exc.reason, delay)
                time.sleep(delay)
                delay = min(delay * 2, 8.0)

    def _connect_once(self) -> None:
        host, opts = self.host, self.host.options
        params = dict(
            host=host.hostname,
            port=host.port,
            username=host.username or "",
            password=host.password.reveal() if host.password else "",
            secret=host.secret.reveal() if host.secret else "",
            conn_timeout=opts.conn_timeout,
            auth_timeout=opts.auth_timeout,
            banner_timeout=opts.banner_timeout,
            fast_cli=True,
            allow_agent=False,
            use_keys=False,
            ssh_config_file=str(opts.ssh_config_file) if opts.ssh_config_file else None,
            device_type=host.platform,
        )
        try:
            conn = _HostKeyCheckedIos(host_key_policy=opts.host_key_policy, known_hosts=self._known_hosts, **params)
        except paramiko.BadHostKeyException as exc:
            raise HostKeyRejected(host.name, str(explain_bad_host_key(exc, host.hostname, host.port))) from None
        except HostKeyError as exc:  # changed, or unknown under the strict policy
            raise HostKeyRejected(host.name, str(exc)) from None
        except NetmikoAuthenticationException:
            raise AuthenticationFailed(host.name, "authentication failed (username or password refused)") from None
        except NetmikoTimeoutException as exc:
            raise self._classify_connect_error(str(exc)) from None
        except (EOFError, OSError, paramiko.SSHException, ValueError) as exc:
            raise self._classify_connect_error(str(exc) or type(exc).__name__) from None
        try:
            if host.secret and not conn.check_enable_mode():
                conn.enable()
            self.prompt_name = conn.base_prompt
        except (OSError, EOFError, ValueError, NetmikoTimeoutException) as exc:
            conn.disconnect()
            raise AuthenticationFailed(host.name, f"enable failed ({_first_line(str(exc))})") from None
        self._conn = conn
        self._channel = conn.remote_conn
        _quiet_idle_transport(conn.remote_conn)
        self._prompt = re.compile(
            r"(?:^|\n)" + re.escape(self.prompt_name) + r"(?:\([\w.\-/ ]+\))?[>#] ?$"
        )

    def _classify_connect_error(self, text: str) -> SessionError:
        low = text.lower()
        name = self.host.name
        if "host key" in low and ("not match" in low or "changed" in low):
            return HostKeyRejected(name, _first_line(text))
        if "busy" in low or "session limit" in low:
            return LinesBusy(name, "all vty lines busy (session limit reached)")
        if "connection refused" in low or "tcp connection to device failed" in low:
            # IOS answers an SSH login with a reset when every vty line is in use, exactly as
            # a closed port does: say both.
            return ConnectFailed(name, f"connection refused at {self.host.hostname}:{self.host.port} "
                                       "(port closed, or all vty lines busy)")
        if "timed out" in low or "timeout" in low:
            return ConnectFailed(name, f"timed out connecting to {self.host.hostname}:{self.host.port}")
        # A session closed right after login, before any prompt, is what a router with all
        # vty lines in use does to an extra SSH login.
        if "eof" in low or "socket is closed" in low or "not open" in low or "no existing session" in low:
            return LinesBusy(name, "session closed before a prompt (all vty lines busy?)")
        return ConnectFailed(name, _first_line(text))

    @property
    def is_open(self) -> bool:
        ch = self._channel
        return ch is not None and not ch.closed and ch.get_transport() is not None and ch.get_transport().is_active()

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:  # closing a dead session must never mask the real error
                log.debug("%s: error while closing", self.host.name, exc_info=True)

    # -- commands ---------------------------------------------------------------------

    def run(self, command: str, *, read_timeout: float | None = None, check: bool = True) -> CommandOutput:
        """Run one command and return its output (echo and prompt removed).

        `read_timeout` is absolute for the whole output; a long `show logging` needs a
        generous one. With `check`, a line the router refused raises CommandRefused
        (the output is on the exception)."""
        if "\n" in command or "\r" in command:
            raise ValueError("one command line at a time")
        if self._channel is None:
            raise SessionDropped(self.host.name, "session is not open")
        timeout = read_timeout if read_timeout is not None else self.host.options.read_timeout
        started = _utcnow()
        text = self._exchange(command, timeout)
        ended = _utcnow()
        if check and _REFUSED.search(text):
            raise CommandRefused(self.host.name, f"router refused {command!r}: {_refusal(text)}", output=text)
        return CommandOutput(command, text, started, ended)

    def configure(self, lines: Sequence[str], *, read_timeout: float | None = None) -> list[CommandOutput]:
        """Enter configuration mode, apply `lines`, leave with `end` even on failure."""
        outputs = [self.run("configure terminal", read_timeout=read_timeout)]
        try:
            for line in lines:
                outputs.append(self.run(line, read_timeout=read_timeout))
        finally:
            if self._channel is not None:
                outputs.append(self.run("end", read_timeout=read_timeout, check=False))
        return outputs

    def _exchange(self, command: str, timeout: float) -> str:
        channel = self._channel
        assert channel is not None and self._prompt is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        chunks: list[str] = []
        tail = ""
        deadline = time.monotonic() + timeout
        try:
            channel.sendall((command + "\n").encode())
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CommandTimeout(self.host.name, f"no prompt after {timeout:.0f}s for {command!r}", output="".join(chunks))
                channel.settimeout(remaining)
                try:
                    data = channel.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    self.close()
                    raise SessionDropped(self.host.name, f"session closed during {command!r}", output="".join(chunks))
                piece = decoder.decode(data)
                tail = (tail + piece)[-_TAIL:]
                if _PAGER in tail:  # a pager despite `terminal length 0`: page on, drop the marker
                    channel.sendall(b" ")
                    piece = piece.replace(_PAGER, "")
                    tail = tail.replace(_PAGER, "")
                chunks.append(piece)
                if self._prompt.search(_ERASE.sub("", tail.replace("\r", ""))) and not channel.recv_ready():
                    break
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise SessionDropped(self.host.name, f"session lost during {command!r}: {exc or type(exc).__name__}", output="".join(chunks)) from None
        return self._clean(command, "".join(chunks))

    def _clean(self, command: str, raw: str) -> str:
        text = raw.replace("\r\n", "\n").replace("\r", "")
        text = _ERASE.sub("", text.replace(_PAGER, ""))  # a marker split over two reads is whole only here
        first, sep, rest = text.partition("\n")
        if command.strip() and first.strip().endswith(command.strip()[-40:]):
            text = rest  # the router's echo of the command line
        assert self._prompt is not None
        match = self._prompt.search(text)
        if match:
            text = text[: match.start()] + ("\n" if match.group(0).startswith("\n") else "")
        return text


# paramiko's transport thread wakes every 0.1 s on an idle connection to check for
# closure and keepalives; with a session kept open to each of 2,000 routers that alone is
# half a core. Data still wakes it at once; only idle checks become once a second.
IDLE_WAKEUP_SECONDS = 1.0


def _quiet_idle_transport(channel: paramiko.Channel) -> None:
    transport = channel.get_transport()
    sock = getattr(transport, "sock", None)
    if sock is not None and hasattr(sock, "settimeout"):
        sock.settimeout(IDLE_WAKEUP_SECONDS)


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()[:200]
    return "unknown error"


def _refusal(text: str) -> str:
    match = _REFUSED.search(text)
    return match.group(0).lstrip("% ") if match else "refused"


class SessionPool:
    """Sessions kept open per router and handed out one thread at a time.

    One session per router from the tool, ever: a per-host lock serialises users, which
    also keeps the tool well inside a router's vty budget. `max_sessions` caps how many
    routers are talked to at once across the whole process."""

    def __init__(self, known_hosts: KnownHosts, *, max_sessions: int = 20, keep_open: bool = True):
        self._known_hosts = known_hosts
        self._keep_open = keep_open
        self._slots = threading.BoundedSemaphore(max_sessions)
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._sessions: dict[str, DeviceSession] = {}

    def _host_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._host_locks.setdefault(name, threading.Lock())

    @contextmanager
    def session(self, host: Host) -> Iterator[DeviceSession]:
        with self._host_lock(host.name), self._slots:
            session = self._sessions.pop(host.name, None)
            if session is None or not session.is_open:
                if session is not None:
                    session.close()
                session = DeviceSession(host, self._known_hosts)
                session.open()
            healthy = False
            try:
                yield session
                healthy = True
            except CommandRefused:
                healthy = True  # the router answered with its prompt: the channel is clean
                raise
            finally:
                # After any other error the channel may hold half an output: start clean.
                if healthy and self._keep_open and session.is_open:
                    self._sessions[host.name] = session
                else:
                    session.close()

    def discard(self, name: str) -> None:
        with self._host_lock(name):
            session = self._sessions.pop(name, None)
        if session is not None:
            session.close()

    def close_all(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()

    def __enter__(self) -> "SessionPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_all()
