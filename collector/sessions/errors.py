"""The session errors: one type per way a router session fails, so a caller can tell a
refused password (never retried at once) from a timeout, a changed host key, busy vty
lines, a dropped session, a refused command or an AAA refusal."""

from __future__ import annotations

from collector.errors import DeviceError


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
