"""SSH sessions to routers: the only code that talks to a device.

netmiko does what it is good at (device-type knowledge, the SSH client with ssh_config and
jump hosts, the host-key policy hook, its mapping of connect errors). Everything after the
shell opens goes through a lean reader on the same paramiko channel: the first prompt,
`terminal width 511`, `terminal length 0`, `enable`, then every command: write the line,
read until the device prompt stands at the very end of the buffer and nothing more is
waiting. No fixed sleeps anywhere, so opening a session costs about the SSH handshake, and
a prompt-looking line inside a long output never ends it.

The prompt is learned from what the router prints after login, never from netmiko's base
prompt (cut to 16 characters for IOS): the whole hostname (up to 63 characters) in exec
mode, its first 20 characters before `(config...)#`, relearned after a `hostname` line.

Errors are distinct types so a caller can tell an authentication failure (never retried
at once, bounded per router by the pool: retry storms lock accounts on TACACS) from a
timeout, a changed host key, an unusable known_hosts file, all vty lines busy, a dropped
session, a command IOS refused, or one AAA command authorization refused.
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
from datetime import datetime, timezone
from typing import Protocol

import paramiko
from netmiko.cisco.cisco_ios import CiscoIosSSH
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

from collector.command_results import CommandResult
from collector.errors import DeviceError
from collector.hostkeys import (HostKeyError, KnownHosts, KnownHostsFileError, apply_host_key_policy,
                                explain_bad_host_key)
from collector.inventory import Host

log = logging.getLogger(__name__)

# What IOS prints when it refuses a command line, in exec and configuration mode; AAA
# command authorization prints its refusal without a `%`.
_REFUSED = re.compile(
    r"^(?:% ?(Invalid input detected|Incomplete command|Ambiguous command|Unknown command)"
    r"|(Command authorization failed))", re.M)
_PAGER = "--More--"
# What IOS sends to wipe the pager marker: spaces and backspaces ending on a backspace.
# The marker stands at the start of a line, so after the wipe the next line (or the
# prompt) starts there.
_ERASE = re.compile(r"[ \x08]+\x08")
_TAIL = 512  # bytes of the buffer end searched for the prompt


class SessionError(DeviceError):
    """A failure talking to one router. `kind` is a short stable tag for reports."""

    kind = "error"

    def __init__(self, host: str, message: str, output: str | None = None, *, command: str | None = None):
        super().__init__(f"{host}: {message}")
        self.host = host
        self.reason = message
        self.output = output  # what the router printed before the failure, if anything
        self.command = command  # the command line being run, when the failure is about one


class AuthenticationFailed(SessionError):
    """Username, password or enable secret refused. Never retried at once; the pool
    allows a few more tries per router with a growing pause, then stops (TACACS locks
    accounts after a few failures)."""

    kind = "auth-failed"


class ConnectFailed(SessionError):
    """No SSH session: refused, timed out, unreachable, no prompt after login."""

    kind = "connect-failed"


class HostKeyRejected(SessionError):
    """The router's host key changed, or is unknown under the strict policy."""

    kind = "host-key"


class KnownHostsUnusable(SessionError):
    """The tool's own known_hosts file cannot be read or written: a local problem, not
    the router's; never retried."""

    kind = "known-hosts"


class LinesBusy(SessionError):
    """The router closed the session before a prompt: its vty lines are all in use."""

    kind = "lines-busy"


class SessionDropped(SessionError):
    """The session closed or broke; it is unusable."""

    kind = "dropped"


class CommandTimeout(SessionError):
    """No prompt within the read timeout. The command may still be running on the router:
    the session is kept but the next use first reads until the prompt returns (`settle`),
    with a longer timeout, and closes the session if it does not."""

    kind = "timeout"


class CommandRefused(SessionError):
    """The router answered the line with an IOS error (`% Invalid input`, `% Incomplete
    command`, `% Ambiguous command`, `% Unknown command`); its prompt came back, so the
    session stays usable."""

    kind = "invalid-input"


class CommandUnauthorized(CommandRefused):
    """AAA command authorization refused the line (`Command authorization failed.`)."""

    kind = "unauthorized"


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


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- prompts ----------------------------------------------------------------------------

