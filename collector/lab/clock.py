"""The lab's clock: lab time runs at `time_scale` times wall time and can be stepped.

Every timestamp a simulated router prints (log lines, `show clock`, SA lifetimes) comes
from one LabClock, so a test can freeze wall time (`time_scale=0`) and move the whole
lab forward with `step()`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache


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


# -- time zones ---------------------------------------------------------------------------
# IOS keeps UTC and shows local time through `clock timezone NAME H M` and `clock
# summer-time NAME recurring ...` (Cisco "Basic System Management" configuration guide):
# `show clock` prints local wall time with the zone's name (the summer name while summer
# time is in force); log and debug stamps are local only with `service timestamps ...
# localtime`. A recurring rule starts at a local standard time and ends at a local summer
# time. The lab computes this on its own (not with collector.clocks, which the agent uses
# to read it back), so a mistake in one is not hidden by the same mistake in the other.

Rule = tuple[int, int, int, int]  # (week 1-4 or 5 = last, weekday Mon=0, month, minutes after midnight)
US_START: Rule = (2, 6, 3, 120)  # what a bare `recurring` means: 2nd Sunday of March 2:00
US_END: Rule = (1, 6, 11, 120)  # to the 1st Sunday of November 2:00


@dataclass(frozen=True, slots=True)
class LabZone:
    """One router's `clock timezone` (and `clock summer-time recurring`, if any)."""

    name: str
    hours: int
    minutes: int = 0
    summer_name: str | None = None
    start: Rule = US_START
    end: Rule = US_END
    rule_words: str = ""  # the rule as the running-config prints it after `recurring` ("" = bare)

    @property
    def standard(self) -> timedelta:
        return timedelta(hours=self.hours, minutes=self.minutes if self.hours >= 0 else -self.minutes)

    def config_lines(self) -> list[str]:
        lines = [f"clock timezone {self.name} {self.hours} {self.minutes}"]
        if self.summer_name:
            lines.append(f"clock summer-time {self.summer_name} recurring{' ' + self.rule_words if self.rule_words else ''}")
        return lines

    def local(self, utc: datetime) -> tuple[datetime, str]:
        """Local wall time (naive) and the zone name in force at `utc` (naive UTC)."""
        if self.summer_name and self._summer(utc):
            return utc + self.standard + timedelta(hours=1), self.summer_name
        return utc + self.standard, self.name

    def _summer(self, utc: datetime) -> bool:
        begins, ends = _utc_changes(self, utc.year)
        if begins < ends:  # northern hemisphere
            return begins <= utc < ends
        return utc >= begins or utc < ends  # southern: summer across New Year


@lru_cache(maxsize=256)
def _utc_changes(zone: LabZone, year: int) -> tuple[datetime, datetime]:
    """The UTC instants summer time begins and ends in `year`."""
    begins = _nth_weekday(year, zone.start) - zone.standard
    ends = _nth_weekday(year, zone.end) - zone.standard - timedelta(hours=1)
    return begins, ends


def _nth_weekday(year: int, rule: Rule) -> datetime:
    week, weekday, month, minutes = rule
    first = datetime(year, month, 1)
    day = first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (min(week, 5) - 1))
    if day.month != month:  # a fifth week that month has not: the last
        day -= timedelta(days=7)
    return day + timedelta(minutes=minutes)


# The zones the realistic lab gives its routers (topology "timezones").
ZONES: dict[str, LabZone] = {
    "CET": LabZone("CET", 1, 0, "CEST", (5, 6, 3, 120), (5, 6, 10, 180), "last Sun Mar 2:00 last Sun Oct 3:00"),
    "EST": LabZone("EST", -5, 0, "EDT"),  # bare `recurring`: the US rules
    "AEST": LabZone("AEST", 10, 0, "AEDT", (1, 6, 10, 120), (1, 6, 4, 180), "1 Sun Oct 2:00 1 Sun Apr 3:00"),
    "JST": LabZone("JST", 9, 0),
}


def local_clock_text(zone: LabZone | None, utc: datetime, *, msec: bool = False) -> str:
    """`10:41:07.123 CET Fri Nov 27 2026`: how IOS prints a moment in its own zone
    (`show clock`, `System restarted at`, `Last configuration change at`, login messages)."""
    when, name = zone.local(utc) if zone is not None else (utc, "UTC")
    fraction = f".{when.microsecond // 1000:03d}" if msec else ""
    return f"{when:%H:%M:%S}{fraction} {name} {when:%a %b} {when.day} {when.year}"
