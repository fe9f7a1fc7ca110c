"""IOS / IOS-XE log lines: `show logging` records, syslog datagrams, the invalid-SPI message.

This is the hot path of the detector (a `show logging` buffer with crypto debugs on holds
hundreds of thousands of lines), so it is plain `re` with one anchored match per line and
a substring pre-check before the expensive patterns; no TextFSM here.

Every timestamp prefix of domain.md §2.1 is accepted: `<PRI>`, the `NNNNNN:` sequence
number, `*`/`.` (clock not authoritative), month-day with or without year and msec, a time
zone, the doubled `: :` of IOS-XE 17, a hostname before `%`, uptime stamps, or no stamp.
A line that is none of these is tried, off the hot path, as a syslog archive line: a
relay's RFC 3164 or ISO 8601 stamp and host, RFC 5424, `logging origin-id` hostnames
(`iter_archive_records` also undoes what a mail or PDF copy does to log text).

The invalid-SPI message is recognised only as itself: the record's own mnemonic, at its
own place, never the same text inside another message (an EEM `%HA_EM-6-LOG` line).

Values taken from a line can end up in router commands (`debug crypto condition peer ...`),
so `parse_invalid_spi` validates strictly and returns None for anything doubtful; nothing
in this module raises on bad input.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address, ip_address

from collector.detect.events import Flow, InvalidSpiEvent
from collector.textlines import LINE_END, LINE_SEPARATORS, iter_lines

# Longest physical line handed to the regexes. Real log records are far shorter; a cap
# keeps a hostile or corrupt input from costing more than a bounded amount of work.
MAX_LINE_CHARS = 16_384
# The invalid-SPI record is ~250 characters even with every prefix; anything much longer
# is not one.
MAX_INV_SPI_LINE_CHARS = 1_024
# Syslog over UDP: RFC 3164 says 1024 bytes, RFC 5424 receivers must take 480 and should
# take 2048; 8 KiB leaves room for relays without accepting junk of any size.
MAX_DATAGRAM_BYTES = 8_192

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}

# Mnemonic: FACILITY-SEVERITY-NAME; facilities may contain '-' or '_' (IOSXE_OIR, CRYPTO_ENGINE).
_MNEMONIC = r"%(?P<mn>[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*?-[0-7]-[A-Za-z0-9_]+):\s?"
# `logging origin-id` / syslog-server style hostname, only when a %MNEMONIC follows.
_HOST = r"(?:(?P<host>[A-Za-z0-9][A-Za-z0-9._-]{0,252}) +(?=%))?"
_PRI_SEQ = r"(?:<(?P<pri>\d{1,3})>)?(?:(?P<seq>\d{1,12}):\s*)?"

# A record that carries a time stamp: anything may follow it (debug output has no mnemonic).
_STAMPED = re.compile(
    _PRI_SEQ
    + r"(?P<flag>[*.])?"
    r"(?P<ts>"
    # `sec`: the stamp up to its fraction, the key of its datetime (`_stamp_time`)
    r"(?P<sec>(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(?P<day>\d{1,2})"
    r"(?: +(?P<year>\d{4}))?"
    r" +(?P<hh>\d{1,2}):(?P<mi>\d\d):(?P<ss>\d\d))(?:\.(?P<frac>\d{1,6}))?"
    r"(?: +(?P<tz>[A-Za-z][A-Za-z0-9_+-]{0,15}))?"
    # `service timestamps log uptime`: hh:mm:ss under a day, then 1d02h / 2w3d / 1y2w
    r"|(?P<up>\d{1,2}:\d\d:\d\d|\d{1,4}[ywd]\d{1,2}[wdh])"
    r")"
    r":\s*(?::\s*)?"  # ': ' and the doubled ': :' of IOS-XE 17 with show-timezone
    + _HOST
    + r"(?:" + _MNEMONIC + r")?"
    r"(?P<msg>.*)",
    re.S,
)

# Debug families that print without a time stamp when `service timestamps debug` is off.
_DEBUG_TAG = (
    r"(?:ISAKMP(?:-[A-Z]+)?\s*[:(]|IPSEC(?:-[A-Z]+)?[(:]|IKEv2(?:-[A-Z]+)?[:(]|IKEV2[-:(]"
    r"|Crypto mapdb|CRYPTO(?:_[A-Z]+)*(?:-[A-Z]+)?:|CryptoEngine|crypto_engine)"
)
# A record without a time stamp: only a %MNEMONIC or a known debug family make it one;
# anything else is a wrapped fragment or a continuation line.
_UNSTAMPED = re.compile(
    _PRI_SEQ + _HOST + r"(?:" + _MNEMONIC + r"(?P<msg>.*)|(?P<dbg>" + _DEBUG_TAG + r".*))",
    re.S,
)

_INV_SPI_TAG = "RECVD_PKT_INV_SPI"
_INV_SPI_BODY = re.compile(
    # `decaps rec'd` without the colon (a forum transcript) and a typographic backtick in
    # ``rec`d`` (a lab book) are the same message; neither changes what is validated.
    r"decaps:?\s*rec['`]?d IPSEC packet has invalid spi for\s*"
    r"destaddr=\s*(?P<dst>[0-9A-Fa-f:.]{2,45})\s*,\s*"
    r"prot=\s*(?P<prot>\d{1,3})\s*,\s*"
    r"spi=\s*0x(?P<hex>[0-9A-Fa-f]{1,8})\s*\(\s*(?P<dec>\d{1,10})\s*\)\s*,\s*"
    r"srcaddr=\s*(?P<src>[0-9A-Fa-f:.]{2,45})"
    r"(?:\s*,\s*input interface=\s*(?P<ifc>[A-Za-z][A-Za-z0-9/._:-]{0,63}))?"
    r"\s*",  # fullmatch: nothing may trail the last field
)
_INV_SPI_MNEMONIC = "CRYPTO-4-RECVD_PKT_INV_SPI"
# The same fields, unvalidated and tolerant of what an archive does to them (for display).
_INV_SPI_FIELDS = re.compile(
    r"decaps:?\s*rec.?d IPSEC packet has invalid spi for\s*"
    r"destaddr=\s*(?P<dst>\S+?)\s*,\s*prot=\s*(?P<prot>\d+)\s*,\s*"
    r"spi=\s*0x(?P<hex>[0-9A-Fa-f]+)\s*\(\s*(?P<dec>\d+)\s*\)\s*,\s*srcaddr=\s*(?P<src>[^\s,]+)"
    r"(?:\s*,\s*input interface=\s*(?P<ifc>[^\s,]+))?"
)

_DELETE_NOTIFY_TAG = "ignoring request to send delete notify"
_DELETE_NOTIFY = re.compile(
    r"ISAKMP(?:-ERROR)?:\s*(?:\((?P<conn>\d{1,10})\):\s*)?"
    r"ignoring request to send delete notify \(no ISAKMP sa\) "
    r"src (?P<src>[0-9A-Fa-f:.]{2,45}) dst (?P<dst>[0-9A-Fa-f:.]{2,45}) "
    r"for SPI 0x(?P<spi>[0-9A-Fa-f]{1,8})\s*$"
)

_LOG_BUFFER = "Log Buffer ("
_ESP, _AH = 50, 51
_SPI_MAX = 0xFFFFFFFF
# How far past "now" a year-less stamp may fall before it is taken as last year's
# (covers time-zone differences between router and agent and small clock errors).
_FUTURE_SLACK = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log record. `timestamp` is the router's wall clock as printed (naive; the
    printed zone, if any, is in `tz`); None for uptime stamps or no stamp at all."""

    raw: str  # verbatim; multi-line debug records keep their lines joined by "\n"
    seq: int | None
    timestamp: datetime | None
    timestamp_text: str | None  # as printed, without the `*`/`.` flag, e.g. "Jan 8 15:00:23.723 EDT"
    authoritative: bool  # False when `*` or `.` marks the clock as not authoritative, or no stamp
    tz: str | None
    hostname: str | None
    pri: int | None
    mnemonic: str | None  # "CRYPTO-4-RECVD_PKT_INV_SPI"; None for debug output
    message: str  # text after the mnemonic (or the debug text); continuation lines joined by " "

    @property
    def severity(self) -> int | None:
        """Severity digit of the mnemonic (0 emergencies .. 7 debugging)."""
        if self.mnemonic is None:
            return None
        parts = self.mnemonic.rsplit("-", 2)
        return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


