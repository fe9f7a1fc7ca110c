"""An incident's timeline: every line its reads of both routers' logs held, once, in one
order on the agent's clock.

Sized for busy routers: a full 10 MB buffer is about 69,000 records, read up to three
times per incident (trigger, before arming, at capture). The records are parsed as they
are walked (`LogRecords`), never held as a list, and each row is kept as a short list of
its values; a row becomes the dict of the bundle's `timeline.jsonl` only when it is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, overload

from collector.clocks import RouterClock, clock_from_records
from collector.core.results import LogSnapshot
from collector.detect.logline import LogLine, LogRecords

SOURCES = ("trigger", "pre-arm read", "capture")  # in the order the reads are added
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)

# A row: its sort key first (agent time, source, place in its read), then its values.
_TIME, _ORDER, _N, _ROUTER, _SEEN, _DEVICE_TIME, _AGENT_TIME, _INFERRED, _MNEMONIC, _LINE = range(10)


class Timeline(Sequence[Mapping[str, Any]]):
    """The rows in time order; each is read as a dict (`router`, `role`, `source`,
    `seen_in`, `device_time`, `agent_time`, `time_inferred`, `mnemonic`, `line`), made
    anew at each read: changing one changes nothing here."""

    def __init__(self, rows: list[list], roles: Mapping[str, str], receiver: str | None):
        self._rows = rows
        self._roles = dict(roles)
        self._receiver = receiver

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._dict(row) for row in self._rows[index]]
        return self._dict(self._rows[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self._rows:
            yield self._dict(row)

    def _dict(self, row: list) -> dict[str, Any]:
        router = row[_ROUTER]
        seen = row[_SEEN]
        agent_time = row[_AGENT_TIME]
        return {"router": router, "role": self._roles.get(router, "receiver" if router == self._receiver else "sender"),
                "source": SOURCES[row[_ORDER]], "seen_in": [s for i, s in enumerate(SOURCES) if seen & (1 << i)],
                "device_time": row[_DEVICE_TIME], "agent_time": agent_time.isoformat() if agent_time else None,
                "time_inferred": row[_INFERRED], "mnemonic": row[_MNEMONIC], "line": row[_LINE]}


def build_timeline(captures: Sequence, *, year: int, pre_arm: Sequence[LogSnapshot] = (),
                   trigger_lines: Sequence[str] = (), receiver: str | None = None) -> Timeline:
    """Every line the incident saw, once, in one order on the agent's clock.

    `captures` are the routers' `RouterCapture`s. `source` says where a line was first
    seen: `trigger` (the flow's lines as the agent read them), `pre-arm read` (a router's
    log just before arming), `capture` (its log at capture); `seen_in` lists every one of
    those reads that held it (a line still in the buffer at capture was there before
    arming too). Each router's stamps are put on the agent's clock through that router's
    `show clock` and configuration (`collector.clocks`: its zone, whether log and debug
    stamps are UTC or local, its skew), and stamps without a year take the router's own
    year, so two boxes in different zones, or on either side of New Year, still
    interleave. `year` is used only for a router whose clock is unknown."""
    builder = _Builder(captures, year)
    if receiver is not None and trigger_lines:
        builder.add(0, receiver, "\n".join(trigger_lines))
    for snapshot in pre_arm:
        builder.add(1, snapshot.router, snapshot.text)
    for capture in captures:
        record = capture.output("show logging")
        if record is not None:
            builder.add(2, capture.router, record.text or "")
    rows = builder.rows
    rows.sort(key=lambda r: (r[_TIME], r[_ORDER], r[_N]))  # stable: ties keep the order the reads were added
    return Timeline(rows, {c.router: c.role for c in captures}, receiver)


class _Builder:
    """The rows of each read as it is added, a line seen in an earlier read of the same
    router merged into that read's row."""

    def __init__(self, captures: Sequence, year: int):
        self.year = year
        self.clocks: dict[str, RouterClock | None] = {
            c.router: clock_from_records((r.command, r.text, r.started, r.ended) for r in c.commands) for c in captures}
        self.offsets = {c.router: c.clock_offset for c in captures}
        self.rows: list[list] = []
        # router -> line -> its row, or its rows (oldest first) when the line repeats
        self.by_text: dict[str, dict[str, list | _Rows]] = {}
        self.mnemonics: dict[str, str] = {}  # one string per mnemonic, however many rows carry it

    def add(self, order: int, router: str, text: str) -> None:
        known = self.by_text.setdefault(router, {})
        used: dict[str, int] = {}  # line -> how many of its earlier rows this read matched
        previous: datetime | None = None  # the last stamped line above, in buffer order
        for n, line in enumerate(self._records(router, text)):
            key = line.raw.strip()
            entry = known.get(key)
            earlier = () if entry is None else entry if isinstance(entry, _Rows) else (entry,)
            count = used.get(key, 0)
            used[key] = count + 1
            if count < len(earlier):  # the same line, already listed from an earlier read
                earlier[count][_SEEN] |= 1 << order
                continue
            agent_time = self._on_agent_clock(router, line)
            # A line printed without a stamp (`no service timestamps debug`, the default for
            # debugs on many routers) was logged after the stamped line above it: it takes
            # that time, marked as inferred, so it sorts where the buffer put it.
            inferred = agent_time is None and previous is not None
            if agent_time is not None:
                previous = agent_time
            elif inferred:
                agent_time = previous
            mnemonic = line.mnemonic if line.mnemonic is None else self.mnemonics.setdefault(line.mnemonic, line.mnemonic)
            row = [agent_time or _EARLIEST, order, n, router, 1 << order, line.timestamp_text, agent_time, inferred,
                   mnemonic, line.raw]
            if entry is None:
                known[key] = row
            elif isinstance(entry, _Rows):
                entry.append(row)
            else:
                known[key] = _Rows((entry, row))
            self.rows.append(row)

    def _records(self, router: str, text: str) -> LogRecords:
        clock = self.clocks.get(router)
        records = LogRecords(text, year=clock.now_in(None).year if clock else self.year)
        if clock is None:
            return records
        newest = records.newest_unprinted
        if newest is not None and newest.timestamp is not None:
            wanted = clock.year_of_newest(newest.timestamp, newest.tz, "log" if newest.mnemonic else "debug")
            if wanted != newest.timestamp.year:
                records = LogRecords(text, year=wanted)
        return records

    def _on_agent_clock(self, router: str, line: LogLine) -> datetime | None:
        if line.timestamp is None:
            return None
        clock = self.clocks.get(router)
        if clock is None:  # no `show clock`: the skew as recorded, stamps read as UTC
            stamp = line.timestamp.replace(tzinfo=timezone.utc) if line.timestamp.tzinfo is None else line.timestamp
            return stamp - timedelta(seconds=self.offsets.get(router) or 0.0)
        return clock.to_agent(line.timestamp, line.tz, "log" if line.mnemonic else "debug",
                              skew_seconds=self.offsets.get(router))


class _Rows(list):
    """The rows of a line that a read holds more than once (a list, told apart from a row)."""
