"""A router's clock against the agent's: the skew, and what each log stamp means.

IOS keeps its clock in UTC and shows it in the zone of `clock timezone` (and of `clock
summer-time` while that is in force): `show clock` prints local wall time and the zone's
name. Log and debug stamps are in UTC unless `service timestamps log|debug datetime ...
localtime` says local time, and name their zone only with `show-timezone`. So a router
whose `show clock` says CET while its log stamps are UTC is normal, and lining its lines
up with another router's needs both facts: the zone offsets from the configuration, and
which clock each kind of stamp uses.

Where the configuration is not known, stamps are taken to be in the zone `show clock`
prints and that zone as UTC: the skew is then "as seen", consistent with the stamps.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}
_DAYS = {d: i for i, d in enumerate("Mon Tue Wed Thu Fri Sat Sun".split())}
# `*18:22:10.123 CET Tue Mar 12 2024` (`*` or `.`: not synchronised; zone optional on some images)
_SHOW_CLOCK = re.compile(
    r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?\s+(?:([A-Za-z][A-Za-z0-9_+-]{0,15})\s+)?"
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+(\w{3})\s+(\d{1,2})\s+(\d{4})")
# `clock timezone CET 1 0`, `clock timezone IST 5 30`, `clock timezone PST -8`
_TIMEZONE = re.compile(r"^\s*clock timezone\s+(\S+)\s+(-?\d{1,2})(?:\s+(\d{1,2}))?\s*$", re.M)
# `clock summer-time CEST recurring last Sun Mar 2:00 last Sun Oct 3:00 [60]`; `date ...` forms too
_SUMMER = re.compile(r"^\s*clock summer-time\s+(\S+)\s+(recurring|date)\b(.*)$", re.M)
_SERVICE = re.compile(r"^\s*service timestamps\s+(log|debug)\s+(datetime|uptime)\b(.*)$", re.M)
_UTC_NAMES = ("UTC", "GMT", "Z")
FUTURE_SLACK = timedelta(days=1)  # a stamp this far past the router's own "now" belongs to the year before


@dataclass(frozen=True, slots=True)
class RouterClock:
    """What one router's clock said when the agent asked, and how its stamps relate to it.

    `wall` is `show clock` as printed (naive), `zone` its zone name, `asked_at` the agent's
    UTC time at the middle of the question. `zones` maps zone names to UTC offsets (from
    the configuration, plus UTC/GMT). `local_stamps[kind]` (kind "log" or "debug") is True
    for `localtime` stamps, False for UTC ones, None when not known."""

    wall: datetime
    zone: str | None
    asked_at: datetime
    zones: dict[str, timedelta] = field(default_factory=dict)
    local_stamps: dict[str, bool | None] = field(default_factory=dict)
    summer: SummerTime | None = None

    @classmethod
    def read(cls, show_clock: str, before: datetime, after: datetime,
             running_config: str | None = None) -> RouterClock | None:
        """From `show clock` (asked between `before` and `after`, aware UTC) and, when
        known, the running configuration. None when `show clock` cannot be read."""
        parsed = parse_show_clock(show_clock)
        if parsed is None:
            return None
        wall, zone = parsed
        config = running_config or ""
        return cls(wall, zone, before + (after - before) / 2, zone_offsets(config, wall_zone=zone),
                   stamp_kinds(config), SummerTime.read(config))

    def reread(self, show_clock: str, before: datetime, after: datetime) -> RouterClock | None:
        """Another reading of the same router's clock (same configuration)."""
        parsed = parse_show_clock(show_clock)
        if parsed is None:
            return None
        return replace(self, wall=parsed[0], zone=parsed[1], asked_at=before + (after - before) / 2)

    @property
    def router_utc(self) -> datetime:
        """The router's "now" in UTC (naive) when the agent asked."""
        return self.wall - (self.wall_offset or timedelta(0))

    @property
    def wall_offset(self) -> timedelta | None:
        """UTC offset of the zone `show clock` printed; None when it is not known."""
        return self.zones.get(self.zone) if self.zone else timedelta(0)

    @property
    def skew_seconds(self) -> float:
        """Router clock minus agent clock, seconds. With the zone unknown, the wall time
        is taken as UTC (the offset "as seen")."""
        return round((self.router_utc.replace(tzinfo=timezone.utc) - self.asked_at).total_seconds(), 3)

    @property
    def zone_known(self) -> bool:
        return self.wall_offset is not None

    def stamp_offset(self, tz: str | None, kind: str = "log", stamp: datetime | None = None,
                     fold: int = 0) -> timedelta:
        """UTC offset of a stamp printed with zone `tz` (None: no zone printed). Given the
        stamp itself, a local stamp without its zone takes the offset in force at that
        moment, so a buffer across a summer-time change stays in order; in the hour
        repeated when summer time ends, `fold` 0 reads it as summer time (its first pass),
        1 as standard time (its second)."""
        if tz is not None:
            known = self.zones.get(tz)
            if known is not None:
                return known
            if tz == self.zone:
                return self.wall_offset or timedelta(0)
        local = self.local_stamps.get(kind)
        if local is False:
            return timedelta(0)
        # localtime stamps, or nothing known: the stamps are read like the wall clock
        summer = self._local_summer(kind)
        if summer is not None and stamp is not None:
            standard = self.zones[summer.standard_name]
            return standard + summer.extra if summer.in_force(stamp.replace(tzinfo=None), fold) else standard
        return self.wall_offset or timedelta(0)

    def _local_summer(self, kind: str) -> SummerTime | None:
        """The summer-time rules that zone-less stamps of this kind follow: known only for
        `localtime` stamps of a router whose `show clock` prints one of the rules' zones."""
        summer = self.summer
        if (self.local_stamps.get(kind) and summer is not None and self.zone in summer.zone_names
                and summer.standard_name in self.zones):
            return summer
        return None

    def repeated_hour(self, stamp: datetime, tz: str | None, kind: str = "log") -> tuple[datetime, datetime] | None:
        """The repeated hour (local start, end) a stamp printed without its zone falls in,
        or None when it is in none or its offset is not in doubt."""
        summer = self._local_summer(kind) if tz is None else None
        return None if summer is None else summer.repeated(stamp.replace(tzinfo=None))

    def to_agent(self, stamp: datetime, tz: str | None, kind: str = "log", *,
                 skew_seconds: float | None = None, fold: int = 0) -> datetime:
        """A router stamp (naive, as printed) on the agent's clock (aware UTC); the skew
        is this clock's own unless one recorded with the capture is given."""
        skew = self.skew_seconds if skew_seconds is None else skew_seconds
        utc = stamp.replace(tzinfo=None) - self.stamp_offset(tz, kind, stamp, fold)
        return utc.replace(tzinfo=timezone.utc) - timedelta(seconds=skew)

    def now_in(self, tz: str | None, kind: str = "log") -> datetime:
        """The router's "now" as its stamps of that zone and kind print it (naive)."""
        return self.router_utc + self.stamp_offset(tz, kind)

    def year_of_newest(self, newest: datetime, tz: str | None, kind: str = "log") -> int:
        """The year of the buffer's newest stamp, which printed no year: the router's own
        year in that stamp's zone, or the year before when the stamp would lie ahead of
        the router's "now" (a January clock reading December lines)."""
        now = self.now_in(tz, kind)
        try:
            candidate = newest.replace(year=now.year)
        except ValueError:  # 29 February, and the router's year has none: a year before
            return now.year - 1
        return now.year - 1 if candidate > now + FUTURE_SLACK else now.year