@dataclass(frozen=True, slots=True)
class DeleteNotifyIgnored:
    """`ignoring request to send delete notify (no ISAKMP sa)`: the receiver had no IKE SA to
    tell the sender about the unknown SPI, so no recovery happened (domain.md §2.1)."""

    src: IPv4Address | IPv6Address  # the router that printed it (would have sent the notify)
    dst: IPv4Address | IPv6Address  # the peer the notify was meant for
    spi: int
    conn_id: int | None  # the `(0)` IKE connection tag of the IOS-XE form
    timestamp: datetime | None
    raw: str


# --------------------------------------------------------------------------- single lines


def parse_log_line(line: str, *, year: int | None = None) -> LogLine | None:
    """Parse one physical log line; None for continuation lines (leading white space),
    wrapped fragments and anything else that is not the start of a log record.

    The IOS stamp has no year unless `service timestamps ... year` is set: it is taken from
    `year`, or, when `year` is None, from the current UTC date (a stamp that would lie in
    the future, e.g. `Dec 31` read on Jan 1, is last year's)."""
    try:
        if year is None:
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            record = _parse_or_relayed(line, now.year)
            return _roll_back_if_future(record, now) if record is not None else None
        return _parse_or_relayed(line, year)
    except Exception:  # noqa: BLE001 - a parser of untrusted text never raises
        return None


def _parse_or_relayed(line: str, year: int) -> LogLine | None:
    """The router's own forms first (the hot path); only a line that is none of them is
    tried as a syslog archive line (`<PRI>`, a relay's stamp and host, RFC 5424)."""
    record = _parse(line, year)
    if record is not None or not line or line[0] in " \t" or len(line) > MAX_LINE_CHARS:
        return record
    return _parse_relayed(line.rstrip("\r\n"), year)


def _parse(line: str, year: int) -> LogLine | None:
    """The hot path: one anchored regex (two for unstamped lines), no allocations beyond
    the result."""
    if not line or len(line) > MAX_LINE_CHARS:
        return None
    if line[-1] in "\r\n":
        line = line.rstrip("\r\n")
        if not line:
            return None
    if line[0] in " \t":
        return None  # continuation of the previous record
    m = _STAMPED.match(line)
    if m is not None:
        pri, seq, flag, ts_text, sec, mon, day, y, hh, mi, ss, frac, tz, _up, host, mn, msg = m.groups()
        if pri is not None:
            pri = int(pri)
            if pri > 191:
                return None
        ts = None if sec is None else _stamp_time(sec, year, mon, day, y, hh, mi, ss, frac)
        return _new_logline(line, int(seq) if seq is not None else None, ts, ts_text, flag is None, tz,
                            host, pri, mn, msg)
    m = _UNSTAMPED.match(line)
    if m is None:
        return None
    pri, seq, host, mn, msg, dbg = m.groups()
    if pri is not None:
        pri = int(pri)
        if pri > 191:
            return None
    return _new_logline(line, int(seq) if seq is not None else None, None, None, False, None,
                        host, pri, mn, dbg if dbg is not None else msg)


