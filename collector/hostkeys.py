"""The tool's own known_hosts file and the host-key policies for router SSH sessions.

Policies (inventory `connection_options.host_key_policy`):

* `tofu` (default): a router seen for the first time has its key recorded and accepted
  (logged with its fingerprint); afterwards only that key is accepted.
* `strict`: only keys already in the file are accepted (pre-seed it with ssh-keyscan).
* `accept-any`: no check at all (the lab, throw-away test beds).

A changed key is always refused under tofu and strict, with an error naming the router
and both fingerprints, as OpenSSH prints them (`SHA256:...`).

The file is OpenSSH's known_hosts format, one line per key: `host keytype base64` for
port 22 and `[host]:port keytype base64` otherwise (what OpenSSH and paramiko look up).
Hashed names (`|1|...`) written by ssh-keygen -H are understood.

Why the policy decides everything instead of preloading the known keys into paramiko:
paramiko reports a mismatch as BadHostKeyException, an SSHException, and netmiko turns
every SSHException raised during connect into a NetmikoTimeoutException whose message
starts with a generic sentence, so the caller could no longer tell a changed key from a
timeout. Our policy raises HostKeyChangedError (not an SSHException), which netmiko
lets through untouched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import threading
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry

__all__ = [
    "POLICIES",
    "HostKeyError",
    "HostKeyChangedError",
    "HostKeyUnknownError",
    "KnownHostsFileError",
    "KnownHosts",
    "default_state_dir",
    "default_known_hosts_path",
    "host_key_name",
    "fingerprint",
    "host_key_policy",
    "apply_host_key_policy",
    "explain_bad_host_key",
]

log = logging.getLogger(__name__)

POLICIES = ("tofu", "strict", "accept-any")


def default_state_dir() -> Path:
    """$COLLECTOR_STATE, else $XDG_STATE_HOME/collector, else ~/.local/state/collector."""
    explicit = os.environ.get("COLLECTOR_STATE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "collector"


def default_known_hosts_path() -> Path:
    return default_state_dir() / "known_hosts"


def host_key_name(host: str, port: int) -> str:
    """The known_hosts name for a host and port, as OpenSSH and paramiko spell it."""
    return host if int(port) == 22 else f"[{host}]:{int(port)}"


def fingerprint(key: paramiko.PKey) -> str:
    """`SHA256:<base64 without padding>`, the form `ssh-keygen -lf` prints."""
    return key.fingerprint


class HostKeyError(Exception):
    """Base class: the router's host key was not accepted."""


class HostKeyChangedError(HostKeyError):
    """The router offered a key other than the one recorded for it."""

    def __init__(
        self,
        host: str,
        port: int,
        known_fingerprint: str,
        offered_fingerprint: str,
        *,
        known_type: str | None = None,
        offered_type: str | None = None,
        known_hosts: Path | None = None,
    ):
        self.host, self.port = host, int(port)
        self.known_fingerprint, self.offered_fingerprint = known_fingerprint, offered_fingerprint
        self.known_type, self.offered_type = known_type, offered_type
        self.known_hosts = known_hosts
        known = f"{known_type} {known_fingerprint}" if known_type else known_fingerprint
        offered = f"{offered_type} {offered_fingerprint}" if offered_type else offered_fingerprint
        where = f" in {known_hosts}" if known_hosts else ""
        super().__init__(
            f"host key for {host}:{self.port} has CHANGED: known {known}{where}, offered {offered}; "
            "refusing to connect (a man in the middle, or the router's key was regenerated: "
            "if you are sure, remove the old entry and connect again)"
        )


class HostKeyUnknownError(HostKeyError):
    """Policy `strict` and no key recorded for the router."""

    def __init__(self, host: str, port: int, offered_fingerprint: str, *, offered_type: str | None = None,
                 known_hosts: Path | None = None):
        self.host, self.port, self.offered_fingerprint = host, int(port), offered_fingerprint
        self.offered_type, self.known_hosts = offered_type, known_hosts
        offered = f"{offered_type} {offered_fingerprint}" if offered_type else offered_fingerprint
        where = f" {known_hosts}" if known_hosts else " the known_hosts file"
        super().__init__(
            f"host key for {host}:{self.port} is unknown ({offered}) and host_key_policy is strict; "
            f"add it to{where} after checking it, or use tofu"
        )


class KnownHostsFileError(HostKeyError):
    """The tool's known_hosts file (or its folder) cannot be read or written.

    Not an OSError on purpose: netmiko turns every OSError raised during connect into
    "TCP connection to device failed", which the session layer would report as a refused
    connection."""

    def __init__(self, path: Path, action: str, error: OSError):
        self.path, self.action = path, action
        reason = error.strerror or type(error).__name__
        super().__init__(
            f"known_hosts file {path} cannot be {action}: {reason} (fix the permissions of the state "
            "folder, or point COLLECTOR_STATE at a writable one)"
        )