@dataclass(frozen=True, slots=True)
class SummerTime:
    """`clock summer-time`: when local time is `extra` ahead of the standard zone.

    `recurring` rules are (week, weekday, month, minutes after midnight), week 1-4 or 5 for
    `last`; a bare `recurring` means the US rules (second Sunday of March 2:00 to first
    Sunday of November 2:00), as IOS documents. `date` rules give both instants of one
    year. The start is read in standard time and the end in summer time, as IOS applies
    them. A zone-less stamp in the hour repeated at the end is read as summer time unless
    told it is the second pass (`fold` 1; see `passes`)."""

    name: str
    standard_name: str
    extra: timedelta
    start: tuple[int, int, int, int] | datetime
    end: tuple[int, int, int, int] | datetime

    @property
    def zone_names(self) -> tuple[str, str]:
        return self.standard_name, self.name

    @classmethod
    def read(cls, running_config: str) -> SummerTime | None:
        summer, standard = _SUMMER.search(running_config), _TIMEZONE.search(running_config)
        if summer is None:
            return None
        name, form, words = summer.group(1), summer.group(2), summer.group(3).split()
        standard_name = standard.group(1) if standard else "UTC"
        extra = timedelta(minutes=60)
        try:
            if form == "recurring":
                if not words:
                    return cls(name, standard_name, extra, (2, 6, 3, 120), (1, 6, 11, 120))
            if len(words) not in (8, 9):
                return None
            if len(words) == 9:  # start (4 words), end (4 words), offset in minutes
                extra = timedelta(minutes=int(words.pop()))
            read = _recurring if form == "recurring" else _one_date
            return cls(name, standard_name, extra, read(words[:4]), read(words[4:]))
        except (ValueError, KeyError, IndexError):
            return None  # a form this reader does not know: stamps keep the wall clock's offset

    def in_force(self, local: datetime, fold: int = 0) -> bool:
        """Whether summer time applies to a local wall time (naive, as a stamp prints it);
        in the repeated hour, only on its first pass (`fold` 0)."""
        start, end = self._instant(self.start, local.year), self._instant(self.end, local.year)
        if fold and end - self.extra <= local < end:
            return False
        if start <= end:  # northern hemisphere: summer inside the year
            return start <= local < end
        return local >= start or local < end  # southern: summer across New Year

    def repeated(self, local: datetime) -> tuple[datetime, datetime] | None:
        """The local hour (start, end) shown twice when summer time ends (03:00 CEST goes
        back to 02:00 CET: 02:00-03:00) if `local` is in it, else None."""
        end = self._instant(self.end, local.year)
        return (end - self.extra, end) if end - self.extra <= local < end else None

    @staticmethod
    @lru_cache(maxsize=256)  # asked once per stamp of a buffer: a few rules and years
    def _instant(rule: tuple[int, int, int, int] | datetime, year: int) -> datetime:
        if isinstance(rule, datetime):
            return rule.replace(year=year) if rule.year != year else rule
        week, weekday, month, minutes = rule
        days = [d for d in range(1, calendar.monthrange(year, month)[1] + 1)
                if date(year, month, d).weekday() == weekday]
        day = days[-1] if week == 5 else days[week - 1]
        return datetime.combine(date(year, month, day), time()) + timedelta(minutes=minutes)