# A busy buffer prints several lines a second: the whole seconds of a stamp (its text up
# to the fraction) are made into a datetime once, and each line's stamp from them by
# adding its fraction, also made once; int() and datetime() were a third of a line's
# parse. Stamps come in time order, so only recent entries matter: a full cache is
# emptied, not tracked for the least recently used. Threads that parse at the same time
# share the caches safely (each dict operation is atomic; an entry made twice is equal).
_SECONDS: dict[tuple[str, int], datetime | None] = {}
_FRACTIONS: dict[str, timedelta] = {}
_CACHE_LIMIT = 4096
_NOT_CACHED = object()


def _stamp_time(sec: str, year: int, mon: str, day: str, y: str | None, hh: str, mi: str, ss: str,
                frac: str | None) -> datetime | None:
    """The stamp's time (`year` unless it printed its own, `y`); None for a date or time
    that does not exist (Feb 30, 25:00:00 ...): the record is kept, its stamp dropped."""
    key = (sec, year)
    whole = _SECONDS.get(key, _NOT_CACHED)
    if whole is _NOT_CACHED:
        try:
            whole = datetime(int(y) if y is not None else year, _MONTHS[mon], int(day), int(hh), int(mi), int(ss))
        except ValueError:
            whole = None
        if len(_SECONDS) >= _CACHE_LIMIT:
            _SECONDS.clear()
        _SECONDS[key] = whole
    if whole is None or frac is None:
        return whole  # type: ignore[return-value]  # not _NOT_CACHED any more
    fraction = _FRACTIONS.get(frac)
    if fraction is None:
        if len(_FRACTIONS) >= _CACHE_LIMIT:
            _FRACTIONS.clear()
        fraction = _FRACTIONS[frac] = timedelta(microseconds=int(frac.ljust(6, "0")))
    return whole + fraction


# A frozen dataclass's generated __init__ goes through object.__setattr__ once per field,
# which is the largest single cost per line on the hot path. Writing the slots through
# their member descriptors builds the identical object in half the time.
_LOGLINE_SETTERS = tuple(getattr(LogLine, name).__set__ for name in (
    "raw", "seq", "timestamp", "timestamp_text", "authoritative", "tz", "hostname", "pri", "mnemonic", "message"))


def _new_logline(raw: str, seq: int | None, timestamp: datetime | None, timestamp_text: str | None,
                 authoritative: bool, tz: str | None, hostname: str | None, pri: int | None,
                 mnemonic: str | None, message: str) -> LogLine:
    obj = object.__new__(LogLine)
    s_raw, s_seq, s_ts, s_text, s_auth, s_tz, s_host, s_pri, s_mn, s_msg = _LOGLINE_SETTERS
    s_raw(obj, raw)
    s_seq(obj, seq)
    s_ts(obj, timestamp)
    s_text(obj, timestamp_text)
    s_auth(obj, authoritative)
    s_tz(obj, tz)
    s_host(obj, hostname)
    s_pri(obj, pri)
    s_mn(obj, mnemonic)
    s_msg(obj, message)
    return obj


def year_printed(record: LogLine) -> bool:
    """The stamp printed its own year (`service timestamps ... year`, or a relay's ISO 8601
    stamp: `2026-12-06T00:12:07Z`)."""
    text = record.timestamp_text or ""
    if text[4:5] == "-" and text[:4].isdigit():
        return True
    return any(len(tok) == 4 and tok.isdigit() for tok in text.split())


def _roll_back_if_future(record: LogLine, now: datetime) -> LogLine:
    ts = record.timestamp
    if ts is None or ts <= now + _FUTURE_SLACK or year_printed(record):
        return record
    return replace(record, timestamp=_with_year(ts, ts.year - 1))


def _with_year(ts: datetime, year: int) -> datetime | None:
    try:
        return ts.replace(year=year)
    except ValueError:  # Feb 29 in a non-leap year
        return None


# --------------------------------------------------------------------------- show logging


def iter_log_records(show_logging_text: str, *, year: int | None = None) -> Iterator[LogLine]:
    """The log records of a `show logging` output, oldest first.

    Skips the header (everything up to `Log Buffer (N bytes):` when present) and lines that
    do not start a record where no record is open (the truncated first fragment of a wrapped
    buffer). Indented lines, and unindented lines that are not a record start (IOS-XE debug
    continuations such as `bring down existing phase 1 and 2 SA's ...`), are joined onto the
    open record: `raw` keeps them with "\\n", `message` with a single space.

    `year` is the year of the newest records (default: the current UTC year; newest stamps
    that would lie in the future move to last year). Walking back, a month that jumps
    forward (Jan -> Dec) crosses a new year, so older records get the year before."""
    if not show_logging_text:
        return iter(())
    try:
        return iter(_collect_records(show_logging_text, year))
    except Exception:  # noqa: BLE001 - never raise on device text
        return iter(())