# One lock per file for the whole process, whatever KnownHosts objects point at it.
_LOCKS: dict[Path, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.RLock())


class KnownHosts:
    """An OpenSSH-format known_hosts file owned by the tool.

    Reads are cached until the file changes on disk. Writes hold a thread lock and an
    flock on `<file>.lock` (a cron run and the daemon may share the file), re-read the
    file, append, and atomically replace it, so lines the tool does not understand
    (other key types, markers, comments) are kept."""

    def __init__(self, path: Path):
        self.path = Path(path).expanduser()
        self._lock = _lock_for(Path(os.path.abspath(self.path)))
        self._cache: _KeyIndex | None = None
        self._cache_stamp: tuple[int, int] | None = None

    @classmethod
    def default(cls) -> "KnownHosts":
        return cls(default_known_hosts_path())

    def __repr__(self) -> str:
        return f"KnownHosts({str(self.path)!r})"

    # -- reading ----------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except (FileNotFoundError, NotADirectoryError):  # absent: the first write says why it fails
            return None
        except OSError as exc:
            raise KnownHostsFileError(self.path, "read", exc) from None
        return (st.st_mtime_ns, st.st_size)

    def _keys(self) -> "_KeyIndex":
        with self._lock:
            stamp = self._stamp()
            if self._cache is None or stamp != self._cache_stamp:
                self._cache = self._parse(self._read_text())
                self._cache_stamp = stamp
            return self._cache

    def _read_text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return ""
        except OSError as exc:
            raise KnownHostsFileError(self.path, "read", exc) from None

    @staticmethod
    def _parse(text: str) -> "_KeyIndex":
        index = _KeyIndex()
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith(("#", "@")):  # @cert-authority / @revoked: not ours
                continue
            try:
                entry = HostKeyEntry.from_line(line, lineno)
            except (paramiko.SSHException, ValueError):
                continue
            if entry is None:  # key type paramiko cannot load
                continue
            for name in entry.hostnames:
                index.add(name, entry.key)
        return index

    def lookup(self, host: str, port: int) -> dict[str, paramiko.PKey]:
        """Recorded keys for the router, by key type (empty when unknown)."""
        return self._keys().lookup(host_key_name(host, port))

    # -- writing ----------------------------------------------------------------------

    def add(self, host: str, port: int, key: paramiko.PKey) -> None:
        """Record a key. A no-op when the same key is already recorded; a different key
        of the same type already recorded raises HostKeyChangedError (never replaced
        silently)."""
        name = host_key_name(host, port)
        with self._lock, self._file_lock():
            # The cached index is re-read only when the file changed on disk, so recording
            # the keys of a whole fleet on first contact stays linear, not quadratic.
            index = self._keys()
            same_type = index.lookup(name).get(key.get_name())
            if same_type is not None:
                if same_type == key:
                    return
                raise HostKeyChangedError(host, port, fingerprint(same_type), fingerprint(key),
                                          known_type=same_type.get_name(), offered_type=key.get_name(),
                                          known_hosts=self.path)
            text = self._read_text()
            if text and not text.endswith("\n"):
                text += "\n"
            text += f"{name} {key.get_name()} {key.get_base64()}\n"
            try:
                self._replace(text)
            except OSError as exc:
                raise KnownHostsFileError(self.path, "written", exc) from None
            index.add(name, key)
            self._cache, self._cache_stamp = index, self._stamp()

    def remove(self, host: str, port: int) -> int:
        """Forget every plainly written key of the router (after a legitimate key
        change). Returns how many lines were removed. Hashed entries are left alone."""
        name = host_key_name(host, port)
        with self._lock, self._file_lock():
            lines = self._read_text().splitlines(keepends=True)
            kept, removed = [], 0
            for line in lines:
                fields = line.split()
                names = fields[0].split(",") if fields and not line.lstrip().startswith(("#", "@")) else []
                if name in names:
                    rest = [n for n in names if n != name]
                    removed += 1
                    if rest:
                        kept.append(" ".join([",".join(rest)] + fields[1:]) + "\n")
                    continue
                kept.append(line)
            if removed:
                self._replace("".join(kept))
            return removed

    def _file_lock(self):
        return _FileLock(self.path.with_name(self.path.name + ".lock"))

    def _replace(self, text: str) -> None:
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        self._cache = None


