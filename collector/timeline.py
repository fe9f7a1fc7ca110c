"""An incident's timeline: every line its reads of both routers' logs held, once, in one
order on the agent's clock.

Sized for busy routers: a full 10 MB buffer is about 69,000 records, read up to three
times per incident (trigger, before arming, at capture). The records are parsed as they
are walked (`LogRecords`), never held as a list, and a row is no Python object: its
values sit in arrays (its line as a place in the read's text, which the timeline keeps),
and it becomes the dict of the bundle's `timeline.jsonl` only when it is read. Measured
on two 9 MB reads of one router (138,000 rows): 6 Python objects and about 500 bytes
a row before, 44 bytes of arrays a row now.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, overload

from collector.clocks import ClockTrack, RouterClock, clock_from_records, passes, repeated_hour_text
from collector.core.results import LogSnapshot
from collector.detect.logline import LogLine, LogRecords

SOURCES = ("trigger", "pre-arm read", "capture")  # in the order the reads are added
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_NO_TIME = -(2**63)


class _Columns:
    """The rows' values, one array entry per row, in the order the rows were made."""

    def __init__(self) -> None:
        self.time = array("q")  # agent time, microseconds since 1970 UTC; _NO_TIME: none
        self.order = bytearray()  # the read's source (index into SOURCES)
        self.n = array("i")  # the record's place in its read
        self.router = bytearray()  # index into the timeline's routers
        self.seen = bytearray()  # bit i: SOURCES[i] held the line
        self.inferred = bytearray()
        self.mnemonic = array("i")  # index into the timeline's mnemonics; -1: none (a debug line)
        self.text = array("i")  # index into the timeline's texts; -1: the line is in `lines`
        self.start = array("q")
        self.length = array("i")
        self.stamp_at = array("i")  # the device time's place in the line; -1: none, -2: in `stamps`
        self.stamp_length = array("i")
        self.lines: dict[int, str] = {}  # a line that is no piece of its read's text (re-indented)
        self.stamps: dict[int, str] = {}  # a device time that is no piece of its line
        self.ambiguous: dict[int, str] = {}  # a row in the hour repeated when summer time ends, pass unknown
        self.estimated: set[int] = set()  # a row placed by a guess: its clock's two readings disagree

    def __len__(self) -> int:
        return len(self.n)