def _collect_records(text: str, year: int | None) -> list[LogLine]:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    base_year = year if year is not None else now.year

    lines = text.splitlines()
    start, indent = buffer_start(text, lines)
    records: list[LogLine] = []
    rollover = False
    last_month = 0
    for record in _records_of_lines(iter(lines[start:]), indent, base_year):
        records.append(record)
        ts = record.timestamp
        if ts is not None:
            if ts.month < last_month - 5:  # Dec -> Jan going forward in the buffer
                rollover = True
            last_month = ts.month

    newest = next((r.timestamp for r in reversed(records) if r.timestamp is not None), None)
    shift_all = year is None and newest is not None and newest > now + _FUTURE_SLACK
    if rollover or shift_all:
        _fix_years(records, shift_all)
    return records


def _records_of_lines(lines: Iterator[str], indent: int, base_year: int) -> Iterator[LogLine]:
    """Buffer lines (after the header) grouped into records, years not yet fixed."""
    parse = _parse_or_relayed
    open_record: LogLine | None = None
    extra: list[str] = []
    for line in lines:
        if not line or line.isspace():
            continue
        if indent:
            line = _unindented(line, indent)
        record = parse(line, base_year) if line[0] not in " \t" else None
        if record is None:
            if open_record is not None:
                extra.append(line)
            continue
        if open_record is not None:
            yield _join(open_record, extra) if extra else open_record
            extra = []
        open_record = record
    if open_record is not None:
        yield _join(open_record, extra) if extra else open_record


def _unindented(line: str, indent: int) -> str:
    """A line of a capture indented as a whole (some tools do that), with that indentation
    taken off: its own indentation is judged relative to the `Log Buffer` line's."""
    stripped = line.lstrip()
    return stripped if len(line) - len(stripped) <= indent else line


class LogRecords:
    """The records of a `show logging` output exactly as `iter_log_records` gives them, made
    anew each time they are iterated instead of held in a list: a 10 MB buffer is 69,000
    records (about 40 MB as objects), and a reader that looks at one at a time needs only
    that one. The text is walked once here for the years when its stamps may cross New
    Year, then at each iteration; a buffer whose stamps' months all lie within half a year
    (the common case: hours to weeks of log) skips the first walk. Never raises on device
    text (a text that breaks the parser has no records, as with `iter_log_records`)."""

    def __init__(self, show_logging_text: str, *, year: int | None = None):
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        self._text = show_logging_text
        self._base_year = year if year is not None else now.year
        self._offsets: array | None = None
        self._broken = False
        self._newest: tuple[int, LogLine] | None = None
        # With the year given and no New Year inside, every stamp keeps the given year: the
        # walk that plans the years can only find nothing to shift.
        self._planned = year is None or not _one_year_only(show_logging_text)
        try:
            if self._planned:
                self._plan_years(year, now)
        except Exception:  # noqa: BLE001 - never raise on device text
            self._broken = True

    def _stream(self) -> Iterator[LogLine]:
        text = self._text
        if not text:
            return iter(())
        begin, indent = _records_begin(text)  # the header skipped
        return _records_of_lines(iter_lines(text, start=begin), indent, self._base_year)

    def _plan_years(self, year: int | None, now: datetime) -> None:
        # Per record: its month (0: no stamp), +16 when the stamp prints its year; what
        # `_collect_records` and `_fix_years` decide from, without keeping the records.
        marks = bytearray()
        rollover, last_month, newest = False, 0, None
        for record in self._stream():
            ts = record.timestamp
            if ts is None:
                marks.append(0)
                continue
            printed = year_printed(record)
            marks.append(ts.month | (16 if printed else 0))
            if ts.month < last_month - 5:
                rollover = True
            last_month = ts.month
            newest = ts
            if not printed:
                self._newest = (len(marks) - 1, record)
        shift_all = year is None and newest is not None and newest > now + _FUTURE_SLACK
        if rollover or shift_all:
            self._offsets = _year_offsets(marks, shift_all)

    def __iter__(self) -> Iterator[LogLine]:
        if self._broken:
            return
        offsets = self._offsets
        try:
            if offsets is None:  # no year to change (the common case): no count kept
                yield from self._stream()
                return
            for i, record in enumerate(self._stream()):
                if offsets[i]:
                    _shift_year(record, offsets[i])
                yield record
        except Exception:  # noqa: BLE001 - never raise on device text
            return

    @property
    def newest_unprinted(self) -> LogLine | None:
        """The newest record with a stamp that does not print its year (years fixed)."""
        if not self._planned:
            try:
                return self._newest_unprinted_from_the_end()
            except Exception:  # noqa: BLE001 - never raise on device text
                return None
        if self._newest is None:
            return None
        index, record = self._newest
        if self._offsets is not None and self._offsets[index]:
            assert record.timestamp is not None
            record = replace(record, timestamp=_with_year(record.timestamp, record.timestamp.year + self._offsets[index]))
            if record.timestamp is None:  # a Feb 29 moved to a year without one: the newest before it
                return next((r for r in reversed(list(self)) if r.timestamp is not None and not year_printed(r)), None)
        return record

    def _newest_unprinted_from_the_end(self) -> LogLine | None:
        """What the planning walk keeps as the newest unprinted record, found by reading the
        buffer backwards a chunk at a time (usually its last line), as `_records_of_lines`
        would group it: the record line, and the lines after it up to the next record."""
        text = self._text
        floor, indent = _records_begin(text)
        end = len(text)
        after: list[str] = []  # lines below the current one, up to the next record, reversed
        while end > floor:
            cut = text.rfind("\n", floor, max(floor, end - _BACKWARD_CHUNK))
            start = cut + 1 if cut >= 0 else floor
            for line in reversed(text[start:end].splitlines()):
                if not line or line.isspace():
                    continue
                if indent:
                    line = _unindented(line, indent)
                record = _parse_or_relayed(line, self._base_year) if line[0] not in " \t" else None
                if record is None:
                    after.append(line)
                elif record.timestamp is not None and not year_printed(record):
                    return _join(record, after[::-1]) if after else record
                else:
                    after = []
            end = start
        return None