def _clock_minutes(word: str) -> int:
    hours, minutes = word.split(":")
    return int(hours) * 60 + int(minutes)


def _recurring(words: list[str]) -> tuple[int, int, int, int]:
    """`last Sun Mar 2:00` / `2 Sunday March 02:00` -> (week, weekday, month, minutes)."""
    week_word, day_word, month_word, clock = words
    week = 5 if week_word.lower() == "last" else 1 if week_word.lower() == "first" else int(week_word)
    if not 1 <= week <= 5:
        raise ValueError(week_word)
    return week, _DAYS[day_word[:3].title()], _MONTHS[month_word[:3].title()], _clock_minutes(clock)


def _one_date(words: list[str]) -> datetime:
    """`Mar 30 2025 2:00` or `30 Mar 2025 2:00` -> that local instant."""
    first, second, year, clock = words[0], words[1], int(words[2]), _clock_minutes(words[3])
    month_word, day = (first, int(second)) if not first.isdigit() else (second, int(first))
    return datetime(year, _MONTHS[month_word[:3].title()], day) + timedelta(minutes=clock)


@dataclass(frozen=True, slots=True)
class ClockTrack:
    """One router's clock read twice in an incident: before arming and at capture.

    A stamp after the later reading takes that reading's skew, one before the earlier
    reading the earlier one's, and one between them is interpolated. Router clocks run at
    the agent's rate, so the two readings agree to a few milliseconds and this changes
    nothing; when they do not (the clock was stepped, or runs at another rate), each line
    still lands between the moments the agent saw around it, in its true order against the
    agent's own times (armed, captured)."""

    earlier: RouterClock | None
    latest: RouterClock
    latest_skew: float | None = None  # a skew recorded with the capture, used instead of the latest's own

    @property
    def _ends(self) -> tuple[datetime, datetime, datetime, datetime] | None:
        """(router UTC, agent UTC) at both readings, all naive; None with one reading."""
        if self.earlier is None:
            return None
        skew = self.latest.skew_seconds if self.latest_skew is None else self.latest_skew
        r0, r1 = self.earlier.router_utc, self.latest.router_utc
        a0 = r0 - timedelta(seconds=self.earlier.skew_seconds)
        return r0, r1, a0, r1 - timedelta(seconds=skew)

    @property
    def runs_forward(self) -> bool:
        ends = self._ends
        return ends is not None and ends[1] > ends[0] and ends[3] > ends[2]

    def to_agent(self, stamp: datetime, tz: str | None, kind: str = "log", fold: int = 0) -> datetime:
        """A router stamp (naive, as printed) on the agent's clock (aware UTC); `fold` as
        in RouterClock.stamp_offset."""
        latest = self.latest.to_agent(stamp, tz, kind, skew_seconds=self.latest_skew, fold=fold)
        if not self.runs_forward:
            return latest
        r0, r1, a0, a1 = self._ends  # type: ignore[misc]
        router_utc = stamp.replace(tzinfo=None) - self.latest.stamp_offset(tz, kind, stamp, fold)
        if router_utc >= r1:
            return latest
        if router_utc <= r0:
            return (router_utc - r0 + a0).replace(tzinfo=timezone.utc)
        return (a0 + (router_utc - r0) * ((a1 - a0) / (r1 - r0))).replace(tzinfo=timezone.utc)

    def _disagrees(self) -> bool:
        """The two readings differ by more than a second (and 5 % of the time between them)."""
        ends = self._ends
        if ends is None:
            return False
        r0, r1, a0, a1 = ends
        agent_s = (a1 - a0).total_seconds()
        return abs((r1 - r0).total_seconds() - agent_s) > max(1.0, 0.05 * abs(agent_s))

    def disagreement(self) -> str | None:
        """A sentence when the two readings disagree, None otherwise."""
        if not self._disagrees():
            return None
        r0, r1, a0, a1 = self._ends  # type: ignore[misc]
        router_s, agent_s = (r1 - r0).total_seconds(), (a1 - a0).total_seconds()
        if not self.runs_forward:
            return (f"its clock moved {router_s:+.1f} s between the reading before arming and the capture's "
                    f"while the agent's moved {agent_s:+.1f} s; its lines are placed by the capture's reading alone, "
                    "and the times of those placed before it are estimates (marked ≈)")
        return (f"its clock advanced {router_s:.1f} s between the reading before arming and the capture's "
                f"while the agent's advanced {agent_s:.1f} s (stepped, or running at another rate); its lines "
                "between the two readings are placed by interpolation, and those logged before the first reading "
                "at the agent's rate from it: their times are estimates (marked ≈)")

    def estimated_before(self) -> datetime | None:
        """The agent time (aware UTC) before which this clock's lines are placed by a guess:
        when the readings disagree, nothing says at what rate the clock ran before the
        first one (a step between the readings: the agent's; the lab's fast clock: its
        own), nor, when it went back, where the step fell. None when the readings agree."""
        if not self._disagrees():
            return None
        _, _, a0, a1 = self._ends  # type: ignore[misc]
        return (a0 if self.runs_forward else a1).replace(tzinfo=timezone.utc)