# What IOS accepts as a hostname (letters, digits, dots, dashes; 63 at most). Only a
# learned name of this shape is ever put into a pattern.
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# IOS prints the whole hostname in exec mode but only its first 20 characters before
# `(config...)#` (netmiko cuts its base prompt to 16 for that reason, which then matches
# no exec prompt of a longer name).
CONFIG_PROMPT_CHARS = 20
_MODE = r"\([A-Za-z0-9_.:/ -]+\)"
# Any last line that ends like a prompt: used only at login, before the name is known.
_ANY_PROMPT = re.compile(r"(?:^|\n)[^\n]{1,120}[>#] ?$")
# The answer to `terminal width 511`: its echo, then a prompt at the end.
_WIDTH_ANSWER = re.compile(r"width 511[^\n]*\n(?:[^\n]*\n)*?[^\n]*[>#] ?$")
FIRST_PROMPT_NUDGE_SECONDS = 2.0  # no prompt by then: send a Return, as a person would
_ENABLE_ASK = re.compile(r"(?:^|\n)[^\n]*[Pp]assword: ?$")
_HOSTNAME_LINE = re.compile(r"^\s*(no\s+)?hostname(?:\s+(\S+))?\s*$", re.I)
IOS_DEFAULT_HOSTNAME = "Router"


def prompt_pattern(*names: str) -> re.Pattern[str]:
    """The prompt of a router called any of `names`, in exec and configuration modes,
    standing at the end of the text.

    Raises:
        Nothing: names are escaped, any text makes a valid pattern.
    """
    alternatives = []
    for name in dict.fromkeys(names):
        alternatives.append(re.escape(name) + f"(?:{_MODE})?")
        short = name[:CONFIG_PROMPT_CHARS]
        if short != name:
            alternatives.append(re.escape(short) + _MODE)
    return re.compile(r"(?:^|\n)(?:" + "|".join(alternatives) + r")[>#] ?$")


def prompt_name(line: str) -> str | None:
    """The hostname in a prompt line (`name>`, `name#`, `name(config)#`), or None when
    the line is not the prompt of a valid IOS hostname.

    Raises:
        Nothing: a line that is no prompt gives None.
    """
    line = line.strip()
    if not line or line[-1] not in ">#":
        return None
    name = re.sub(_MODE + "$", "", line[:-1])
    return name if _HOSTNAME.fullmatch(name) else None


def _hostname_set_by(line: str) -> str | None:
    """The hostname a configuration line sets (`hostname X`, `no hostname`), if any."""
    match = _HOSTNAME_LINE.match(line)
    if not match:
        return None
    if match.group(1):
        return IOS_DEFAULT_HOSTNAME
    name = match.group(2)
    return name if name and _HOSTNAME.fullmatch(name) else None


