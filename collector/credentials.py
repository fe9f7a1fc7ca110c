"""Credentials that never have to be written in the inventory, and never leak from memory.

A credential value in the inventory (username, password, secret) is one of:

* plain text: `password: lab` (fine for the lab; discouraged for real routers)
* `${VAR}`, whole or embedded: `password: ${ROUTER_PASSWORD}`, `username: ops-${SITE}`
  reads the environment; an unset variable is an error. `$${` stands for a literal `${`.
* `keyring:SERVICE/USER`: the system keyring (`keyring` package with a usable backend),
  e.g. `keyring:collector/netops`. SERVICE may contain `/`; USER is after the last `/`.
* `prompt`: asked once per field and owner (host, group or defaults) on the terminal,
  with echo off for passwords. Needs a TTY; under cron or systemd it is an error.

Resolved values are wrapped in `Secret`, whose repr/str/format show `********`; only
`.reveal()` gives the text, so a secret cannot end up in a log line by accident. Making a
`Secret` also registers its text with the log filter of `collector.redact`, whatever the
source (plain, environment, keyring, prompt): a library that logs what it sends (netmiko
at debug level prints the enable secret as a bytes literal) is cleaned too.
"""

from __future__ import annotations

import getpass
import hmac
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from collector.errors import UserInputError
from collector.redact import register_secret

__all__ = [
    "MASK",
    "Secret",
    "CredentialError",
    "CredentialRef",
    "parse_reference",
    "CredentialResolver",
]

MASK = "********"

_ENV = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEYRING_PREFIX = "keyring:"
PROMPT = "prompt"


class Secret:
    """A credential. Shows as `********` everywhere; `.reveal()` returns the text."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


class CredentialError(UserInputError):
    """A credential could not be obtained. One line, without the secret itself."""


@dataclass(frozen=True)
class CredentialRef:
    """What an inventory credential value asks for."""

    kind: str  # "plain" | "env" | "keyring" | "prompt"
    text: str  # the value as written
    service: str = ""  # keyring only
    user: str = ""  # keyring only

    @property
    def variables(self) -> tuple[str, ...]:
        """Environment variables named by a `${VAR}` value, in order."""
        if self.kind != "env":
            return ()
        return tuple(m.group(1) for m in _ENV.finditer(self.text) if m.group(0) != "$${")


def parse_reference(text: str) -> CredentialRef:
    """Classify a credential value; ValueError (one line) for a malformed reference."""
    if text == PROMPT:
        return CredentialRef("prompt", text)
    if text.startswith(KEYRING_PREFIX):
        spec = text[len(KEYRING_PREFIX):]
        service, slash, user = spec.rpartition("/")
        if not slash or not service or not user:
            raise ValueError(f"keyring reference must be keyring:SERVICE/USER, got {text!r}")
        return CredentialRef("keyring", text, service=service, user=user)
    has_env = False
    for match in _ENV.finditer(text):
        if match.group(0) == "$${":
            continue
        name = match.group(1)
        if not _ENV_NAME.match(name):
            raise ValueError(f"bad environment variable name in ${{{name}}}")
        has_env = True
    if has_env:
        return CredentialRef("env", text)
    if "$${" in text:
        return CredentialRef("env", text)  # only escapes: still needs unescaping
    return CredentialRef("plain", text)


def _keyring_lookup(service: str, user: str) -> str | None:
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        raise CredentialError("the keyring package is not installed (pip install keyring)") from None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        raise CredentialError(
            f"no usable keyring backend ({type(backend).__module__}.{type(backend).__name__}); "
            "configure one (e.g. Secret Service, or keyrings.alt) or use ${ENV_VAR}"
        )
    return keyring.get_password(service, user)


def _terminal_prompt(message: str, hidden: bool) -> str:
    if not sys.stdin.isatty():
        raise CredentialError("'prompt' needs an interactive terminal (stdin is not a TTY); use ${ENV_VAR} or keyring:SERVICE/USER")
    try:
        return getpass.getpass(message) if hidden else input(message)
    except EOFError:
        raise CredentialError("no answer at the prompt") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


class CredentialResolver:
    """Turns inventory credential values into text. One per inventory load: answers
    from the keyring and the prompt are cached so each is asked only once.

    `prompt(message)` replaces the terminal prompt (tests, GUIs); when given it is used
    whether or not a TTY exists. `environ` defaults to os.environ, `keyring_lookup` to
    the `keyring` package."""

    def __init__(
        self,
        *,
        prompt: Callable[[str], str] | None = None,
        environ: Mapping[str, str] | None = None,
        keyring_lookup: Callable[[str, str], str | None] | None = None,
    ):
        self._prompt = prompt
        self._environ = environ if environ is not None else os.environ
        self._keyring_lookup = keyring_lookup or _keyring_lookup
        self._asked: dict[tuple[str, str], str] = {}
        self._keyring: dict[tuple[str, str], str] = {}

    def resolve(self, value: str, *, field: str, owner: str, hidden: bool = True) -> str:
        """The text for `value`. `owner` names where the value is defined ("host r1",
        "group hub", "defaults"): a `prompt` is asked once per (field, owner).
        CredentialError says what is missing, never the secret."""
        try:
            ref = parse_reference(value)
        except ValueError as exc:
            raise CredentialError(str(exc)) from None
        if ref.kind == "plain":
            return value
        if ref.kind == "env":
            return self._expand_env(value)
        if ref.kind == "keyring":
            key = (ref.service, ref.user)
            if key not in self._keyring:
                try:
                    found = self._keyring_lookup(ref.service, ref.user)
                except CredentialError:
                    raise
                except Exception as exc:  # backends raise their own types (dbus, locked keychain, ...)
                    raise CredentialError(f"keyring lookup failed: {type(exc).__name__}: {_one_line(str(exc))}") from None
                if found is None:
                    raise CredentialError(f"no keyring entry for service {ref.service!r} user {ref.user!r}")
                self._keyring[key] = found
            return self._keyring[key]
        key = (field, owner)
        if key not in self._asked:
            message = f"{field} for {owner}: "
            if self._prompt is not None:
                answer = self._prompt(message)
            else:
                answer = _terminal_prompt(message, hidden)
            if not isinstance(answer, str):
                raise CredentialError("the prompt returned no text")
            self._asked[key] = answer
        return self._asked[key]

    def _expand_env(self, value: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name not in self._environ:
                raise CredentialError(f"environment variable {name} is not set")
            return self._environ[name]

        return _ENV.sub(substitute, value)
