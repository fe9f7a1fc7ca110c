"""One interactive SSH session to one router: login, commands, configuration, close."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence

import paramiko
from netmiko.cisco.cisco_ios import CiscoIosSSH
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

from collector.command_results import CommandResult
from collector.hostkeys import (HostKeyError, KnownHosts, KnownHostsFileError, apply_host_key_policy,
                                explain_bad_host_key)
from collector.inventory import Host
from collector.sessions.errors import (AuthenticationFailed, CommandRefused, CommandUnauthorized, ConnectFailed,
                                       HostKeyRejected, KnownHostsUnusable, LinesBusy, SessionDropped, SessionError)
from collector.sessions.login import ShellLogin
from collector.sessions.prompts import hostname_set_by, refusal_in
from collector.timeutil import utcnow

log = logging.getLogger(__name__)

# paramiko's transport thread wakes every 0.1 s on an idle connection to check for
# closure and keepalives; with a session kept open to each of 2,000 routers that alone is
# half a core. Data still wakes it at once; only idle checks become once a second.
IDLE_WAKEUP_SECONDS = 1.0



class _SessionClient(paramiko.SSHClient):
    """paramiko's client as the sessions need it: Nagle's algorithm off, and the shell
    asked for in one round trip, both as OpenSSH does for an interactive session.

    paramiko opens its socket with Nagle on. In the handshake the client sends small
    messages while its previous one is not yet acknowledged (NEWKEYS, then the request
    after it); Nagle holds each until that acknowledgement comes, and the router may
    delay it (Linux 40 ms; RFC 1122 allows 500 ms, and 200 ms is common). On the lab that
    was 80 of the 90 ms a login took. A socket given by the caller (a ProxyCommand from
    ssh_config) is used as it is."""

    def connect(self, hostname, port=22, *args, sock=None, timeout=None, **kwargs) -> None:
        ours = sock is None
        if ours:
            # as paramiko's own loop: every address of the name in turn, the first that answers
            sock = socket.create_connection((hostname, port), timeout=timeout)
        try:
            if ours:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connect(hostname, port, *args, sock=sock, timeout=timeout, **kwargs)
        except BaseException:
            if ours and self.get_transport() is None:  # else the transport owns it (closed with the client)
                sock.close()
            raise

    def invoke_shell(self, term="vt100", width=80, height=24, width_pixels=0, height_pixels=0,
                     environment=None) -> paramiko.Channel:
        """The terminal and the shell asked for together, as netmiko's login asks for
        them: the terminal request wants no answer (paramiko's `get_pty` waits a round
        trip for one), the shell request's answer says whether there is a session.
        OpenSSH does not wait for the terminal's answer either, and goes on without a
        terminal when it is refused; so does this: the router's shell still starts."""
        if environment:
            raise ValueError("no environment is sent to a router")
        channel = self.get_transport().open_session()
        request = paramiko.Message()
        request.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
        request.add_int(channel.remote_chanid)
        request.add_string("pty-req")
        request.add_boolean(False)  # want_reply (RFC 4254, 6.2)
        request.add_string(term)
        for size in (width, height, width_pixels, height_pixels):
            request.add_int(size)
        request.add_string(b"")  # no terminal modes
        channel.transport._send_user_message(request)  # as Channel.get_pty sends it, minus the wait
        channel.invoke_shell()
        return channel


class _HostKeyCheckedIos(CiscoIosSSH):
    """netmiko's IOS driver with the tool's own host-key policy installed on its client."""

    def __init__(self, *args, host_key_policy: str, known_hosts: KnownHosts, **kwargs):
        self._collector_policy = host_key_policy
        self._collector_known = known_hosts
        super().__init__(*args, **kwargs)

    def _get_ssh_client_instance(self) -> paramiko.SSHClient:
        return _SessionClient()

    def _build_ssh_client(self) -> paramiko.SSHClient:
        client = super()._build_ssh_client()
        apply_host_key_policy(client, self.host, self.port, self._collector_policy, self._collector_known)
        return client


