"""SSH front of the lab: one asyncssh listener per simulated router on 127.0.0.1.

Every router gets its own TCP port and its own host key; all listeners share one
asyncio loop. The shell is a raw character stream like a Cisco vty: the server
echoes what is typed (except while `CliSession.echo` is False, i.e. at the enable
`Password: ` prompt), ends a line on CR, LF or CRLF, honours backspace, hands each
line to `CliSession.execute()` and prints the output (LF -> CRLF) and the new
prompt. Commands run synchronously on the loop: no sleeps, no thread hops.

Transport faults, read from `router.faults` at the moment they matter, so they can
be changed at runtime:

- refuse_connections: the TCP connection is accepted and closed at once (FIN) before
  any SSH banner. paramiko reports "Error reading SSH protocol banner"; netmiko wraps
  it as NetmikoTimeoutException("A paramiko SSHException occurred ...").
- vty lines: every TCP connection holds one of the router's vty lines (router.vty_take,
  the pool of `line vty 0 N`, less any the vty_limit fault takes away or the vty_held
  fault gives to other people) from accept until it closes, also while it sits at
  authentication, as on IOS. EEM applets take lines from the same pool. A real IOS router with all
  vty lines busy answers new connections with "Connection refused" (TCP RST to the
  SYN). The lab does the same by closing the router's listening socket while its
  lines are full and reopening it when one frees, so the client gets
  ConnectionRefusedError (netmiko: NetmikoTimeoutException "TCP connection to device
  failed"). A connection that was already queued in the kernel when the lines filled
  up is reset (RST) right after accept ("Connection reset by peer").
- changed_host_key: the router presents a second, equally deterministic key.
- wrong_password: every password is refused (as if the password was changed); the
  connection stays up for further attempts until the client gives up.
- slow_seconds: output of each command is held back that long (echo is immediate).
- drop_after_bytes: only the first N bytes of one command's output are sent, then
  the session and its TCP connection are closed.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import socket
import struct
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

with warnings.catch_warnings():
    # asyncssh still names DSA key types at import, which cryptography 51 deprecates: a
    # page of warnings in front of `collector demo` that no user can act on
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    import asyncssh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger(__name__)

LISTEN_HOST = "127.0.0.1"
# What IOS 15/16 announce; clients only log it, but it keeps transcripts realistic.
SERVER_VERSION = "Cisco-1.25"


class _Faults(Protocol):
    refuse_connections: bool
    changed_host_key: bool
    slow_seconds: float
    drop_after_bytes: int | None
    wrong_password: bool


class _CliSession(Protocol):
    prompt: str
    echo: bool
    closed: bool
    monitor: bool  # `terminal monitor` is on

    def execute(self, line: str) -> str: ...

    def drain_monitor(self) -> list[str]: ...


class _Router(Protocol):
    name: str
    username: str
    password: str
    faults: _Faults

    def open_session(
        self, *, user: str | None = None, source: str = "127.0.0.1", vty_line: int | None = None
    ) -> _CliSession: ...

    def vty_take(self, kind: str, user: str = "", location: str = "") -> int | None: ...

    def vty_release(self, line: int) -> None: ...

    def vty_free(self) -> int: ...


class PortInUseError(OSError):
    """A lab port could not be bound because something else holds it."""

    def __init__(self, port: int, owner: str):
        """`owner` says what the port was for: "router hub1", "control API"."""
        super().__init__(errno.EADDRINUSE, f"port {port} ({owner}) is already in use")
        self.port = port
        self.owner = owner

    def __str__(self) -> str:
        return f"port {self.port} ({self.owner}) is already in use"


def derive_host_key(seed: int, router_name: str, variant: str = "") -> asyncssh.SSHKey:
    """Ed25519 host key derived from the lab seed and router name.

    Deterministic so a restarted lab presents the same keys and trust-on-first-use
    clients keep trusting it; `variant` gives the `changed_host_key` fault its own key.
    """
    material = f"collector-lab|{seed}|{router_name}|{variant}".encode()
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(material).digest())
    openssh = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return asyncssh.import_private_key(openssh)


def _ssh_output(text: str) -> bytes:
    """Model output uses LF; a vty sends CRLF and every non-empty output ends a line."""
    if not text:
        return b""
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return text.replace("\n", "\r\n").encode("utf-8", "replace")


class _ClosingProtocol(asyncio.Protocol):
    """refuse_connections: send FIN at once; close fully when the client gives up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write_eof()
        # Do not linger forever on a client that never closes its side.
        self._timer = asyncio.get_running_loop().call_later(5.0, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # the client's banner; nobody will answer it

    def eof_received(self) -> bool:
        self._transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()


class _ResettingProtocol(asyncio.Protocol):
    """All vty lines busy but the connection was already queued: reset it (RST)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


@dataclass(frozen=True)
class ListenerStats:
    """Counters of one router's listener, for tests and the control API."""

    sessions_in_use: int
    listening: bool
    accepted: int
    refused: int


class RouterListener:
    """The SSH listener of one router and the vty lines it hands out."""

    def __init__(
        self,
        router: _Router,
        port: int,
        *,
        seed: int,
        before_command: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
    ):
        self.router = router
        self.port = port
        self._seed = seed
        self._before_command = before_command
        self._loop = loop
        self._server: asyncio.AbstractServer | None = None
        self._options = self._make_options(derive_host_key(seed, router.name))
        self._changed_options: asyncssh.SSHServerConnectionOptions | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._lines: dict[asyncssh.SSHServerConnection, int] = {}  # the vty line each connection holds
        self.shells: set[_VtyShell] = set()  # interactive sessions, for `terminal monitor` output
        self._sessions_in_use = 0  # vty lines held, counted from accept to close
        self._accepted = 0
        self._refused = 0
        self._closing = False
        self._resume_task: asyncio.Task[None] | None = None

    # -- listening socket -------------------------------------------------------

    async def open(self) -> None:
        """Bind and listen; PortInUseError names the port and router."""
        try:
            self._server = await self._loop.create_server(
                self._accept, LISTEN_HOST, self.port, backlog=128, reuse_address=True
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(self.port, f"router {self.router.name}") from None
            raise

    @property
    def listening(self) -> bool:
        return self._server is not None

    def _pause_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def refresh(self) -> None:
        """Re-read the free vty lines (faults, sessions, EEM): stop or resume listening to match."""
        if self._closing:
            return
        if self.router.vty_free() <= 0:
            self._pause_listening()
        elif self._server is None and (self._resume_task is None or self._resume_task.done()):
            self._resume_task = self._loop.create_task(self._resume())

    async def _resume(self) -> None:
        # Another process may briefly hold the port; keep trying while lines are free.
        while not self._closing and self._server is None:
            if self.router.vty_free() <= 0:
                return
            try:
                await self.open()
            except OSError as exc:
                log.warning("lab %s: cannot listen again on port %s: %s", self.router.name, self.port, exc)
                await asyncio.sleep(1.0)
                continue
            # The lines may have gone while the socket was being opened (create_server
            # yields once it listens, and a fault change can run then): match them now.
            if self.router.vty_free() <= 0:
                self._pause_listening()
            return

    # -- connections ------------------------------------------------------------

    def _make_options(self, key: asyncssh.SSHKey) -> asyncssh.SSHServerConnectionOptions:
        return asyncssh.SSHServerConnectionOptions(
            server_factory=lambda: _RouterAuth(self),
            server_host_keys=[key],
            server_version=SERVER_VERSION,
            password_auth=True,
            public_key_auth=False,
            kbdint_auth=False,
            line_editor=False,  # the router does its own echo and line handling
            encoding=None,
            allow_pty=True,
            x11_forwarding=False,
            agent_forwarding=False,
            keepalive_interval=0,
        )

    def _connection_options(self) -> asyncssh.SSHServerConnectionOptions:
        if self.router.faults.changed_host_key:
            if self._changed_options is None:
                key = derive_host_key(self._seed, self.router.name, "changed")
                self._changed_options = self._make_options(key)
            return self._changed_options
        return self._options

    def _accept(self) -> asyncio.BaseProtocol:
        """Protocol factory of the listening socket: decide the fate of a new TCP connection."""
        faults = self.router.faults
        if faults.refuse_connections:
            self._refused += 1
            return _ClosingProtocol()
        line = self.router.vty_take("ssh")
        if line is None:
            self._refused += 1
            self._loop.call_soon(self.refresh)
            return _ResettingProtocol()
        self._accepted += 1
        self._sessions_in_use += 1
        if self.router.vty_free() <= 0:
            # Not now: asyncio still attaches this very connection to the server object.
            self._loop.call_soon(self.refresh)
        # What asyncssh.listen() does per connection, done here so the host key and the
        # vty accounting can be decided per connection at accept time.
        conn = asyncssh.SSHServerConnection(self._loop, self._connection_options())
        self._lines[conn] = line
        return conn

    def line_of(self, conn: asyncssh.SSHServerConnection) -> int | None:
        return self._lines.get(conn)

    def _line_taken(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connections.add(conn)

    def _line_freed(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connections.discard(conn)
        self._sessions_in_use -= 1
        line = self._lines.pop(conn, None)
        if line is not None:
            self.router.vty_release(line)
        self.refresh()

    def flush_monitor(self) -> None:
        """Print pending `terminal monitor` log lines on the sessions that asked for them."""
        for shell in list(self.shells):
            shell.print_monitor_lines()

    def drop_sessions(self) -> None:
        """Close every SSH connection of this router (reboot)."""
        for conn in list(self._connections):
            conn.abort()

    def stats(self) -> ListenerStats:
        return ListenerStats(self._sessions_in_use, self.listening, self._accepted, self._refused)

    def close(self) -> None:
        self._closing = True
        if self._resume_task is not None:
            self._resume_task.cancel()
        self._pause_listening()
        self.drop_sessions()


class _RouterAuth(asyncssh.SSHServer):
    """Per-connection owner: password check and vty line bookkeeping."""

    def __init__(self, listener: RouterListener):
        self._listener = listener
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._listener._line_taken(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._listener._line_freed(self._conn)
            self._conn = None

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        router = self._listener.router
        if router.faults.wrong_password:
            return False
        return username == router.username and password == router.password

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        assert self._conn is not None
        return _VtyShell(self._listener, self._conn)


class _VtyShell(asyncssh.SSHServerSession[bytes]):
    """One interactive (or exec) session on a vty line."""

    def __init__(self, listener: RouterListener, conn: asyncssh.SSHServerConnection):
        self._listener = listener
        self._router = listener.router
        self._conn = conn
        self._chan: Any = None
        self._cli: _CliSession | None = None
        self._exec_command: str | None = None
        self._pending = bytearray()  # input not yet consumed (held while a slow command runs)
        self._typed = bytearray()  # the line being typed
        self._after_cr = False  # a CR ended the last line: swallow one LF (CRLF)
        self._busy = False
        self._ended = False

    # -- asyncssh callbacks -----------------------------------------------------

    def connection_made(self, chan: Any) -> None:
        self._chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._exec_command = command
        return True

    def session_started(self) -> None:
        conn = self._conn
        peer = conn.get_extra_info("peername") or ("127.0.0.1", 0)
        # user and source show up in the model's messages (`Configured from console by lab on vty0 (127.0.0.1)`)
        self._cli = self._router.open_session(
            user=conn.get_extra_info("username"), source=peer[0], vty_line=self._listener.line_of(conn)
        )
        if self._exec_command is not None:
            self._before_command()
            output = self._execute(self._exec_command)
            self._chan.write(_ssh_output(output))
            self._chan.exit(0)
            return
        self._listener.shells.add(self)
        self._chan.write(b"\r\n" + self._cli.prompt.encode())

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self._ended:
            return
        self._pending += data
        if not self._busy:
            self._consume()

    def eof_received(self) -> bool:
        self._end_session()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._listener.shells.discard(self)

    def print_monitor_lines(self) -> None:
        """Log lines for `terminal monitor`, printed between commands; prompt and typed text redrawn
        below them (as with `logging synchronous`) so the session stays readable."""
        if self._cli is None or self._busy or self._ended or not self._cli.monitor:
            return
        lines = self._cli.drain_monitor()
        if not lines:
            return
        text = "\n".join(lines)
        redraw = self._cli.prompt.encode() + (bytes(self._typed) if self._cli.echo else b"")
        self._chan.write(b"\r\n" + _ssh_output(text) + redraw)

    # -- line discipline ----------------------------------------------------------

    def _before_command(self) -> None:
        self._listener._before_command()

    def _consume(self) -> None:
        """Echo and execute as much pending input as possible, in one write."""
        assert self._cli is not None
        out = bytearray()
        pending = self._pending
        i = 0
        while i < len(pending) and not self._busy and not self._ended:
            byte = pending[i]
            i += 1
            if byte == 0x0A and self._after_cr:
                self._after_cr = False
                continue
            self._after_cr = False
            if byte in (0x0D, 0x0A):
                self._after_cr = byte == 0x0D
                out += b"\r\n"
                line = self._typed.decode("utf-8", "replace")
                self._typed.clear()
                self._run_line(line, out)
            elif byte in (0x08, 0x7F):
                if self._typed:
                    del self._typed[-1]
                    if self._cli.echo:
                        out += b"\b \b"
            elif byte == 0x1A:  # Ctrl-Z leaves configuration mode like `end`
                if "(config" in self._cli.prompt:
                    out += b"^Z\r\n"
                    self._typed.clear()
                    self._run_line("end", out)
            elif byte >= 0x20:
                self._typed.append(byte)
                if self._cli.echo:
                    out.append(byte)
        del pending[:i]
        if out and not self._ended:
            self._chan.write(bytes(out))

    def _execute(self, line: str) -> str:
        assert self._cli is not None
        try:
            return self._cli.execute(line)
        except Exception:  # a model bug must not kill the whole lab
            log.exception("lab %s: command %r failed in the router model", self._router.name, line)
            return "% lab: internal error in the router model (see lab log)"

    def _run_line(self, line: str, out: bytearray) -> None:
        assert self._cli is not None
        self._before_command()
        payload = _ssh_output(self._execute(line))
        faults = self._router.faults
        drop = faults.drop_after_bytes
        if drop is not None and len(payload) > drop:
            payload, cut = payload[: max(drop, 0)], True
        else:
            cut = False
        end = cut or self._cli.closed
        if not end:
            payload += self._cli.prompt.encode()
        delay = faults.slow_seconds
        if delay > 0:
            self._busy = True
            if out:
                self._chan.write(bytes(out))
                out.clear()
            self._listener._loop.call_later(delay, self._finish_slow, payload, end)
            return
        out += payload
        if end:
            self._chan.write(bytes(out))
            out.clear()
            self._end_session()

    def _finish_slow(self, payload: bytes, end: bool) -> None:
        self._busy = False
        if self._ended:
            return
        self._chan.write(payload)
        if end:
            self._end_session()
        elif self._pending:
            self._consume()

    def _end_session(self) -> None:
        """exit/logout or a dropped output: IOS frees the vty and closes the TCP connection."""
        if self._ended:
            return
        self._ended = True
        self._listener.shells.discard(self)
        self._chan.close()
        self._listener._loop.call_soon(self._conn.close)


async def open_listeners(
    routers: Iterable[tuple[_Router, int]],
    *,
    seed: int,
    before_command: Callable[[], None],
) -> dict[str, RouterListener]:
    """Open one listener per (router, port); on any failure close those already open."""
    loop = asyncio.get_running_loop()
    listeners: dict[str, RouterListener] = {}
    try:
        for router, port in routers:
            listener = RouterListener(router, port, seed=seed, before_command=before_command, loop=loop)
            await listener.open()
            listeners[router.name] = listener
    except BaseException:
        for listener in listeners.values():
            listener.close()
        raise
    return listeners