def _screen(text: str) -> str:
    """Text as the screen shows it: no CR, pager wipes applied."""
    return _ERASE.sub("", text.replace("\r", ""))


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
    one thread at a time.

    Login: netmiko builds the SSH client (ssh_config, jump hosts, host-key policy, its
    error mapping) and opens the shell; everything after that (the first prompt, terminal
    set-up, `enable`) goes through the lean reader, which returns as soon as the prompt
    stands at the end, instead of netmiko's session preparation with its fixed sleeps.

    Invariants: `prompt_name` is the router's whole hostname as it printed it; after a
    `CommandTimeout` the session is "unsettled" until `settle()` has read the prompt back
    (done automatically before the next command)."""

    def __init__(self, host: Host, known_hosts: KnownHosts):
        self.host = host
        self._known_hosts = known_hosts
        self._conn: CiscoIosSSH | None = None
        self._channel: paramiko.Channel | None = None
        self._prompt: re.Pattern[str] | None = None
        self._last_prompt = ""  # the prompt line that ended the last exchange
        self.prompt_name = ""
        self._unsettled: tuple[str, float] | None = None  # (buffer tail, settle timeout) after a timeout

    # -- connecting -------------------------------------------------------------------

    def open(self) -> None:
        """Connect, authenticate, enter enable mode. Retries transient failures with
        backoff; never retries a refused password, a changed host key or an unusable
        known_hosts file.

        Raises:
            AuthenticationFailed, HostKeyRejected, KnownHostsUnusable: at once.
            ConnectFailed, LinesBusy: after the host's retries."""
        opts = self.host.options
        attempts = max(1, opts.retries + 1)
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                self._connect_once()
                return
            except (AuthenticationFailed, HostKeyRejected, KnownHostsUnusable):
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
            auto_connect=False,  # netmiko's session preparation sleeps; ours reads the prompt
        )
        try:
            conn = _HostKeyCheckedIos(host_key_policy=opts.host_key_policy, known_hosts=self._known_hosts, **params)
            conn._modify_connection_params()
            conn.establish_connection()
        except paramiko.BadHostKeyException as exc:
            raise HostKeyRejected(host.name, str(explain_bad_host_key(exc, host.hostname, host.port))) from None
        except KnownHostsFileError as exc:
            raise KnownHostsUnusable(host.name, str(exc)) from None
        except HostKeyError as exc:  # changed, or unknown under the strict policy
            raise HostKeyRejected(host.name, str(exc)) from None
        except NetmikoAuthenticationException:
            raise AuthenticationFailed(host.name, "authentication failed (username or password refused)") from None
        except NetmikoTimeoutException as exc:
            raise self._classify_connect_error(str(exc)) from None
        except (EOFError, OSError, paramiko.SSHException, ValueError) as exc:
            raise self._classify_connect_error(str(exc) or type(exc).__name__) from None
        self._conn = conn
        self._channel = conn.remote_conn
        try:
            self._prepare_terminal()
        except SessionError:
            self.close()
            raise
        _quiet_idle_transport(conn.remote_conn)

    def _prepare_terminal(self) -> None:
        """First prompt, terminal width and length, enable: each answered as soon as the
        prompt is back. The prompt is learned from the answer to `terminal width`, where
        only the echo precedes it, so a login banner line ending in `#` or `>` is never
        taken for it."""
        name, timeout = self.host.name, self.host.options.read_timeout
        try:
            try:
                self._read(_ANY_PROMPT, min(FIRST_PROMPT_NUDGE_SECONDS, timeout), "the first prompt")
            except CommandTimeout:  # some images print the prompt only after a Return
                self._unsettled = None
                self._send(b"\n", "login")
                self._read(_ANY_PROMPT, timeout, "the first prompt")
            self._send(b"terminal width 511\n", "terminal width 511")
            answer = _screen(self._read(_WIDTH_ANSWER, timeout, "terminal width 511"))
            last_line = answer.rsplit("\n", 1)[-1]
            learned = prompt_name(last_line)
            if learned is None:
                raise ConnectFailed(name, f"unrecognised prompt after login: {last_line[-80:]!r}")
            self._set_prompt_name(learned)
            self._exchange("terminal length 0", timeout)
            if self.host.secret and self._last_prompt.endswith(">"):
                self._enable(timeout)
        except SessionDropped:
            raise LinesBusy(name, "session closed before a prompt (all vty lines busy?)") from None
        except CommandTimeout as exc:
            raise ConnectFailed(name, f"no prompt within {timeout:.0f}s after login ({exc.reason})") from None

    def _enable(self, timeout: float) -> None:
        """Only a refused secret is an AuthenticationFailed; a timeout or a drop here is a
        transient failure of the login like any other."""
        name = self.host.name
        asked = re.compile(f"{_ENABLE_ASK.pattern}|{self._prompt.pattern}")  # type: ignore[union-attr]
        self._send(b"enable\n", "enable")
        reply = _screen(self._read(asked, timeout, "enable"))
        if _ENABLE_ASK.search(reply):
            self._send(self.host.secret.reveal().encode() + b"\n", "the enable secret")  # type: ignore[union-attr]
            reply = _screen(self._read(asked, timeout, "the enable secret"))
            if _ENABLE_ASK.search(reply):  # asked again: the secret was refused
                raise AuthenticationFailed(name, "enable failed (enable secret refused)")
        last = reply.rsplit("\n", 1)[-1].strip()
        if not last.endswith("#"):
            raise AuthenticationFailed(name, f"enable failed (prompt still {last[-40:]!r})")
        self._last_prompt = last

    def _set_prompt_name(self, name: str, *also: str) -> None:
        self.prompt_name = name
        self._prompt = prompt_pattern(name, *also)

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
        # A connection reset or closed right after login, before any prompt, is what a
        # router with all vty lines in use does to an extra SSH login.
        if "reset by peer" in low:
            return LinesBusy(name, "connection reset before a prompt (all vty lines busy?)")
        if "eof" in low or "socket is closed" in low or "not open" in low or "no existing session" in low:
            return LinesBusy(name, "session closed before a prompt (all vty lines busy?)")
        return ConnectFailed(name, _first_line(text))

    @property
    def prompt(self) -> str:
        """The prompt line that ended the last exchange (`name#`, `name(config)#`, ...)."""
        return self._last_prompt

    @property
    def is_open(self) -> bool:
        ch = self._channel
        return ch is not None and not ch.closed and ch.get_transport() is not None and ch.get_transport().is_active()

    def close(self) -> None:
        """`exit` (frees the vty line at once on the router), then close the transport.
        netmiko's own disconnect looks for config mode first, which costs sleeps.

        Raises:
            Nothing: a failure while closing a dead session is logged at debug level,
                never raised over the error that killed it.
        """
        conn, channel, self._conn, self._channel = self._conn, self._channel, None, None
        if conn is None:
            return
        try:
            if channel is not None and not channel.closed and self._unsettled is None:
                channel.sendall(b"exit\n")
        except Exception:  # closing a dead session must never mask the real error
            log.debug("%s: error while closing", self.host.name, exc_info=True)
        try:
            conn.paramiko_cleanup()
        except Exception:
            log.debug("%s: error while closing", self.host.name, exc_info=True)

    # -- commands ---------------------------------------------------------------------

    def run(self, command: str, *, read_timeout: float | None = None, check: bool = True) -> CommandResult:
        """Run one command and return its output (echo and prompt removed).

        `read_timeout` is absolute for the whole output; a long `show logging` needs a
        generous one.

        Raises:
            CommandUnauthorized: with `check`, AAA refused the line.
            CommandRefused: with `check`, IOS refused the line (output on the exception).
            CommandTimeout: no prompt in time; the next use settles the session first.
            SessionDropped: the session is gone (also when a previous timeout never settled)."""
        if "\n" in command or "\r" in command:
            raise ValueError("one command line at a time")
        if self._channel is None:
            raise SessionDropped(self.host.name, "session is not open", command=command)
        if self._unsettled is not None:
            self.settle()
        timeout = read_timeout if read_timeout is not None else self.host.options.read_timeout
        started = _utcnow()
        text = self._exchange(command, timeout)
        ended = _utcnow()
        if check:
            refusal = refusal_in(text)
            if refusal is not None:
                kind = CommandUnauthorized if refusal.startswith("Command authorization") else CommandRefused
                raise kind(self.host.name, f"router refused {command!r}: {refusal}", output=text, command=command)
        return CommandResult(self.host.name, command, text, started, ended)

    def configure(self, lines: Sequence[str], *, read_timeout: float | None = None) -> list[CommandResult]:
        """`configure terminal`, the lines, `end` (sent even on failure). A refused line
        stops the run: the lines after it are not sent. A `hostname` line changes the
        prompt: both names are accepted until `end` shows which one the router took.

        Raises:
            CommandUnauthorized, CommandRefused: a line was refused (the exception names it).
            CommandTimeout, SessionDropped: as for `run`."""
        outputs: list[CommandResult] = []
        renamed = failed = False
        try:
            outputs.append(self.run("configure terminal", read_timeout=read_timeout))
            for line in lines:
                new_name = _hostname_set_by(line)
                if new_name is not None:
                    self._set_prompt_name(self.prompt_name, new_name)
                    renamed = True
                outputs.append(self.run(line, read_timeout=read_timeout))
        except BaseException:
            failed = True
            raise
        finally:
            try:
                if self._channel is not None:  # `run` settles a timed-out line first
                    outputs.append(self.run("end", read_timeout=read_timeout, check=False))
                    if renamed:
                        self._relearn_prompt()
            except SessionError:
                if not failed:  # otherwise the first failure is the one to report
                    raise
        return outputs

    def _relearn_prompt(self) -> None:
        learned = prompt_name(self._last_prompt)
        if learned is not None:
            self._set_prompt_name(learned)

    def settle(self, timeout: float | None = None) -> str:
        """After a CommandTimeout: read until the prompt returns, and return what came
        (the late rest of the timed-out command's output). A no-op when settled.

        Raises:
            SessionDropped: the prompt did not come back in time; the session is closed."""
        if self._unsettled is None:
            return ""
        if self._channel is None:
            self._unsettled = None
            raise SessionDropped(self.host.name, "session is not open")
        tail, default_timeout = self._unsettled
        timeout = default_timeout if timeout is None else timeout
        try:
            late = self._read(self._prompt, timeout, "the prompt after a timed-out command", tail=tail)  # type: ignore[arg-type]
        except CommandTimeout:
            self._unsettled = None
            self.close()
            raise SessionDropped(self.host.name, f"no prompt {timeout:.0f}s after a timed-out command; session closed") from None
        self._unsettled = None
        return _screen(late)

    def _send(self, data: bytes, what: str, command: str | None = None) -> None:
        try:
            self._channel.sendall(data)  # type: ignore[union-attr]
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise SessionDropped(self.host.name, f"session lost during {what}: {exc or type(exc).__name__}",
                                 command=command) from None

    def _exchange(self, command: str, timeout: float) -> str:
        self._send((command + "\n").encode(), repr(command), command)
        raw = self._read(self._prompt, timeout, repr(command), command=command)  # type: ignore[arg-type]
        return self._clean(command, raw)

    def _read(self, done: re.Pattern[str], timeout: float, what: str, *, tail: str = "",
              command: str | None = None) -> str:
        """Read until `done` matches the end of what the screen shows and nothing more is
        waiting. `tail` is text already received (when settling after a timeout)."""
        channel = self._channel
        assert channel is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        chunks: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            if tail and done.search(_screen(tail)) and not channel.recv_ready():
                return ""
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._unsettled = (tail, max(2 * timeout, MIN_SETTLE_SECONDS))
                    raise CommandTimeout(self.host.name, f"no prompt after {timeout:.0f}s for {what}",
                                         output="".join(chunks), command=command)
                channel.settimeout(remaining)
                try:
                    data = channel.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    self.close()
                    raise SessionDropped(self.host.name, f"session closed during {what}", output="".join(chunks),
                                         command=command)
                piece = decoder.decode(data)
                tail = (tail + piece)[-_TAIL:]
                if _PAGER in tail:  # a pager despite `terminal length 0`: page on, drop the marker
                    channel.sendall(b" ")
                    piece = piece.replace(_PAGER, "")
                    tail = tail.replace(_PAGER, "")
                chunks.append(piece)
                match = done.search(_screen(tail))
                if match and not channel.recv_ready():
                    self._last_prompt = match.group(0).strip()
                    break
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise SessionDropped(self.host.name, f"session lost during {what}: {exc or type(exc).__name__}",
                                 output="".join(chunks), command=command) from None
        return "".join(chunks)

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