class _FileLock:
    """flock on a side file, so other processes writing the same known_hosts wait."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> "_FileLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KnownHostsFileError(self.path.with_name(self.path.name.removesuffix(".lock")), "written", exc) from None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------------------------------
# Policies


class _CheckedPolicy(paramiko.MissingHostKeyPolicy):
    """Compares the offered key with the store. Installed per connection, for one
    router (host, port)."""

    policy = ""

    def __init__(self, store: KnownHosts, host: str, port: int):
        self.store, self.host, self.port = store, host, int(port)

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        known = self.store.lookup(self.host, self.port)
        if known:
            same_type = known.get(key.get_name())
            if same_type is not None and same_type == key:
                return
            recorded = same_type if same_type is not None else next(iter(known.values()))
            client.close()
            raise HostKeyChangedError(self.host, self.port, fingerprint(recorded), fingerprint(key),
                                      known_type=recorded.get_name(), offered_type=key.get_name(),
                                      known_hosts=self.store.path)
        self.unknown(client, key)

    def unknown(self, client: paramiko.SSHClient, key: paramiko.PKey) -> None:
        raise NotImplementedError


class _TrustOnFirstUse(_CheckedPolicy):
    policy = "tofu"

    def unknown(self, client: paramiko.SSHClient, key: paramiko.PKey) -> None:
        try:
            self.store.add(self.host, self.port, key)
        except HostKeyChangedError:
            client.close()  # another connection recorded a different key meanwhile
            raise
        log.warning("%s:%d: first connection, recorded host key %s %s in %s (trust on first use)",
                    self.host, self.port, key.get_name(), fingerprint(key), self.store.path)


class _Strict(_CheckedPolicy):
    policy = "strict"

    def unknown(self, client: paramiko.SSHClient, key: paramiko.PKey) -> None:
        client.close()
        raise HostKeyUnknownError(self.host, self.port, fingerprint(key), offered_type=key.get_name(),
                                  known_hosts=self.store.path)


class _AcceptAny(paramiko.MissingHostKeyPolicy):
    policy = "accept-any"

    def __init__(self, host: str, port: int):
        self.host, self.port = host, int(port)

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        log.debug("%s:%d: host key %s %s accepted without check (accept-any)", self.host, self.port,
                  key.get_name(), fingerprint(key))


def host_key_policy(policy: str, store: KnownHosts, host: str, port: int) -> paramiko.MissingHostKeyPolicy:
    """The paramiko policy object for one router."""
    if policy == "tofu":
        return _TrustOnFirstUse(store, host, port)
    if policy == "strict":
        return _Strict(store, host, port)
    if policy == "accept-any":
        return _AcceptAny(host, port)
    raise ValueError(f"unknown host_key_policy {policy!r} (expected {', '.join(POLICIES)})")


def apply_host_key_policy(client: paramiko.SSHClient, host: str, port: int, policy: str, store: KnownHosts) -> None:
    """Make `client` check the router's key against `store` under `policy`; call before
    `client.connect(host, port, ...)` with the same host and port.

    Keys the client already holds for that name are dropped so that the policy always
    decides (see the module doc). Do not load the system known_hosts into the client:
    paramiko would check those itself and report a mismatch as an SSHException."""
    chosen = host_key_policy(policy, store, host, port)
    held = client.get_host_keys()
    name = host_key_name(host, port)
    while held.lookup(name) is not None:
        del held[name]
    client.set_missing_host_key_policy(chosen)


def explain_bad_host_key(exc: paramiko.BadHostKeyException, host: str, port: int,
                         store: KnownHosts | None = None) -> HostKeyChangedError:
    """The same error in our words, for code that let paramiko check the key itself."""
    return HostKeyChangedError(host, port, fingerprint(exc.expected_key), fingerprint(exc.key),
                               known_type=exc.expected_key.get_name(), offered_type=exc.key.get_name(),
                               known_hosts=store.path if store else None)


class _KeyIndex:
    """known_hosts entries by name. Plain names are a dict lookup; hashed (`|1|...`)
    entries, rare in a tool-owned file, are matched one by one by paramiko."""

    def __init__(self) -> None:
        self._plain: dict[str, dict[str, paramiko.PKey]] = {}
        self._hashed = paramiko.HostKeys()

    def add(self, name: str, key: paramiko.PKey) -> None:
        if name.startswith("|1|"):
            self._hashed.add(name, key.get_name(), key)
        else:
            self._plain.setdefault(name, {})[key.get_name()] = key

    def lookup(self, name: str) -> dict[str, paramiko.PKey]:
        found = dict(self._plain.get(name, {}))
        if len(self._hashed):
            hashed = self._hashed.lookup(name)
            if hashed is not None:
                found = {**dict(hashed.items()), **found}
        return found