# In the repeated hour, a zone-less local stamp more than a second (and at most the summer
# shift) behind the stamp above it in the buffer is the clock going back: the second pass.
# Log lines of one router are written in the order they are stamped, to the millisecond.
_BACK_MIN = timedelta(seconds=1)
# Lines may be logged while the capture reads the buffer, after its `show clock`: a stamp
# rules a pass out only when it would lie this far after that reading.
READING_SLACK = timedelta(minutes=5)


def passes(clock: RouterClock, stamps: Iterable[tuple[datetime | None, str | None, str]]) -> list[int | None]:
    """For each (stamp, zone, kind) of one read of a router's log, in buffer order: 0 for
    a stamp read as printed (outside any repeated hour, or on its first pass), 1 for a
    zone-less local stamp on the second pass of the hour repeated when summer time ends,
    None for one whose pass cannot be told.

    Told from the buffer's order: a stamp going back in that hour starts the second pass
    (the stamps of the hour above it were the first); a stamp of that hour printed with the
    standard zone's name (`CET` when `show-timezone` is on for the other kind) does the
    same. Told from the clock reading: a pass that would put the line after the router's
    `show clock` (plus READING_SLACK) cannot be it."""
    stamps = list(stamps)
    out: list[int | None] = [0] * len(stamps)
    summer = clock.summer
    if summer is None or not any(clock._local_summer(kind) for kind in ("log", "debug")):
        return out
    window: tuple[datetime, datetime] | None = None  # the repeated hour the stamps are in
    second = False  # the clock has gone back in it
    above: datetime | None = None  # the last stamp of the hour's first pass, in buffer order
    pending: list[int] = []  # its zone-less stamps whose pass is not known yet
    for i, (stamp, tz, kind) in enumerate(stamps):
        if stamp is None:
            continue
        local = stamp.replace(tzinfo=None)
        if tz is None and clock._local_summer(kind) is None:
            continue  # a UTC stamp: in no doubt, and no sign of the local clock's pass
        if tz is not None and tz not in summer.zone_names:
            continue
        hour = summer.repeated(local)
        if hour != window:  # entered or left a repeated hour: a new stretch
            window, second, above, pending = hour, False, None, []
        if hour is None:
            continue
        if tz is not None or (not second and above is not None and _BACK_MIN < above - local <= summer.extra):
            # a printed zone says which pass this is; a step back is the second pass's start:
            # either way the zone-less stamps above, in this stretch, were on the first pass
            for j in pending:
                out[j] = 0
            pending = []
            if tz == summer.name:
                above = local
                continue
            second = True
            if tz is not None:
                continue
        if second:
            out[i] = 1
        else:
            out[i] = None
            pending.append(i)
            above = local
    if None in out:
        now = clock.router_utc + READING_SLACK
        standard = clock.zones[summer.standard_name]
        for i, p in enumerate(out):
            if p is None and stamps[i][0].replace(tzinfo=None) - standard > now:  # type: ignore[union-attr]
                out[i] = 0  # its second pass would be after the reading: it was the first
    return out


