"""Work asked of one router by several incidents at the same moment, done once for all.

Flows queued behind one arm of a hub start together (`RouterTurns` lets joins of a router
run side by side); here they meet, and one of them does the work of all of them: joining
them in one session (`Responder.join_many`: one log read and one applet re-entry instead
of one of each, in turn, which made the fifth flow of a busy hub wait seconds for its
debugs), and reading the receiver's log once to mark them all armed.
"""

from __future__ import annotations

import threading
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
    guards `_waiting` and `_leading` and is never held while a router is talked to.

    Invariants: one batch at a time per router; every request gets its result, or the
    exception of its batch."""

    def __init__(self, run: Callable[[Host, Sequence[Request]], Sequence[Result]]):
        self._run = run
        self._lock = threading.Lock()
        self._waiting: dict[str, list[tuple[Request, Future]]] = {}
        self._leading: set[str] = set()

    def submit(self, host: Host, request: Request) -> Result:
        mine: Future = Future()
        with self._lock:
            self._waiting.setdefault(host.name, []).append((request, mine))
            lead = host.name not in self._leading
            self._leading.add(host.name)
        if lead:
            self._lead(host)
        return mine.result()

    def _lead(self, host: Host) -> None:
        while True:
            with self._lock:
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