_BACKWARD_CHUNK = 1 << 16
_MONTH_WORDS = tuple((name + " ", number) for name, number in _MONTHS.items())


def _one_year_only(text: str) -> bool:
    """No two stamps that print no year can be more than five months apart in `text`, so
    the walk back from the newest finds no New Year to cross (its test is a jump of six
    months or more). Decided from every month name anywhere in the text, a superset of
    those stamps' months (a stamp without a month name prints its year, or has no date):
    a name in a message only sends the text the long way.

    Searched from the end (`rfind`): a month the text holds is near it, and a search for
    one it does not hold reads the whole text, faster backwards in CPython (its backward
    search tests the name's first letter, rare in log text, before the rest; the forward
    one its last, a space): 66 ms instead of 93 ms for a 9 MB buffer of one month."""
    months = [number for word, number in _MONTH_WORDS if text.rfind(word) >= 0]
    return not months or max(months) - min(months) <= 5


def _records_begin(text: str) -> tuple[int, int]:
    """Where the records of a `show logging` text begin (after the first `Log Buffer (`
    line, as `LogRecords._stream` skips the header) and that line's indentation."""
    pos = text.find(_LOG_BUFFER)
    if pos < 0:
        return 0, 0
    line_end = LINE_END.search(text, pos)
    line_start = max(text.rfind(sep, 0, pos) for sep in LINE_SEPARATORS) + 1
    line = text[line_start:pos]
    return (line_end.end() if line_end else len(text)), len(line) - len(line.lstrip())


def _year_offsets(marks: bytearray, shift_all: bool) -> array:
    """`_fix_years`' walk over the records' marks: the years to add to each record's stamp."""
    offsets = array("i", bytes(4 * len(marks)))
    offset = -1 if shift_all else 0
    next_month: int | None = None
    for i in range(len(marks) - 1, -1, -1):
        mark = marks[i]
        if mark == 0 or mark & 16:
            continue
        month = mark & 15
        if next_month is not None and month > next_month + 5:
            offset -= 1
        next_month = month
        offsets[i] = offset
    return offsets


def iter_archive_records(text: str, *, year: int | None = None) -> Iterator[LogLine]:
    """The log records of a syslog archive or of a copy of one (a mail, a PDF, a web page).

    Every form `parse_log_line` reads (the router's own, `<PRI>`, a relay's stamp and host,
    RFC 5424), plus what copying does to log text: a record wrapped over several lines is
    joined back (as by `iter_log_records`), records run together on one line are split
    where the next one's stamp and `%MNEMONIC` begin, and a mail quote marker between `%`
    and the mnemonic (`%>CRYPTO-...`, a wrap that the archive re-joined) is dropped. Not
    for `show logging` output: router text never needs this, and it costs a scan per line."""
    if not text:
        return iter(())
    try:
        lines = []
        for line in text.splitlines():
            line = line.replace("%>", "%")
            lines.extend(_split_run_together(line))
        return iter(_collect_records("\n".join(lines), year))
    except Exception:  # noqa: BLE001 - never raise on archive text
        return iter(())


# A record starting inside a line: white space, then a month-day stamp (or a bare mnemonic
# after a sequence number) followed by `: %MNEMONIC`.
_RECORD_START_INSIDE = re.compile(
    r"\s+(?=(?:\d{1,12}:\s*)?[*.]?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2}"
    r"(?: +\d{4})? +\d{1,2}:\d\d:\d\d(?:\.\d{1,6})?(?: +[A-Za-z][A-Za-z0-9_+-]{0,15})?:\s*(?::\s*)?"
    r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,252} +)?%[A-Za-z0-9_]+-)"
)


def _split_run_together(line: str) -> list[str]:
    if line.count("%") < 2:
        return [line]
    parts = _RECORD_START_INSIDE.split(line)
    return [part for part in parts if part]


def buffer_start(text: str, lines: list[str]) -> tuple[int, int]:
    """Index of the first line after the `Log Buffer (N bytes):` header (0 if there is no
    header) and that header's indentation."""
    pos = text.find(_LOG_BUFFER)
    if pos < 0:
        return 0, 0
    # Count the lines before the header without scanning every line with a regex.
    before = text.count("\n", 0, pos)
    # splitlines also splits on \r and other separators; fall back to a scan if they differ.
    if before < len(lines) and _LOG_BUFFER in lines[before]:
        header = lines[before]
    else:
        before = next((i for i, ln in enumerate(lines) if _LOG_BUFFER in ln), 0)
        header = lines[before]
    return before + 1, len(header) - len(header.lstrip())


def _join(record: LogLine, extra: list[str]) -> LogLine:
    # `_new_logline` rather than `dataclasses.replace`, which costs several times as much
    # (the wrapped debug records of a busy buffer are thousands).
    return _new_logline(
        record.raw + "\n" + "\n".join(extra), record.seq, record.timestamp, record.timestamp_text,
        record.authoritative, record.tz, record.hostname, record.pri, record.mnemonic,
        " ".join([record.message.rstrip(), *(part.strip() for part in extra)]).strip(),
    )


