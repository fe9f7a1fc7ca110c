"""The lab's clock: lab time runs at `time_scale` times wall time and can be stepped.

Every timestamp a simulated router prints (log lines, `show clock`, SA lifetimes) comes
from one LabClock, so a test can freeze wall time (`time_scale=0`) and move the whole
lab forward with `step()`.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


def utc_now_naive() -> datetime:
    """Current UTC time without tzinfo, to the millisecond (routers print msec)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


class LabClock:
    """Lab time = start + wall seconds elapsed * time_scale + seconds stepped (naive UTC)."""

    def __init__(self, start: datetime | None = None, time_scale: float = 1.0):
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, not {time_scale}")
        if start is None:
            start = utc_now_naive()
        if start.tzinfo is not None:
            start = start.astimezone(UTC).replace(tzinfo=None)
        self.start = start
        self.time_scale = float(time_scale)
        self._wall0 = time.monotonic()
        self._stepped = 0.0
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        """Lab seconds since `start` (the model works in these floats)."""
        with self._lock:
            return (time.monotonic() - self._wall0) * self.time_scale + self._stepped

    def now(self) -> datetime:
        return self.at(self.elapsed())

    def at(self, elapsed: float) -> datetime:
        """The lab datetime `elapsed` lab seconds after start."""
        return self.start + timedelta(seconds=elapsed)

    def step(self, seconds: float) -> None:
        """Jump lab time forward; the fleet catches up on its next tick()."""
        if seconds < 0:
            raise ValueError(f"the lab clock only moves forward (step {seconds})")
        with self._lock:
            self._stepped += float(seconds)