# Logins refused in a row before the pool stops trying a router, and the pause after the
# first refusal (doubled after each): TACACS servers lock an account after a few failures.
MAX_AUTH_FAILURES = 3
AUTH_BACKOFF_SECONDS = 60.0

# A timed-out command is given at least this long (or twice its own timeout) to bring
# the prompt back before the session is given up.
MIN_SETTLE_SECONDS = 10.0

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


def refusal_in(output: str) -> str | None:
    """The refusal IOS printed in a command's output (`Invalid input detected`,
    `Command authorization failed`, ...), or None when the line was accepted.

    Raises:
        Nothing: an accepted line gives None.
    """
    match = _REFUSED.search(output)
    return (match.group(1) or match.group(2)) if match else None


class SessionPool:
    """Sessions kept open per router and handed out one thread at a time.

    One session per router from the tool, ever: a per-host lock serialises users, which
    also keeps the tool well inside a router's vty budget. `max_sessions` caps how many
    routers are talked to at once across the whole process."""

    def __init__(self, known_hosts: KnownHosts, *, max_sessions: int = 20, keep_open: bool = True,
                 max_auth_failures: int = MAX_AUTH_FAILURES, auth_backoff: float = AUTH_BACKOFF_SECONDS):
        self._known_hosts = known_hosts
        self._keep_open = keep_open
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
                if healthy and self._keep_open and session.is_open:
                    self._sessions[host.name] = session
                else:
                    session.close()

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