def _fix_years(records: list[LogLine], shift_all: bool) -> None:
    """Walk from newest to oldest; each Jan -> Dec step backwards is one year earlier."""
    offset = -1 if shift_all else 0
    next_month: int | None = None
    for i in range(len(records) - 1, -1, -1):
        record = records[i]
        ts = record.timestamp
        if ts is None or year_printed(record):
            continue
        if next_month is not None and ts.month > next_month + 5:
            offset -= 1
        next_month = ts.month
        if offset:
            _shift_year(record, offset)


def _shift_year(record: LogLine, years: int) -> None:
    # The records are still being built here and not yet shared: set the field in place
    # (dataclasses.replace per record halved throughput on a year-spanning log).
    ts = record.timestamp
    assert ts is not None
    object.__setattr__(record, "timestamp", _with_year(ts, ts.year + years))


# --------------------------------------------------------------------------- invalid SPI


def parse_invalid_spi(
    line: str, *, router: str, source: str, received_at: datetime, year: int | None = None
) -> InvalidSpiEvent | None:
    """A validated `%CRYPTO-4-RECVD_PKT_INV_SPI` event, or None.

    Accepts a `show logging` line, a syslog datagram text (`<PRI>...`) or a line of a syslog
    archive (a relay's stamp and host before the router's line, RFC 5424). The message is
    recognised only as itself: the line must parse as a log record whose own mnemonic is
    `CRYPTO-4-RECVD_PKT_INV_SPI`; the same text inside another message (an EEM
    `%HA_EM-6-LOG: applet: %CRYPTO-4-...`, an unknown prefix) is not an event. The body
    must be exactly the IOS message (nothing may trail `srcaddr=` / `input interface=`);
    addresses must be valid IPv4/IPv6 unicast of one family, prot 50 (ESP) or 51 (AH), and
    the SPI's hex and decimal forms must agree and fit 32 bits (SPI 0 is invalid in ESP/AH)."""
    try:
        return _invalid_spi(line, router, source, received_at, year)
    except Exception:  # noqa: BLE001 - validation failures of any kind mean "not an event"
        return None


def parse_invalid_spi_record(
    record: LogLine, *, router: str, source: str, received_at: datetime
) -> InvalidSpiEvent | None:
    """The same validation as `parse_invalid_spi`, for a record already read by
    `iter_log_records` / `iter_archive_records` (a wrapped message arrives joined)."""
    try:
        if not isinstance(record, LogLine) or record.mnemonic != _INV_SPI_MNEMONIC:
            return None
        if len(record.message) > MAX_INV_SPI_LINE_CHARS:
            return None
        event = _event_from_record(record, record.raw, router, source, received_at)
        if event is None and "\n" in record.raw:
            # A PDF or mail copy may also break inside a value (`srcaddr=11.1.\n1.3`): join
            # the pieces without a separator and validate again (as strictly).
            first, *rest = record.raw.split("\n")
            head = _parse_or_relayed(first, record.timestamp.year if record.timestamp else 2000)
            if head is not None and head.mnemonic == _INV_SPI_MNEMONIC:
                joined = replace(record, message=head.message.rstrip() + "".join(part.strip() for part in rest))
                event = _event_from_record(joined, record.raw, router, source, received_at)
        return event
    except Exception:  # noqa: BLE001
        return None


def invalid_spi_fields(record: LogLine) -> dict[str, str] | None:
    """The fields of an invalid-SPI record as printed (`destaddr`, `prot`, `spi` as `0x..`,
    `spi_dec`, `srcaddr`, `interface`, "" when absent), or None when the record is not one.
    NOT validated: for display and parsing output only; anything that may reach a router
    command must come from `parse_invalid_spi` / `parse_invalid_spi_record`."""
    if record.mnemonic != _INV_SPI_MNEMONIC:
        return None
    m = _INV_SPI_FIELDS.match(record.message)
    if m is None:
        return None
    return {
        "destaddr": m.group("dst"), "prot": m.group("prot"), "spi": "0x" + m.group("hex"),
        "spi_dec": m.group("dec"), "srcaddr": m.group("src"), "interface": m.group("ifc") or "",
    }


def _invalid_spi(
    line: str, router: str, source: str, received_at: datetime, year: int | None
) -> InvalidSpiEvent | None:
    if not isinstance(line, str) or _INV_SPI_TAG not in line:
        return None
    line = line.rstrip("\r\n")
    if len(line) > MAX_INV_SPI_LINE_CHARS:
        return None
    if year is None:
        ref = received_at.astimezone(timezone.utc).replace(tzinfo=None) if received_at.tzinfo else received_at
        record = _parse_any(line, ref.year)
        if record is not None:
            record = _roll_back_if_future(record, ref)
    else:
        record = _parse_any(line, year)
    # Its own mnemonic at its own place: no search for the text anywhere else in the line.
    if record is None or record.mnemonic != _INV_SPI_MNEMONIC:
        return None
    return _event_from_record(record, line, router, source, received_at)


def _event_from_record(
    record: LogLine, raw: str, router: str, source: str, received_at: datetime
) -> InvalidSpiEvent | None:
    m = _INV_SPI_BODY.fullmatch(record.message)
    if m is None:
        return None
    prot = int(m.group("prot"))
    if prot not in (_ESP, _AH):
        return None
    spi = int(m.group("hex"), 16)
    if spi != int(m.group("dec")) or not 0 < spi <= _SPI_MAX:
        return None
    src = _unicast(m.group("src"))
    dst = _unicast(m.group("dst"))
    if src is None or dst is None or src.version != dst.version:
        return None
    return InvalidSpiEvent(
        flow=Flow(router=router, src=src, dst=dst, spi=spi, prot=prot),
        raw=raw,
        device_time=record.timestamp,
        seq=record.seq,
        interface=m.group("ifc"),
        source=source,
        received_at=received_at,
    )


