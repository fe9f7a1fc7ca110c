"""Work asked of one router by several incidents at the same moment, done once for all.

Flows queued behind one arm of a hub start together (`RouterTurns` lets joins of a router
run side by side); here they meet, and one of them does the work of all of them: joining
them in one session (`Responder.join_many`: one log read and one applet re-entry instead
of one of each, in turn, which made the fifth flow of a busy hub wait seconds for its
debugs), and reading the receiver's log once to mark them all armed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from collector.inventory import Host

Request = TypeVar("Request")
Result = TypeVar("Result")


class RouterBatches(Generic[Request, Result]):
    """`run(host, requests) -> one result per request`, for the requests waiting at once.

    Threads: `submit` is called from the worker's threads. The first caller for a router
    leads: it runs every request waiting for that router, batch after batch (a request
    that comes while a batch runs goes into the next: the work must start after it was
    asked for), until none is left; the other callers wait for their own result. `_lock`
    guards `_waiting`, `_leading` and `_expected` and is never held while a router is talked to.

    A caller that knows more requests for its router are on their way (flows joining it,
    which read its log after their own steps) says how many (`expect`): the next batch
    waits for them, `within` seconds at most, so that one run serves them all.

    Invariants: one batch at a time per router; every request gets its result, or the
    exception of its batch; a batch waits for expected requests only until its deadline."""

    def __init__(self, run: Callable[[Host, Sequence[Request]], Sequence[Result]]):
        self._run = run
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._waiting: dict[str, list[tuple[Request, Future]]] = {}
        self._leading: set[str] = set()
        self._expected: dict[str, tuple[int, float]] = {}  # router -> (requests the next batch waits for, until)

    def submit(self, host: Host, request: Request, *, expect: int = 0, within: float = 0.0) -> Result:
        mine: Future = Future()
        with self._lock:
            self._waiting.setdefault(host.name, []).append((request, mine))
            self._expect(host.name, expect, within)
            lead = host.name not in self._leading
            self._leading.add(host.name)
            self._arrived.notify_all()
        if lead:
            self._lead(host)
        return mine.result()

    def expect(self, router: str, count: int, within: float) -> None:
        """`count` requests for `router` are on their way (flows that start joining it now):
        its next batch waits for them, `within` seconds at most."""
        with self._lock:
            self._expect(router, count, within)

    def _expect(self, router: str, count: int, within: float) -> None:
        """Under `_lock`: the next batch of `router` waits for `count` requests more than
        are waiting now, until `within` seconds from now at most."""
        if count <= 0:
            return
        wanted, until = self._expected.get(router, (0, 0.0))
        self._expected[router] = (max(wanted, len(self._waiting.get(router, ())) + count),
                                  max(until, time.monotonic() + within))

    def _lead(self, host: Host) -> None:
        while True:
            with self._lock:
                while True:  # requests arriving meanwhile may raise what is expected
                    wanted, until = self._expected.get(host.name, (0, 0.0))
                    left = until - time.monotonic()
                    if len(self._waiting.get(host.name, ())) >= wanted or left <= 0:
                        break
                    self._arrived.wait(left)
                self._expected.pop(host.name, None)
                batch = self._waiting.pop(host.name, [])
                if not batch:
                    self._leading.discard(host.name)
                    return
            try:
                results = self._run(host, [request for request, _future in batch])
            except BaseException as exc:  # noqa: BLE001 - each caller re-raises it from its own result
                for _request, future in batch:
                    future.set_exception(exc)
                continue
            for (_request, future), result in zip(batch, results, strict=True):
                future.set_result(result)
