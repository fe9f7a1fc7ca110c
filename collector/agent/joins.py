"""Flows joining one armed router at the same moment are joined in one session.

`RouterTurns` lets the joins queued for a router run side by side once the work before
them is done; here they meet, and one of them joins them all (`Responder.join_many`):
one session, one log read and one applet re-entry for the lot instead of one each, in
turn, which made the fifth flow of a busy hub wait seconds for its debugs.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from datetime import timedelta

from collector.core.results import ArmResult
from collector.inventory import Host
from collector.respond.joining import JoinRequest


class JoinBatches:
    """Threads: `join` is called from the worker's end threads. The first caller for a
    router leads: it joins every request waiting for that router, batch after batch (a
    request that comes while a batch runs goes into the next), until none is left; the
    other callers wait for their own result. `_lock` guards `_waiting` and `_leading`
    and is never held while a router is talked to.

    Invariants: one batch at a time per router (`join_many` must not run twice at once
    on one router); every request gets its result, or the exception of its batch."""

    def __init__(self, join_many):
        self._join_many = join_many
        self._lock = threading.Lock()
        self._waiting: dict[str, list[tuple[JoinRequest, Future]]] = {}
        self._leading: set[str] = set()

    def join(self, host: Host, request: JoinRequest, window: timedelta) -> ArmResult:
        mine: Future = Future()
        with self._lock:
            self._waiting.setdefault(host.name, []).append((request, mine))
            lead = host.name not in self._leading
            self._leading.add(host.name)
        if lead:
            self._lead(host, window)
        return mine.result()

    def _lead(self, host: Host, window: timedelta) -> None:
        while True:
            with self._lock:
                batch = self._waiting.pop(host.name, [])
                if not batch:
                    self._leading.discard(host.name)
                    return
            try:
                results = self._join_many(host, [request for request, _future in batch], window)
            except BaseException as exc:  # noqa: BLE001 - each caller re-raises it from its own result
                for _request, future in batch:
                    future.set_exception(exc)
                continue
            for (_request, future), result in zip(batch, results, strict=True):
                future.set_result(result)