def _parse_any(line: str, year: int) -> LogLine | None:
    return _parse_or_relayed(line, year)


def _unicast(text: str) -> IPv4Address | IPv6Address | None:
    try:
        addr = ip_address(text)
    except ValueError:
        return None
    if addr.is_unspecified or addr.is_multicast:
        return None
    if isinstance(addr, IPv4Address) and addr == IPv4Address("255.255.255.255"):
        return None
    return addr


# --------------------------------------------------------------------------- delete notify


def parse_delete_notify_ignored(line: str, *, year: int | None = None) -> DeleteNotifyIgnored | None:
    """The `ignoring request to send delete notify (no ISAKMP sa) src A dst B for SPI 0x..`
    debug line, IOS (`ISAKMP: ignoring ...`) and IOS-XE (`ISAKMP-ERROR: (0):ignoring ...`)
    forms, with or without a time stamp; None otherwise."""
    try:
        if not isinstance(line, str) or _DELETE_NOTIFY_TAG not in line or len(line) > MAX_INV_SPI_LINE_CHARS:
            return None
        line = line.rstrip("\r\n")
        record = parse_log_line(line, year=year)
        body = record.message if record is not None else line
        m = _DELETE_NOTIFY.search(body)
        if m is None:
            return None
        src, dst = _unicast(m.group("src")), _unicast(m.group("dst"))
        spi = int(m.group("spi"), 16)
        if src is None or dst is None or src.version != dst.version or not 0 < spi <= _SPI_MAX:
            return None
        conn = m.group("conn")
        return DeleteNotifyIgnored(
            src=src, dst=dst, spi=spi, conn_id=int(conn) if conn is not None else None,
            timestamp=record.timestamp if record is not None else None, raw=line,
        )
    except Exception:  # noqa: BLE001
        return None


# --------------------------------------------------------------------------- syslog datagrams

_PRI = re.compile(r"<(\d{1,3})>")
# RFC 5424: VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]
_RFC5424 = re.compile(
    r"1 (?P<ts>\S{1,64}) (?P<host>\S{1,255}) (?P<app>\S{1,48}) (?P<proc>\S{1,128}) (?P<msgid>\S{1,32}) "
    r"(?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<msg>.*))?",
    re.S,
)
# RFC 3164 header written by a relay or a non-IOS sender: "Mmm dd hh:mm:ss HOST " (a space,
# not the colon IOS puts after its own stamp).
_BSD_HEADER = re.compile(
    r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(?P<day>\d{1,2}) "
    r"(?P<hh>\d\d):(?P<mi>\d\d):(?P<ss>\d\d) (?P<host>[A-Za-z0-9][A-Za-z0-9._:-]{0,254}) "
)
# ISO 8601 stamp and host, as rsyslog (RSYSLOG_FileFormat) and syslog-ng (ts-format(iso))
# write archive lines: "2026-12-06T00:12:07.123456+00:00 10.0.0.1 ".
_ISO_HEADER = re.compile(
    r"(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?) "
    r"(?P<host>[A-Za-z0-9][A-Za-z0-9._:-]{0,254}) "
)
_LEADING_SEQ = re.compile(r"(\d{1,12}):\s+")
_ORIGIN_PREFIX = re.compile(
    r"(?:(?P<seq>\d{1,12})?:\s*)?(?:(?P<host>[A-Za-z][A-Za-z0-9._-]{0,62}):\s+)?"
    r"(?=[*.]?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) )"
)
# C0 controls (except TAB) and DEL: a text protocol line never carries them.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def parse_syslog_datagram(data: bytes) -> LogLine | None:
    """One syslog datagram (RFC 3164 as IOS sends it, RFC 3164 with a relay header, or RFC
    5424) as a LogLine; None for empty, oversized, binary or malformed input. Never raises."""
    try:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            return None
        raw = bytes(data)
        if not raw or len(raw) > MAX_DATAGRAM_BYTES:
            return None
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n\x00")
        if text.startswith("\ufeff"):
            text = text[1:]
        if not text or _CONTROL.search(text) or "\ufffd" in text:
            return None
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        record = _parse_datagram_text(text, now.year)
        return _roll_back_if_future(record, now) if record is not None else None
    except Exception:  # noqa: BLE001
        return None


def _parse_datagram_text(text: str, year: int) -> LogLine | None:
    m = _PRI.match(text)
    if m is None:
        return _parse_or_relayed(text, year)  # a relay that stripped the PRI
    pri = int(m.group(1))
    if pri > 191:
        return None
    rest = text[m.end():]

    m5 = _RFC5424.fullmatch(rest) if rest.startswith("1 ") else None
    if m5 is not None:
        return _from_rfc5424(text, pri, m5, year)

    # IOS's own form first: "<189>91: *Oct  7 03:10:04.123: %..." or "<189>Oct  7 03:10:04 EDT: %..."
    inner = _parse(rest, year)
    if inner is not None and inner.timestamp_text is not None:
        return replace(inner, raw=text, pri=pri)
    relayed = _from_relay_header(rest, text, year, pri)
    if relayed is not None:
        return relayed
    if inner is None:
        return None
    return replace(inner, raw=text, pri=pri)


