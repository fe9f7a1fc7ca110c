"""A scripted stand-in for routers: the `SessionSource` / `RouterSession` fake for unit tests.

Like httpx's MockTransport: the code under test talks to routers only through the session
protocol, so a test scripts what each router answers and reads back what was sent.

    routers = FakeRouters({"hub1": {"show clock": "*10:00:00.000 UTC Sun Dec 6 2026"}})
    with routers.session(host) as s: s.run("show clock")
    routers.sent("hub1")  ->  ["show clock"]

An answer is a string (the output), an exception instance (raised when the command is
sent), or a callable `(command) -> str | Exception` for answers that change over time.
Commands not in the script answer `default` ("" unless set). `configure` records
`configure terminal`, each line and `end`, like the real session.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from collector.command_results import CommandResult
from collector.sessions import CommandRefused, SessionError

Answer = str | BaseException | Callable[[str], "str | BaseException"]

_IOS_REFUSAL = re.compile(r"^% (Invalid input detected|Incomplete command|Ambiguous command)", re.M)


@dataclass
class FakeRouter:
    name: str
    script: dict[str, Answer] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], Answer]] = field(default_factory=list)
    default: Answer = ""
    open_error: BaseException | None = None  # raised by `session()` (cannot connect)
    sent: list[str] = field(default_factory=list)
    read_timeouts: list[float | None] = field(default_factory=list)  # the read_timeout of each command sent
    batches: list[list[str]] = field(default_factory=list)  # the commands of each `run_many`, as typed ahead
    opened: int = 0

    def answer(self, command: str) -> str:
        self.sent.append(command)
        reply: Answer | None = self.script.get(command)
        if reply is None:
            reply = next((a for p, a in self.patterns if p.search(command)), self.default)
        if callable(reply) and not isinstance(reply, BaseException):
            reply = reply(command)
        if isinstance(reply, BaseException):
            raise reply
        return reply


class FakeSession:
    """One open session to one scripted router (a `RouterSession`)."""

    def __init__(self, host, router: FakeRouter):
        self.host = host
        self._router = router

    def run(self, command: str, *, read_timeout: float | None = None, check: bool = True) -> CommandResult:
        started = datetime.now(timezone.utc)
        self._router.read_timeouts.append(read_timeout)
        text = self._router.answer(command)
        if check and _IOS_REFUSAL.search(text):
            raise CommandRefused(self.host.name, f"router refused {command!r}", output=text)
        return CommandResult(self.host.name, command, text, started, datetime.now(timezone.utc))

    def run_many(self, commands: Sequence[str], *, read_timeout: float | None = None) -> list[CommandResult]:
        self._router.batches.append(list(commands))
        return [self.run(command, read_timeout=read_timeout, check=False) for command in commands]

    def configure(self, lines: Sequence[str], *, read_timeout: float | None = None) -> list[CommandResult]:
        outputs = [self.run("configure terminal", read_timeout=read_timeout)]
        try:
            for line in lines:
                outputs.append(self.run(line, read_timeout=read_timeout))
        finally:
            outputs.append(self.run("end", read_timeout=read_timeout, check=False))
        return outputs


class FakeRouters:
    """A `SessionSource` over scripted routers, keyed by inventory name."""

    def __init__(self, scripts: Mapping[str, Mapping[str, Answer]] | None = None):
        self.routers: dict[str, FakeRouter] = {}
        self._lock = threading.Lock()
        self._holders: dict[str, set[int]] = {}  # router -> the threads holding a session to it
        for name, script in (scripts or {}).items():
            self.router(name).script.update(script)

    def router(self, name: str) -> FakeRouter:
        return self.routers.setdefault(name, FakeRouter(name))

    def on(self, name: str, pattern: str, answer: Answer) -> None:
        """Answer every command of router `name` matching the regex `pattern`."""
        self.router(name).patterns.append((re.compile(pattern), answer))

    def sent(self, name: str) -> list[str]:
        return list(self.router(name).sent)

    @contextmanager
    def session(self, host) -> Iterator[FakeSession]:
        router = self.router(host.name)
        # The real pool holds a plain lock per router while a session is out: the thread
        # holding one that asks for the same router's session again waits forever.
        me = threading.get_ident()
        with self._lock:
            holders = self._holders.setdefault(host.name, set())
            if me in holders:
                raise AssertionError(f"{host.name}: a second session asked for by the thread holding one "
                                     "(SessionPool would deadlock)")
            holders.add(me)
        try:
            if router.open_error is not None:
                raise router.open_error
            router.opened += 1
            yield FakeSession(host, router)
        finally:
            with self._lock:
                holders.discard(me)


__all__ = ["FakeRouter", "FakeRouters", "FakeSession", "SessionError"]