class DeviceSession(ShellLogin):
    """One interactive SSH session to one router. Not thread-safe: the pool hands it to
    one thread at a time.

    Login: netmiko builds the SSH client (ssh_config, jump hosts, host-key policy, its
    error mapping) and opens the shell; everything after that (the first prompt, terminal
    set-up, `enable`) goes through the lean reader, which returns as soon as the prompt
    stands at the end, instead of netmiko's session preparation with its fixed sleeps.

    Reading the channel up to the prompt is `PromptReader`'s (prompts.py), the shell's
    side of the login `ShellLogin`'s (login.py); this class connects, runs commands and
    configuration, and closes.

    Invariants: `prompt_name` is the router's whole hostname as it printed it; after a
    `CommandTimeout` the session is "unsettled" until `settle()` has read the prompt back
    (done automatically before the next command)."""

    def __init__(self, host: Host, known_hosts: KnownHosts):
        self.host = host
        self._known_hosts = known_hosts
        self._conn: CiscoIosSSH | None = None
        ShellLogin.__init__(self)

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
            raise connect_error(self.host, str(exc)) from None
        except (EOFError, OSError, paramiko.SSHException, ValueError) as exc:
            raise connect_error(self.host, str(exc) or type(exc).__name__) from None
        self._conn = conn
        self._channel = conn.remote_conn
        try:
            self._prepare_terminal()
        except SessionError:
            self.close()
            raise
        _quiet_idle_transport(conn.remote_conn)

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
        self._ready_for((command,))
        timeout = read_timeout if read_timeout is not None else self.host.options.read_timeout
        started = utcnow()
        text = self._exchange(command, timeout)
        ended = utcnow()
        if check and (refused := _refusal(self.host, command, text)) is not None:
            raise refused
        return CommandResult(self.host.name, command, text, started, ended)

    def run_many(self, commands: Sequence[str], *, read_timeout: float | None = None) -> list[CommandResult]:
        """Read-only exec commands typed ahead in one write: one round trip for them all
        instead of one each (20-150 ms each across a WAN). Each result is what `run(command,
        check=False)` gives, timed by its write's exchange; the caller checks each for a
        refusal (`refusal_in`). A refused command does not stop the ones after it, so only
        commands that change nothing belong here. TYPED_AHEAD_LINES at most go in one
        write (a paste IOS's typeahead takes whole), the next ones once they are answered.

        Raises:
            SessionDropped: the session is gone, or the answers of a write did not all come
                within `read_timeout`: the session is then closed."""
        self._ready_for(commands)
        timeout = read_timeout if read_timeout is not None else self.host.options.read_timeout
        results: list[CommandResult] = []
        for at in range(0, len(commands), TYPED_AHEAD_LINES):
            paste = commands[at:at + TYPED_AHEAD_LINES]
            started = utcnow()
            answers = self._exchange_typed_ahead(paste, timeout)
            ended = utcnow()
            results += [CommandResult(self.host.name, command, text, started, ended)
                        for command, text in zip(paste, answers)]
        return results

    def configure(self, lines: Sequence[str], *, read_timeout: float | None = None) -> list[CommandResult]:
        """`configure terminal`, the lines, `end` (sent even on failure). A refused line
        stops the run: the lines after it are not sent. A `hostname` line changes the
        prompt: both names are accepted until `end` shows which one the router took.

        The indented lines under a sub-mode's line (an EEM applet's `event` and `action`
        lines) go as a paste, TYPED_AHEAD_LINES at most, once that line was accepted: one
        round trip instead of one each (a dead-man applet is some twenty lines). A refused
        one stops what follows its paste; the rest of the paste was typed already, inside
        the sub-mode, whose line is undone as a whole. When such a paste comes last, `end`
        is typed with it (it goes whatever their answers).

        Raises:
            CommandUnauthorized, CommandRefused: a line was refused (the exception names it).
            CommandTimeout, SessionDropped: as for `run`; a paste that times out closes
                the session (SessionDropped, as `run_many`)."""
        outputs: list[CommandResult] = []
        renamed = failed = ended = False
        timeout = read_timeout if read_timeout is not None else self.host.options.read_timeout
        try:
            outputs.append(self.run("configure terminal", read_timeout=read_timeout))
            groups = _typed_ahead_groups(lines)
            for at, group in enumerate(groups):
                # `end` goes whatever the paste's answers: typed with the last paste (an
                # applet's body), it costs no round trip of its own. Not with a single
                # line: a timeout there stays a CommandTimeout on an open session (a
                # disarm then leaves the undo to the sweep instead of sending it again).
                last = at == len(groups) - 1 and 1 < len(group) < TYPED_AHEAD_LINES
                if len(group) > 1:
                    paste = [*group, "end"] if last else group
                    self._ready_for(paste)  # a line that is not one line: refused before anything goes
                    ended = last
                    outputs.extend(self._configure_typed_ahead(paste, timeout))
                    continue
                line = group[0]
                new_name = hostname_set_by(line)
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
                    if not ended:
                        outputs.append(self.run("end", read_timeout=read_timeout, check=False))
                    if renamed:
                        self._relearn_prompt()
            except SessionError:
                if not failed:  # otherwise the first failure is the one to report
                    raise
        return outputs

    def _ready_for(self, lines: Sequence[str]) -> None:
        """Before sending: each a single line, the session open and settled after a timeout."""
        if any("\n" in line or "\r" in line for line in lines):
            raise ValueError("one command line at a time")
        if self._channel is None:
            raise SessionDropped(self.host.name, "session is not open", command=lines[0])
        if self._unsettled is not None:
            self.settle()

    def _configure_typed_ahead(self, lines: Sequence[str], timeout: float) -> list[CommandResult]:
        self._ready_for(lines)
        started = utcnow()
        answers = self._exchange_typed_ahead(lines, timeout)
        refused = next((r for line, text in zip(lines, answers) if (r := _refusal(self.host, line, text))), None)
        if refused is not None:
            raise refused
        return [CommandResult(self.host.name, line, text, started, utcnow()) for line, text in zip(lines, answers)]