def _parse_relayed(line: str, year: int) -> LogLine | None:
    """A line as a syslog archive stores it: `<PRI>` and/or a relay's header (RFC 3164
    `Mmm dd hh:mm:ss HOST `, an ISO 8601 stamp and host as rsyslog and syslog-ng write
    them, RFC 5424) before the router's own line. None when it is none of these."""
    if not line:
        return None
    if line[0] == "<":
        return _parse_datagram_text(line, year)
    return _from_relay_header(line, line, year, None)


def _from_origin_prefix(rest: str, raw: str, year: int, pri: int | None) -> LogLine | None:
    """`124: CORE-RTR1: Sep 23 10:15:33.456 UTC: %...` (`logging origin-id hostname`) and
    `<133>: *Mar  1 ...` (an empty sequence field): a stamped router line after them."""
    m = _ORIGIN_PREFIX.match(rest)
    if m is None or m.end() == 0:
        return None
    inner = _parse(rest[m.end():], year)
    if inner is None or inner.timestamp_text is None:
        return None
    seq = m.group("seq")
    return replace(inner, raw=raw, pri=pri if pri is not None else inner.pri,
                   seq=int(seq) if seq is not None else inner.seq, hostname=m.group("host") or inner.hostname)


def _from_relay_header(rest: str, raw: str, year: int, pri: int | None) -> LogLine | None:
    mb = _BSD_HEADER.match(rest)
    if mb is not None:
        stamp_of = _bsd_stamp
    else:
        mb = _ISO_HEADER.match(rest)
        if mb is None:
            return _from_origin_prefix(rest, raw, year, pri)
        stamp_of = _iso_stamp
    body = rest[mb.end():]
    host = mb.group("host").rstrip(":")
    inner = _parse(body, year) if body else None
    if inner is None and body:
        inner = _from_origin_prefix(body, body, year, None)
    if inner is not None:
        # The router's own stamp, when it printed one, is the event's time; the relay's is
        # only when it received the line.
        stamp = {} if inner.timestamp_text is not None else stamp_of(mb, year)
        return replace(inner, raw=raw, pri=pri, hostname=inner.hostname or host, **stamp)
    # The relay's header makes it a record even when the router's text is no form we know
    # (`93: SSH2 0: Unexpected message received`).
    seq_match = _LEADING_SEQ.match(body)
    seq = int(seq_match.group(1)) if seq_match is not None else None
    message = body[seq_match.end():] if seq_match is not None else body
    fields: dict[str, object] = {"tz": None, **stamp_of(mb, year)}
    return LogLine(raw=raw, seq=seq, authoritative=True, hostname=host, pri=pri,
                   mnemonic=None, message=message, **fields)


def _bsd_stamp(m: re.Match[str], year: int) -> dict[str, object]:
    try:
        ts: datetime | None = datetime(year, _MONTHS[m.group("mon")], int(m.group("day")),
                                       int(m.group("hh")), int(m.group("mi")), int(m.group("ss")))
    except ValueError:
        ts = None
    text = m.group(0)[: m.start("host")].strip()
    return {"timestamp": ts, "timestamp_text": text}


def _iso_stamp(m: re.Match[str], year: int) -> dict[str, object]:
    text = m.group("iso")
    try:
        aware = datetime.fromisoformat(text.replace("Z", "+00:00")[:32])
    except ValueError:
        try:  # more than 6 fractional digits
            head, _, tail = text.partition(".")
            digits = "".join(ch for ch in tail if ch.isdigit())
            aware = datetime.fromisoformat(head + "." + digits[:6] + tail[len(digits):].replace("Z", "+00:00"))
        except ValueError:
            return {"timestamp": None, "timestamp_text": text}
    tz = None
    if aware.tzinfo is not None:
        offset = aware.utcoffset()
        tz = "UTC" if offset == timedelta(0) else aware.strftime("%z")
    return {"timestamp": aware.replace(tzinfo=None), "timestamp_text": text, "tz": tz}


def _from_rfc5424(text: str, pri: int, m: re.Match[str], year: int) -> LogLine | None:
    msg = m.group("msg") or ""
    if msg.startswith("\ufeff"):
        msg = msg[1:]
    host = None if m.group("host") == "-" else m.group("host")
    ts_text = m.group("ts")
    ts: datetime | None = None
    tz: str | None = None
    if ts_text != "-":
        try:
            aware = datetime.fromisoformat(ts_text)
        except ValueError:
            return None  # the header is malformed, not just the message
        ts = aware.replace(tzinfo=None)
        if aware.tzinfo is not None:
            offset = aware.utcoffset()
            tz = "UTC" if offset == timedelta(0) else aware.strftime("%z")
    inner = _parse(msg, year) if msg else None
    if inner is not None:
        return replace(
            inner, raw=text, pri=pri, hostname=inner.hostname or host,
            # The 5424 stamp has a year and a zone: prefer it to the IOS one inside.
            timestamp=ts if ts is not None else inner.timestamp,
            timestamp_text=ts_text if ts is not None else inner.timestamp_text,
            tz=tz if ts is not None else inner.tz,
            authoritative=inner.authoritative if inner.timestamp_text is not None else ts is not None,
        )
    return LogLine(raw=text, seq=None, timestamp=ts, timestamp_text=None if ts is None else ts_text,
                   authoritative=ts is not None, tz=tz, hostname=host, pri=pri, mnemonic=None, message=msg)
