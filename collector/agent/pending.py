"""Records kept in memory and written together: one transaction for a burst, instead of a
synced write per record on the thread that made it (the loop's counted lines, the syslog
thread's evidence). A crash loses what is kept; the routers' own logs still hold it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")

KEPT_AT_MOST = 256  # records kept before the one that adds the last writes them all


class PendingWrites(Generic[Item]):
    """Items kept until `flush` hands them all to `write` (one call: one transaction), or
    until KEPT_AT_MOST are kept, when the call that adds the last one flushes.

    Threads: any; `_lock` guards the list and is never held while writing. Invariant: an
    item is handed to `write` once, in the order it was added; `write`'s error goes to the
    caller of `flush` (or `add`), and the items it was given are not kept again."""

    def __init__(self, write: Callable[[list[Item]], object]):
        self._write = write
        self._lock = threading.Lock()
        self._items: list[Item] = []

    def add(self, item: Item) -> None:
        with self._lock:
            self._items.append(item)
            full = len(self._items) >= KEPT_AT_MOST
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        if items:
            self._write(items)
