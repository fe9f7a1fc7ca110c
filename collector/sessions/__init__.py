"""SSH sessions to routers: the only code that talks to a device.

netmiko does what it is good at (device-type knowledge, the SSH client with ssh_config and
jump hosts, the host-key policy hook, its mapping of connect errors). Everything after the
shell opens goes through a lean reader on the same paramiko channel: the first prompt,
`terminal width 511`, `terminal length 0` and `enable` (typed ahead in one write; the
secret only once asked for), then every command: write the line, read until the device
prompt stands at the very end of the buffer and nothing more is waiting. No fixed sleeps
anywhere, so opening a session costs about the SSH handshake and four round trips, and a
prompt-looking line inside a long output never ends it.

The prompt is learned from what the router prints after login, never from netmiko's base
prompt (cut to 16 characters for IOS): the whole hostname (up to 63 characters) in exec
mode, its first 20 characters before `(config...)#`, relearned after a `hostname` line.

Errors are distinct types so a caller can tell an authentication failure (never retried
at once, bounded per router by the pool: retry storms lock accounts on TACACS) from a
timeout, a changed host key, an unusable known_hosts file, all vty lines busy, a dropped
session, a command IOS refused, or one AAA command authorization refused.
"""

from collector.sessions.device import DeviceSession, connect_error
from collector.sessions.errors import (
    AuthenticationFailed,
    CommandRefused,
    CommandTimeout,
    CommandUnauthorized,
    ConnectFailed,
    HostKeyRejected,
    KnownHostsUnusable,
    LinesBusy,
    SessionDropped,
    SessionError,
)
from collector.sessions.pool import AUTH_BACKOFF_SECONDS, MAX_AUTH_FAILURES, SessionPool
from collector.sessions.prompts import CONFIG_PROMPT_CHARS, hostname_set_by, prompt_name, prompt_pattern, refusal_in
from collector.sessions.protocols import RouterSession, SessionSource

__all__ = [
    "AUTH_BACKOFF_SECONDS", "CONFIG_PROMPT_CHARS", "MAX_AUTH_FAILURES", "AuthenticationFailed", "CommandRefused",
    "CommandTimeout", "CommandUnauthorized", "ConnectFailed", "DeviceSession", "HostKeyRejected",
    "KnownHostsUnusable", "LinesBusy", "RouterSession", "SessionDropped", "SessionError", "SessionPool",
    "SessionSource", "connect_error", "hostname_set_by", "prompt_name", "prompt_pattern", "refusal_in",
]
