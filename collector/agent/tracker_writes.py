"""When the flow tracker's state is written to the store (`TrackerWrites`, loop thread only)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from collector.errors import StateStoreError
from collector.state.trackers import SavedTracker

log = logging.getLogger(__name__)

TRACKER_SAVE_EVERY = 1.0  # seconds: the most the stored tracker lags the loop's while lines come


class TrackerWrites:
    """When the tracker's state is written to the store, and what the last write left there.

    Not after every line: with thousands of windows open (scanners' one-line flows on a
    large fleet) writing per line kept the loop busy for minutes while arms waited. At most
    every TRACKER_SAVE_EVERY while lines come, and at each `flush` (the loop calls it
    whenever its inbox runs dry, and when it ends). Each write after the first gives the
    store what the one before left (`SavedTracker`), so it writes only what changed. A write
    the store refuses is tried again at the next flush, against what the store still
    holds; the loop goes on.

    `write(since)` saves the tracker given the last save's `SavedTracker` (None: whole)
    and returns the new one (None when nothing is written, as in a dry run)."""

    def __init__(self, write: Callable[[SavedTracker | None], SavedTracker | None]):
        self._write = write
        self._saved: SavedTracker | None = None
        self._dirty = False
        self._written_at = float("-inf")
        self._refused: str | None = None  # the store's last refusal, said once

    def changed(self) -> None:
        self._dirty = True
        if time.monotonic() - self._written_at >= TRACKER_SAVE_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._dirty:
            try:
                self._saved = self._write(self._saved)
            except StateStoreError as exc:  # kept dirty: written at the next flush (the recorder says why)
                if str(exc) != self._refused:
                    log.warning("the tracker's state was not written: %s", exc)
                self._refused, self._written_at = str(exc), time.monotonic()
                return
            self._refused = None
        self._dirty = False
        self._written_at = time.monotonic()