class Timeline(Sequence[Mapping[str, Any]]):
    """The rows in time order; each is read as a dict (`router`, `role`, `source`,
    `seen_in`, `device_time`, `agent_time`, `time_inferred`, `mnemonic`, `line`,
    `time_ambiguous` for a line whose pass through a repeated hour is unknown, and
    `time_estimated` for one placed before its router's clock readings when they disagree
    (ClockTrack.estimated_before)), made anew at each read: changing one changes nothing here."""

    def __init__(self, columns: _Columns, rows: array, texts: list[str], routers: list[str],
                 mnemonics: list[str], roles: Mapping[str, str], receiver: str | None):
        self._c, self._rows = columns, rows
        self._texts, self._routers, self._mnemonics = texts, routers, mnemonics
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
            return [self._dict(i) for i in self._rows[index]]
        return self._dict(self._rows[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in self._rows:
            yield self._dict(i)

    def _dict(self, i: int) -> dict[str, Any]:
        c = self._c
        router = self._routers[c.router[i]]
        if c.text[i] < 0:
            line = c.lines[i]
        else:
            start = c.start[i]
            line = self._texts[c.text[i]][start:start + c.length[i]]
        at = c.stamp_at[i]
        stamp = None if at == -1 else c.stamps[i] if at == -2 else line[at:at + c.stamp_length[i]]
        t = c.time[i]
        seen = c.seen[i]
        row = {"router": router, "role": self._roles.get(router, "receiver" if router == self._receiver else "sender"),
               "source": SOURCES[c.order[i]], "seen_in": [s for b, s in enumerate(SOURCES) if seen & (1 << b)],
               "device_time": stamp,
               "agent_time": None if t == _NO_TIME else (_EPOCH + timedelta(microseconds=t)).isoformat(),
               "time_inferred": bool(c.inferred[i]), "mnemonic": None if c.mnemonic[i] < 0 else
               self._mnemonics[c.mnemonic[i]], "line": line}
        if i in c.ambiguous:
            row["time_ambiguous"] = c.ambiguous[i]
        if i in c.estimated:
            row["time_estimated"] = True
        return row


def ambiguous_time_notes(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """One sentence per router and repeated hour whose lines' pass could not be told."""
    counts: Counter = Counter((r["router"], r["time_ambiguous"]) for r in rows if r.get("time_ambiguous"))
    return [f"{router}: {count} line{'s' if count != 1 else ''} stamped {text}" for (router, text), count in counts.items()]


def clock_tracks(captures: Sequence, pre_arm: Sequence[LogSnapshot] = ()) -> dict[str, ClockTrack]:
    """Each captured router's clock (`captures`: `RouterCapture`s): the capture's `show
    clock` (with its configuration), and the reading taken before arming where there was one."""
    earlier = {s.router: s for s in pre_arm if s.clock_text and s.clock_asked}
    tracks = {}
    for capture in captures:
        latest = clock_from_records((r.command, r.text, r.started, r.ended) for r in capture.commands)
        if latest is None:
            continue
        snapshot = earlier.get(capture.router)
        first = latest.reread(snapshot.clock_text, *snapshot.clock_asked) if snapshot else None
        tracks[capture.router] = ClockTrack(first, latest, capture.clock_offset)
    return tracks


def build_timeline(captures: Sequence, *, year: int, pre_arm: Sequence[LogSnapshot] = (),
                   trigger_lines: Sequence[str] = (), receiver: str | None = None,
                   pre_arm_lines: bool = True) -> Timeline:
    """Every line the incident saw, once, in one order on the agent's clock.

    `captures` are the routers' `RouterCapture`s. `source` says where a line was first
    seen: `trigger` (the flow's lines as the agent read them), `pre-arm read` (a router's
    log just before arming), `capture` (its log at capture); `seen_in` lists every one of
    those reads that held it (a line still in the buffer at capture was there before
    arming too). Each router's stamps are put on the agent's clock through that router's
    `show clock` and configuration (`collector.clocks`: its zone, whether log and debug
    stamps are UTC or local, its skew), and stamps without a year take the router's own
    year, so two boxes in different zones, or on either side of New Year, still
    interleave; where `show clock` was also read before arming, lines between the two
    readings are interpolated (clocks.ClockTrack). `year` is used only for a router whose
    clock is unknown. `pre_arm_lines` False: the pre-arm reads give their clock readings
    only, not their lines. Rows sort by agent time (none first), then source, then place
    in their read; ties keep the order the reads were added."""
    reads: list[tuple[int, str, str]] = []  # (source, router, text) in the order they are added
    if receiver is not None and trigger_lines:
        reads.append((0, receiver, "\n".join(trigger_lines)))
    for snapshot in pre_arm if pre_arm_lines else ():
        reads.append((1, snapshot.router, snapshot.text))
    for capture in captures:
        record = capture.output("show logging")
        if record is not None:
            reads.append((2, capture.router, record.text or ""))
    last_read = {router: i for i, (_, router, _) in enumerate(reads)}
    builder = _Builder(captures, year, pre_arm)
    for i, (order, router, text) in enumerate(reads):
        builder.add(order, router, text, last=last_read[router] == i)
    return Timeline(builder.columns, builder.sorted_rows(), builder.texts, builder.routers, builder.mnemonics,
                    {c.router: c.role for c in captures}, receiver)


class _Builder:
    """The rows of each read as it is added, a line seen in an earlier read of the same
    router merged into that read's row."""

    def __init__(self, captures: Sequence, year: int, pre_arm: Sequence[LogSnapshot] = ()):
        self.year = year
        self.tracks = clock_tracks(captures, pre_arm)
        self.clocks: dict[str, RouterClock] = {router: track.latest for router, track in self.tracks.items()}
        self.estimated_before = {router: _microseconds(at) for router, track in self.tracks.items()
                                 if (at := track.estimated_before()) is not None}
        self.offsets = {c.router: c.clock_offset for c in captures}
        self.columns = _Columns()
        self.texts: list[str] = []
        self.routers: list[str] = []
        self.mnemonics: list[str] = []
        self._mnemonic_index: dict[str, int] = {}
        self.orders: list[int] = []  # each read's source, in the order the reads were added
        # router -> digest of a line -> its row, or its rows (oldest first) when it repeats
        self.by_line: dict[str, dict[bytes, int | list[int]]] = {}

    def add(self, order: int, router: str, text: str, last: bool = False) -> None:
        """The rows of one read. `last`: no read of the router comes after this one."""
        c = self.columns
        known = self.by_line.setdefault(router, {})
        # A line is looked up among the router's earlier reads and kept for its later ones:
        # a read with neither (a router read once, as in the diagnosis's timeline) digests none.
        merging = bool(known) or not last
        if router not in self.routers:
            self.routers.append(router)
        router_index = self.routers.index(router)
        text_index = len(self.texts)
        self.texts.append(text)
        self.orders.append(order)
        first_new = len(c)  # rows from here on are this read's
        used: dict[bytes, int] = {}  # line -> how many of its rows from earlier reads this read matched
        previous: int | None = None  # the agent time of the last stamped line above, in buffer order
        cursor = 0
        folds = self._passes(router, text)
        guessed_before = self.estimated_before.get(router, _NO_TIME)  # agent time; earlier rows are estimates
        # A router without `show clock`: its stamps are read as UTC less the recorded skew,
        # one timedelta for the whole read rather than one made per line.
        skew = None if router in self.clocks else timedelta(seconds=self.offsets.get(router) or 0.0)
        for n, line in enumerate(self._records(router, text)):
            fold = 0 if folds is None else folds[n]
            key = _digest(line.raw) if merging else None
            entry = None if key is None else known.get(key)
            if entry is not None:  # the line was listed before: maybe by an earlier read
                rows = entry if isinstance(entry, list) else (entry,)
                earlier = bisect_left(rows, first_new)  # rows are listed in the order they were made
                count = used.get(key, 0) if earlier else 0
                if count < earlier:  # the same line, already listed from an earlier read
                    used[key] = count + 1
                    c.seen[rows[count]] |= 1 << order
                    if rows[count] in c.ambiguous and fold is not None:  # this read tells its pass
                        c.time[rows[count]] = self._on_agent_clock(router, line, fold, skew)
                        del c.ambiguous[rows[count]]
                    continue
            agent_time = self._on_agent_clock(router, line, fold or 0, skew)
            # A line printed without a stamp (`no service timestamps debug`, the default for
            # debugs on many routers) was logged after the stamped line above it: it takes
            # that time, marked as inferred, so it sorts where the buffer put it.
            inferred = agent_time is None and previous is not None
            if agent_time is not None:
                previous = agent_time
            elif inferred:
                agent_time = previous
            row = len(c.time)
            if agent_time is not None and agent_time < guessed_before:
                c.estimated.add(row)
            cursor = self._place(row, text_index, text, line, cursor)
            c.time.append(_NO_TIME if agent_time is None else agent_time)
            c.order.append(order)
            c.n.append(n)
            c.router.append(router_index)
            c.seen.append(1 << order)
            c.inferred.append(inferred)
            mnemonic = line.mnemonic
            c.mnemonic.append(-1 if mnemonic is None else self._mnemonic(mnemonic))
            if fold is None:  # in the repeated hour, pass unknown: placed on the first, and said so
                c.ambiguous[row] = repeated_hour_text(self.clocks[router], line.timestamp,
                                                      "log" if mnemonic else "debug")
            if key is None:
                continue
            if entry is None:
                known[key] = row
            elif isinstance(entry, list):
                entry.append(row)
            else:
                known[key] = [entry, row]

    def _place(self, row: int, text_index: int, text: str, line: LogLine, cursor: int) -> int:
        """Where the row's line and device time are: a piece of the read's text (records
        come in text order) or, when the reader re-indented it, its own string."""
        c = self.columns
        raw = line.raw
        # Records come in text order, most often the next line after the last one's end:
        # compared there first, searched for only when it is not there.
        if text.startswith(raw, cursor):
            start = cursor
        elif text.startswith(raw, cursor + 1):
            start = cursor + 1
        else:
            start = text.find(raw, cursor)
        if start < 0:
            c.text.append(-1)
            c.start.append(0)
            c.lines[row] = raw
        else:
            c.text.append(text_index)
            c.start.append(start)
            cursor = start + len(raw)
        c.length.append(len(raw))
        stamp = line.timestamp_text
        if stamp is None:
            at = -1
        else:  # most often at the line's start or after its `*` / `.` flag
            at = 0 if raw.startswith(stamp) else 1 if raw.startswith(stamp, 1) else raw.find(stamp)
            if at < 0:
                at = -2
                c.stamps[row] = stamp
        c.stamp_at.append(at)
        c.stamp_length.append(0 if stamp is None else len(stamp))
        return cursor

    def _mnemonic(self, mnemonic: str) -> int:
        index = self._mnemonic_index.get(mnemonic)
        if index is None:
            index = self._mnemonic_index[mnemonic] = len(self.mnemonics)
            self.mnemonics.append(mnemonic)
        return index

    def sorted_rows(self) -> array:
        """The rows in time order (none first), then source, then place in the read, then
        the order they were made: each sort key one integer, made and dropped here."""
        c = self.columns
        self.by_line = {}  # the merging is done
        if self._reads_in_source_order():
            # Rows of equal time are then already in source and read order (each read has a
            # source of its own, later than the one before, and makes its rows in buffer
            # order): a stable sort on the time alone keeps them so, with no key per row
            # made in Python.
            return array("q", sorted(range(len(c)), key=c.time.__getitem__))
        low = min((t for t in c.time if t != _NO_TIME), default=0)
        keys = sorted(((((0 if t == _NO_TIME else t - low + 1) << 2 | c.order[i]) << 32 | c.n[i]) << 32 | i)
                      for i, t in enumerate(c.time))
        return array("q", (k & 0xFFFFFFFF for k in keys))

    def _reads_in_source_order(self) -> bool:
        """Every read added after the one before it in SOURCES, none of one source twice
        (two routers' captures are: the place in the read starts again at each)."""
        orders = self.orders
        return all(a < b for a, b in zip(orders, orders[1:]))

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

    def _passes(self, router: str, text: str) -> list[int | None] | None:
        """Which pass through the hour repeated when summer time ends each record's stamp
        is on (clocks.passes, from this read's buffer order); None where the router has no
        summer time: every stamp read as printed, and the read not walked twice."""
        clock = self.clocks.get(router)
        if clock is None or clock.summer is None:
            return None
        return passes(clock, ((r.timestamp, r.tz, "log" if r.mnemonic else "debug") for r in self._records(router, text)))

    def _on_agent_clock(self, router: str, line: LogLine, fold: int, skew: timedelta | None) -> int | None:
        """The line's time on the agent's clock (microseconds since 1970 UTC), None when it
        has no stamp. `skew`: the router has no `show clock`, its stamps are read as UTC
        less this skew (as recorded with the capture)."""
        stamp = line.timestamp
        if stamp is None:
            return None
        if skew is not None:
            return _microseconds(stamp - skew)
        return _microseconds(self.tracks[router].to_agent(stamp, line.tz, "log" if line.mnemonic else "debug", fold))


def _digest(line: str) -> bytes:
    """A line's identity without keeping the line (as the reader's fingerprints, 12 bytes)."""
    return hashlib.blake2b(line.strip().encode("utf-8", "surrogatepass"), digest_size=12).digest()


def _microseconds(moment: datetime) -> int:
    """Microseconds since 1970 UTC; a naive `moment` is taken as UTC."""
    delta = moment - (_NAIVE_EPOCH if moment.tzinfo is None else _EPOCH)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