def repeated_hour_text(clock: RouterClock, stamp: datetime, kind: str) -> str:
    """What is in doubt about a stamp `passes` left undecided, said plainly."""
    summer = clock.summer
    hour = clock.repeated_hour(stamp, None, kind)
    if summer is None or hour is None:
        return "at a time its clock showed twice"
    start, end = hour
    return (f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} local time, an hour the router's clock showed twice "
            f"({summer.name}, then {summer.standard_name}): which of the two cannot be told from the log's "
            f"order or the clock reading, so they are placed as {summer.name} and may be {_span(summer.extra)} early")


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return "an hour" if minutes == 60 else f"{minutes} minutes"


def parse_show_clock(text: str) -> tuple[datetime, str | None] | None:
    """`show clock` as (naive wall time, zone name or None); None when unreadable."""
    match = _SHOW_CLOCK.search(text or "")
    if not match:
        return None
    hh, mm, ss, ms, zone, mon, day, year = match.groups()
    if mon not in _MONTHS:
        return None
    try:
        wall = datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss),
                        int((ms or "0").ljust(3, "0")) * 1000)
    except ValueError:
        return None
    return wall, zone


def zone_offsets(running_config: str, *, wall_zone: str | None = None) -> dict[str, timedelta]:
    """Zone name -> UTC offset: UTC/GMT, `clock timezone NAME H [M]`, and the summer-time
    name at the standard offset plus its own (60 minutes unless the line gives another).
    Without a `clock timezone` line IOS keeps UTC, whatever `show clock` calls it."""
    zones = {name: timedelta(0) for name in _UTC_NAMES}
    standard = None
    match = _TIMEZONE.search(running_config)
    if match:
        name, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        standard = timedelta(hours=hours, minutes=minutes if hours >= 0 else -minutes)
        zones[name] = standard
    elif running_config.strip() and wall_zone:
        zones.setdefault(wall_zone, timedelta(0))  # the configuration is known and sets no zone
    summer = _SUMMER.search(running_config)
    if summer:
        rules = SummerTime.read(running_config)
        zones[summer.group(1)] = (standard or timedelta(0)) + (rules.extra if rules else timedelta(minutes=60))
    return zones


def stamp_kinds(running_config: str) -> dict[str, bool | None]:
    """For "log" and "debug": True when stamps are local time, False when UTC, None when
    the configuration does not say (or is not known)."""
    kinds: dict[str, bool | None] = {"log": None, "debug": None}
    if not running_config.strip():
        return kinds
    for kind, style, options in _SERVICE.findall(running_config):
        kinds[kind] = "localtime" in options.split() if style == "datetime" else None
    return kinds


def clock_offset(show_clock: str, before: datetime, after: datetime, running_config: str | None = None) -> float | None:
    """Router clock minus agent clock (seconds), from `show clock` and when it was asked;
    zone-aware when the running configuration is given."""
    clock = RouterClock.read(show_clock, before, after, running_config)
    return None if clock is None else clock.skew_seconds


def clock_from_records(records: Iterable[tuple[str, str | None, datetime, datetime]]) -> RouterClock | None:
    """The clock from a router's recorded commands: (command, text, started, ended)."""
    clock_record = config_text = None
    for command, text, started, ended in records:
        if command == "show clock" and text and clock_record is None:
            clock_record = (text, started, ended)
        elif command.startswith("show running-config") and text and config_text is None:
            config_text = text
    if clock_record is None:
        return None
    return RouterClock.read(*clock_record, running_config=config_text)