def _refusal(host: Host, command: str, text: str) -> SessionError | None:
    """The error a line's answer means when the router refused it (AAA's refusal apart)."""
    refusal = refusal_in(text)
    if refusal is None:
        return None
    kind = CommandUnauthorized if refusal.startswith("Command authorization") else CommandRefused
    return kind(host.name, f"router refused {command!r}: {refusal}", output=text, command=command)


# Lines of one sub-mode sent in one write at most: a paste IOS's typeahead takes whole.
TYPED_AHEAD_LINES = 16


def _typed_ahead_groups(lines: Sequence[str]) -> list[list[str]]:
    """`lines` as sent: one at a time, except runs of indented lines (a sub-mode's, under
    the line before them), in groups of up to TYPED_AHEAD_LINES. A `hostname` line, which
    changes the prompt the reader waits for, always goes alone."""
    groups: list[list[str]] = []
    in_run = False
    for line in lines:
        under = line[:1] in (" ", "\t") and hostname_set_by(line) is None
        if under and in_run and len(groups[-1]) < TYPED_AHEAD_LINES:
            groups[-1].append(line)
        else:
            groups.append([line])
        in_run = under
    return groups


def connect_error(host: Host, text: str) -> SessionError:
    """The session error a failed login's text means (netmiko and paramiko say it in prose)."""
    low = text.lower()
    name = host.name
    if "host key" in low and ("not match" in low or "changed" in low):
        return HostKeyRejected(name, _first_line(text))
    if "busy" in low or "session limit" in low:
        return LinesBusy(name, "all vty lines busy (session limit reached)")
    if "connection refused" in low or "tcp connection to device failed" in low:
        # IOS answers an SSH login with a reset when every vty line is in use, exactly as
        # a closed port does: say both.
        return ConnectFailed(name, f"connection refused at {host.hostname}:{host.port} "
                                   "(port closed, or all vty lines busy)")
    if "timed out" in low or "timeout" in low:
        return ConnectFailed(name, f"timed out connecting to {host.hostname}:{host.port}")
    # A connection reset or closed right after login, before any prompt, is what a
    # router with all vty lines in use does to an extra SSH login.
    if "reset by peer" in low:
        return LinesBusy(name, "connection reset before a prompt (all vty lines busy?)")
    if "eof" in low or "socket is closed" in low or "not open" in low or "no existing session" in low:
        return LinesBusy(name, "session closed before a prompt (all vty lines busy?)")
    return ConnectFailed(name, _first_line(text))


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
