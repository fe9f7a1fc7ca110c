"""Which log records are new since the last read of a router's buffer, by the router's own counters.

A line's text is not its identity: with `service timestamps log uptime` (`1d02h:` changes once
an hour after the first day, `8w0d:` once a day after the first week) or no time stamps,
the lines of one flow are byte-identical. What
identifies a record is its place in the router's numbering:

* the header's `Buffer logging: level L, N messages logged` count. Assumption (checked
  against the public captures, not documented by Cisco): N counts every message written
  to the buffer since the router booted, one per message (a multi-line debug record is
  one message); `clear logging` and a buffer resize (which empties the buffer) do not
  reset it, a reload does. Evidence: ntc-templates `cisco_ios_show_logging_1.raw` shows
  `22860 messages logged` in a 16 KB buffer whose visible lines carry sequence numbers
  022701-022703 with the rest of the buffer (about 150 lines) elided: the count runs one
  per buffered message, in step with the sequence numbers; `..._5.raw` (buffer at level
  informational, 10048 logged, console at debugging, 10027) shows the count is the
  buffer's own, and a real two-line message (`%CRYPTO-4-PKT_REPLAY_ERR` with an indented
  `connection id=...` line). Not confirmed on a router: whether `clear logging` leaves
  the count alone (`collector probe --self-test` should check it). The lab
  (collector/lab/logbuf.py) models the same. So, with the buffer read whole, the newest
  record has ordinal N, the one before it N-1, ...; records above the last read's N are new.
* `service sequence-numbers` (`000123:` before the stamp): numbers every message the
  router produces (also those below the buffer's level, so they may skip); restarts at a
  reload. Where present, a record is new when its number is above the last one seen.
* buffer order: the buffer is first-in first-out, so what follows the last read's tail is
  new, and if the newest record seen last time is still there, nothing logged since has
  been lost.

Two read forms:

* full (`show logging`): exact by counts. The last read's tail (fingerprints of its newest
  records) is looked for where the count says it should be; when those lines are distinct
  and sit elsewhere (a record grouped differently, a line logged while the router printed
  its header) the reader realigns on them; when they are gone although the count says
  they should be there, the counters were reset (reload) and everything is new.
* filtered (`show logging | include <header>|<watched mnemonics>`, see `poll_command`):
  the header's count plus the watched lines only. Exact with sequence numbers. Without
  them the watched lines are aligned on the last read's watched lines; each remembered
  watched line carries its ordinal (exact after a full read, a range after a filtered
  one), and a line whose ordinal is less than `capacity` messages old is surely still in
  the buffer (capacity = buffer bytes / a bound on record bytes). Whatever stays
  ambiguous (identical lines near the buffer's head, the last read's lines gone, more
  messages since the last read than the buffer surely holds, a resize, a count gone down)
  is not guessed: the read returns `full_read_needed` with the position unchanged, and the
  caller reads the whole buffer, which is exact by counts. Blind spot: without sequence
  numbers a filtered read cannot see a buffer emptied by `clear logging` or by a resize
  and back to the same size (as arming and disarming do) when the count alone looks
  plausible; read the whole buffer after such a change and every few polls. Not seen by a filtered read
  without sequence numbers: `clear logging` followed by as many identical watched lines as
  it removed (the count does not show a clear); a periodic full read bounds that.

The agent calls `poll_log(run, previous, watch)` once per router and poll (it runs the
filtered command, and the whole buffer only when needed) and persists `position.to_text()`.

Fingerprints (collector.detect.cursor) remain only as the fallback for output without a
`messages logged` count (a platform that does not print it); there N identical lines
are only told apart by how many of them the buffer holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace

from collector.detect.cursor import LogCursor, fingerprint, new_lines as fingerprint_new_lines
from collector.detect.logline import parse_log_line
from collector.textlines import iter_lines

POSITION_VERSION = 1
TAIL_RECORDS = 4  # newest records remembered for realignment: enough to be distinctive
MAX_MATCHED = 5_000  # watched lines remembered for the filtered read's alignment
MIN_RECORD_BOUND = 512  # bytes: the smallest bound assumed for one record when sizing capacity
_MNEMONIC_TOKEN = re.compile(r"[A-Z0-9_-]{1,64}")

_LOG_BUFFER_LINE = re.compile(r"^\s*Log Buffer \((\d{1,12}) bytes\):\s*$")
_LOG_BUFFER_AT = re.compile(r"^[ \t]*Log Buffer \(\d{1,12} bytes\):[ \t]*(?:\r\n|\n|$)", re.M)  # in a whole text
_BUFFER_LOGGING = re.compile(
    r"^\s*Buffer logging:\s+(?:level (?P<level>[a-z]+), (?P<logged>\d{1,15}) messages? logged"
    r"|(?P<disabled>disabled))"
)
_SEQ = re.compile(r"^(?:<\d{1,3}>)?(\d{1,12}): ")


# --------------------------------------------------------------------------- header


@dataclass(frozen=True, slots=True)
class LogHeader:
    """What the `show logging` header says about the buffer.

    `logged` is the `N messages logged` of the `Buffer logging:` line (None when the line is
    absent or the buffer is disabled); `buffer_bytes` the `Log Buffer (N bytes):` size."""

    buffer_enabled: bool
    buffer_bytes: int | None
    logged: int | None
    level: str | None = None


def split_show_logging(text: str) -> tuple[LogHeader, list[str]]:
    """The header and the buffer lines of a `show logging` output, whole or `| include`-filtered.

    The header is read only above the first `Log Buffer (N bytes):` line and the buffer only
    below it, so a logged message that imitates a header line (an EEM `action syslog msg`,
    a forged syslog) can neither move the counters nor hide lines."""
    header, body = iter_show_logging(text)
    return header, list(body)


def iter_show_logging(text: str) -> tuple[LogHeader, Iterator[str]]:
    """`split_show_logging` with the buffer lines made as they are walked (a 10 MB buffer
    is 69,000 lines): the header is read at once, the body lines on demand."""
    lines = iter_lines(text)
    head: list[str] = []
    marker: str | None = None
    for ln in lines:
        if _LOG_BUFFER_LINE.match(ln):
            marker = ln
            break
        head.append(ln)
    logged = level = None
    disabled = False
    for ln in head:
        m = _BUFFER_LOGGING.match(ln)
        if m is None:
            continue
        if m.group("disabled"):
            disabled = True
        else:
            level, logged = m.group("level"), int(m.group("logged"))
        break
    if marker is None:
        if disabled:
            return LogHeader(buffer_enabled=False, buffer_bytes=None, logged=None), iter(())
        # No header at all (a bare `| include` of messages only): every line is a buffer line.
        return LogHeader(buffer_enabled=True, buffer_bytes=None, logged=None), (ln for ln in head if ln.strip())
    # A capture indented as a whole (some tools do that): indentation counts from the marker's.
    indent = len(marker) - len(marker.lstrip())
    size = int(_LOG_BUFFER_LINE.match(marker).group(1))  # type: ignore[union-attr]
    return LogHeader(buffer_enabled=not disabled, buffer_bytes=size, logged=None if disabled else logged,
                     level=level), _body_lines(lines, indent)


def _body_lines(lines: Iterator[str], indent: int) -> Iterator[str]:
    for ln in lines:
        if not ln.strip():
            continue
        if indent and len(ln) - len(ln.lstrip()) >= indent:
            ln = ln[indent:]
        yield ln


# --------------------------------------------------------------------------- poll command


class WatchError(ValueError):
    """A watched mnemonic that cannot be put into a router command."""


def _check_mnemonics(mnemonics: Iterable[str]) -> list[str]:
    out: list[str] = []
    for m in mnemonics:
        if not isinstance(m, str) or not _MNEMONIC_TOKEN.fullmatch(m):
            raise WatchError(f"watched message {m!r}: only A-Z, 0-9, '_' and '-' (1-64 characters) are allowed")
        if m not in out:
            out.append(m)
    if not out:
        raise WatchError("no watched message given")
    return out


def _ios_literal(token: str) -> str:
    # In the IOS CLI regex `_` is special (it matches a space, comma, brace, parenthesis or
    # the start/end of the line), so it is written as `.`; `-` is special only inside [].
    # The reader re-checks every line with the exact text in Python.
    return token.replace("_", ".")


def poll_command(mnemonics: Sequence[str]) -> str:
    """`show logging | include Log.Buffer|Buffer.logging|<m1>|<m2>...`: the header's size and
    count lines plus the watched messages' lines. Mnemonics are validated ([A-Z0-9_-])."""
    tokens = _check_mnemonics(mnemonics)
    alternatives = ["Log.Buffer", "Buffer.logging", *(_ios_literal(t) for t in tokens)]
    return "show logging | include " + "|".join(alternatives)


def watch_matcher(mnemonics: Sequence[str]) -> re.Pattern[str]:
    """The Python test for a watched line (a record whose text holds one of the mnemonics);
    what the router's `include` keeps is a superset, so filtered lines are checked again."""
    tokens = _check_mnemonics(mnemonics)
    return re.compile("|".join(re.escape(t) for t in tokens))


# --------------------------------------------------------------------------- position


@dataclass(frozen=True, slots=True)
class Watched:
    """A watched line remembered from an earlier read: its fingerprint and the range its
    ordinal lies in (lo == hi when a full read placed it exactly)."""

    fp: str
    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where the last read of one router's buffer ended; persist `to_text()` per router.

    `epoch` counts counter resets seen (reloads), so that `NewLine.key` stays unique."""

    logged: int | None = None
    buffer_bytes: int | None = None
    seq: int | None = None
    epoch: int = 0
    tail: tuple[str, ...] = ()
    watched: tuple[Watched, ...] = ()
    record_bytes: int | None = None  # longest record (bytes) seen at the last full read
    counted: int = 0  # watched lines reported without an ordinal (their keys)
    top: int = 0  # highest ordinal handed out in this epoch (keys stay unique after a realignment)
    fallback: str | None = None  # fingerprint cursor, used only when the header has no count

    def to_text(self) -> str:
        return json.dumps({
            "v": POSITION_VERSION, "logged": self.logged, "bytes": self.buffer_bytes, "seq": self.seq,
            "epoch": self.epoch, "tail": list(self.tail),
            "watched": [[w.fp, w.lo, w.hi] for w in self.watched],
            "record_bytes": self.record_bytes, "counted": self.counted, "top": self.top,
            "fallback": self.fallback,
        }, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str | None) -> "LogPosition | None":
        """None for no text, or text that is not a position (an old fingerprint cursor, a
        damaged row): the next read is then a first read."""
        if not text:
            return None
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or d.get("v") != POSITION_VERSION:
                return None
            return cls(
                logged=_opt_int(d.get("logged")), buffer_bytes=_opt_int(d.get("bytes")), seq=_opt_int(d.get("seq")),
                epoch=int(d.get("epoch", 0)), tail=tuple(str(x) for x in d.get("tail", ())),
                watched=tuple(Watched(str(f), int(lo), int(hi)) for f, lo, hi in d.get("watched", ())),
                record_bytes=_opt_int(d.get("record_bytes")), counted=int(d.get("counted", 0)),
                top=int(d.get("top", 0)),
                fallback=d.get("fallback") if isinstance(d.get("fallback"), str) else None,
            )
        except (ValueError, TypeError):
            return None


def _opt_int(v: object) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("not an int")
    return v


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class NewLine:
    """One record logged since the last read. `ordinal` is its number in the buffer's
    `messages logged` count (None when a filtered read cannot know it); `key` is unique per
    logged message of this router (same record read twice -> same key), for event ids."""

    text: str  # the record; continuation lines joined with "\n"
    ordinal: int | None
    seq: int | None
    key: str


@dataclass(frozen=True, slots=True)
class LogRead:
    new_lines: tuple[NewLine, ...]
    position: LogPosition  # persist this (to_text) once the new lines are handled
    gap: str | None = None  # lines were (or may have been) lost since the last read, and why
    full_read_needed: str | None = None  # filtered read only: why the whole buffer must be read now
    method: str = "count"  # count | seq | realigned | reset | first | align | fingerprint | none
    notes: tuple[str, ...] = field(default=())
    whole: bool = False  # the whole buffer was read (`poll_log`), not only the watched lines


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class _Record:
    text: str
    fp: str
    seq: int | None
    size: int  # bytes it takes in the buffer (text + newline per line)


def group_records(lines: Iterable[str]) -> list[_Record]:
    """Buffer lines to records, oldest first. A record starts at a line that logline
    recognises as the start of one (stamp, sequence number, %MNEMONIC or a known debug
    family) or at the first line (the oldest record, possibly cut by the wrap); other lines
    (indented, or unstamped continuations such as `Payload contents:`) belong to the record
    before them."""
    return list(iter_records(lines))


def iter_records(lines: Iterable[str]) -> Iterator[_Record]:
    """`group_records`, a record at a time (each is complete when the next one starts)."""
    records = _grouped(lines)
    first = next(records, None)
    if first is None:
        return
    second = next(records, None)
    if second is None:
        yield first[0]
        return
    yield _head_record(first[0], first[1], second[1])
    yield second[0]
    for record, _width in records:
        yield record


def _grouped(lines: Iterable[str]) -> Iterator[tuple[_Record, int]]:
    """Each record with the width of its sequence number (0: none)."""
    group: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        if not group or (line[0] not in " \t" and parse_log_line(line, year=2000) is not None):
            if group:
                yield _record(group)
            group = [line]
        else:
            group.append(line)
    if group:
        yield _record(group)


def _record(group: list[str]) -> tuple[_Record, int]:
    text = "\n".join(group)
    m = _SEQ.match(group[0])
    return _Record(text, fingerprint(text), int(m.group(1)) if m else None, len(text) + 1), len(m.group(1)) if m else 0


def _head_record(record: _Record, width: int, next_width: int) -> _Record:
    if record.seq is not None and width < next_width:
        # The head record cut by the wrap: `0: %CRYPTO-...` is what is left of `000010: *Dec ...`.
        # IOS pads sequence numbers to one width, so a shorter one is a fragment, not a number.
        return replace(record, seq=None)
    return record


# --------------------------------------------------------------------------- reading


def read_new_lines(previous: LogPosition | None, header: LogHeader, lines: Iterable[str], *,
                   watch: Sequence[str] = (), filtered: bool = False,
                   record_bound: int | None = None, only_watched: bool = False) -> LogRead:
    """The records logged since `previous`, and the position to persist.

    `lines` are the buffer lines of `split_show_logging` (all of them for a full read; for a
    filtered read, what the `include` kept); an iterator is walked once. `watch` lists the
    watched mnemonics: the position remembers their lines so that later filtered reads can
    align on them; a filtered read must pass the same list it built its command from.
    `only_watched`: a full read reports only the watched lines among the new ones (as a
    filtered read does) and holds no other record's text. `record_bound` overrides the
    bytes-per-record bound used to size the buffer (tests)."""
    if not header.buffer_enabled:
        position = previous or LogPosition()
        return LogRead((), position, gap=None, method="none", notes=("buffer logging is disabled",))
    if header.logged is None:
        return _fingerprint_read(previous, lines, watch, filtered)
    if filtered:
        return _filtered_read(previous, header, lines, watch, record_bound)
    return _full_read(previous, header, lines, watch, only_watched)


def _key(epoch: int, ordinal: int | None, seq: int | None, counted: int) -> str:
    if ordinal is not None:
        return f"{epoch}:n{ordinal}"
    if seq is not None:
        return f"{epoch}:s{seq}"
    return f"{epoch}:w{counted}"


class _Scan:
    """What a full read needs of the buffer's records, gathered in one walk without holding
    them: every fingerprint (24 bytes each, for realignment), the sequence number facts,
    the longest record, the watched records' places, and the texts of the records that
    may be reported."""

    def __init__(self, records: Iterable[_Record], previous: LogPosition | None, matcher: re.Pattern[str] | None,
                 only_watched: bool):
        self.fps = bytearray()  # hex fingerprints, _FP_CHARS each
        self.k = 0
        self.max_seq: int | None = None
        self.max_size: int | None = None
        self.watched: list[tuple[str, int]] = []  # (fp, index), the newest MAX_MATCHED
        self.texts: list[tuple[int, str, int | None]] = []  # (index, text, seq) of the records that may be new
        # The first record numbered above the last read's sequence number, and the number
        # of the record just before it (when the last read had one).
        self.after_seq: int | None = None
        self.before_after_seq: int | None = None
        last_seq = previous.seq if previous is not None else None
        previous_record_seq: int | None = None
        for i, r in enumerate(records):
            self.fps += r.fp.encode("ascii")
            if r.seq is not None:
                self.max_seq = r.seq if self.max_seq is None else max(self.max_seq, r.seq)
                if last_seq is not None and self.after_seq is None and r.seq > last_seq:
                    self.after_seq, self.before_after_seq = i, previous_record_seq
            self.max_size = r.size if self.max_size is None else max(self.max_size, r.size)
            hit = matcher is not None and matcher.search(r.text) is not None
            if hit:
                self.watched.append((r.fp, i))
                if len(self.watched) > 2 * MAX_MATCHED:
                    del self.watched[:-MAX_MATCHED]
            if hit or not only_watched:
                self.texts.append((i, r.text, r.seq))
            previous_record_seq = r.seq
            self.k = i + 1
        if self.after_seq is None:
            self.after_seq, self.before_after_seq = self.k, previous_record_seq
        del self.watched[:-MAX_MATCHED]

    def fp(self, i: int) -> str:
        return self.fps[i * _FP_CHARS:(i + 1) * _FP_CHARS].decode("ascii")


_FP_CHARS = 24  # a fingerprint's hex length (cursor.fingerprint: 12 bytes)


class _Fingerprints:
    """The records' fingerprints in order, read out of a `_Scan` as `_realign` asks."""

    def __init__(self, scan: _Scan):
        self.scan = scan

    def __len__(self) -> int:
        return self.scan.k

    def between(self, start: int, end: int) -> list[str]:
        return [self.scan.fp(i) for i in range(max(0, start), min(end, self.scan.k))]

    def present_from(self, fp: str, start: int) -> bool:
        """`fp` is the fingerprint of a record at `start` or later."""
        blob, needle = self.scan.fps, fp.encode("ascii")
        at = blob.find(needle, start * _FP_CHARS)
        while at >= 0 and at % _FP_CHARS:
            at = blob.find(needle, at + 1)
        return at >= 0


def _full_read(previous: LogPosition | None, header: LogHeader, lines: Iterable[str],
               watch: Sequence[str], only_watched: bool = False) -> LogRead:
    matcher = watch_matcher(watch) if watch else None
    scan = _Scan(iter_records(lines), previous, matcher, only_watched)
    k, n = scan.k, header.logged
    assert n is not None
    epoch = previous.epoch if previous else 0
    notes: list[str] = []
    gap: str | None = None

    if previous is None or previous.logged is None:
        first, method = 0, "first"
    elif n < previous.logged or (previous.seq is not None and scan.max_seq is not None
                                 and scan.max_seq < previous.seq):
        epoch += 1
        first, method = 0, "reset"
        gap = (f"messages-logged count went from {previous.logged} to {n}"
               f"{'' if n < previous.logged else ' and the sequence numbers restarted'}: the router reloaded "
               "(or its counters were reset); what it logged between the last read and the reset is gone")
    else:
        delta = n - previous.logged
        resized = previous.buffer_bytes is not None and header.buffer_bytes != previous.buffer_bytes
        # Sequence numbers decide only after a full read (a filtered read's `seq` is that of
        # the watched lines, lower than the buffer's last number), and only where a numbered
        # old record is there to prove the boundary (the head record may have lost its number
        # to the wrap).
        first_seq = None
        if not resized and previous.tail and previous.seq is not None:
            first_seq = scan.after_seq
            # the record just before must be the last read's newest, or records between were lost
            if first_seq == 0 or scan.before_after_seq != previous.seq:
                first_seq = None
        if first_seq is not None:
            first, method = first_seq, "seq"
        else:
            first, method = max(0, k - delta), "count"
            if not resized and previous.tail:
                first, method, reset = _realign(_Fingerprints(scan), first, previous.tail, notes)
                if reset:
                    epoch += 1
                    gap = ("the last read's newest lines are gone although the count says they should "
                           f"still be in the buffer (count {previous.logged} -> {n}): taken as a counter "
                           "reset (reload); everything in the buffer is reported")
        present = k - first
        if gap is None and delta > present and first == 0:
            # Nothing of the last read is left: the difference is what the buffer lost.
            lost = delta - present
            if resized:
                why = (f"the buffer was resized from {previous.buffer_bytes} to {header.buffer_bytes} bytes, "
                       "which empties it")
            elif k:
                why = "the buffer wrapped past the last read, or was cleared"
            else:
                why = "the buffer was cleared"
            gap = f"{lost} of {delta} messages logged since the last read are no longer in the buffer: {why}"
        elif delta > present and method != "reset":
            # An old record is still there, so (first in, first out) nothing after it was lost:
            # the router's count and our grouping of lines into records disagree.
            notes.append(f"the count grew by {delta} but {present} records follow the last read's")
        elif present > delta and method != "reset":
            notes.append(f"{present} records after the last read's tail but the count grew by {delta}")

    base = n - (k - 1)  # ordinal of records[0] by the count
    if method in ("realigned", "seq") and first > 0 and previous is not None and previous.logged is not None:
        # The last read's tail is in the buffer: number on from it (past any ordinal handed
        # out already, so that keys stay unique).
        base = max(previous.logged, previous.top) + 1 - first
    new = tuple(NewLine(text, base + i, seq, _key(epoch, base + i, seq, 0)) for i, text, seq in scan.texts if i >= first)
    watched = tuple(Watched(fp, base + i, base + i) for fp, i in scan.watched)
    position = LogPosition(
        logged=n, buffer_bytes=header.buffer_bytes,
        seq=scan.max_seq if scan.max_seq is not None else (
            previous.seq if previous and method not in ("reset",) else None),
        epoch=epoch, tail=tuple(scan.fp(i) for i in range(max(0, k - TAIL_RECORDS), k)), watched=watched,
        record_bytes=scan.max_size if scan.max_size is not None else (previous.record_bytes if previous else None),
        counted=previous.counted if previous else 0,
        top=max(n, base + k - 1, previous.top if previous and method != "reset" else 0),
    )
    return LogRead(new, position, gap=gap, method=method, notes=tuple(notes))


def _realign(fps: _Fingerprints, expected: int, tail: tuple[str, ...], notes: list[str]) -> tuple[int, str, bool]:
    """Check the last read's tail sits just before `expected`; realign on it when its lines are
    distinct and sit elsewhere. Returns (first new index, method, counter reset?)."""
    if expected == 0 or len(set(tail)) == 1:
        return expected, "count", False  # nothing old expected, or identical lines: counts decide
    n = len(tail)

    def ends_at(j: int) -> bool:  # tail ends just before index j
        # records[0] may be cut by the wrap: never compare it.
        m = min(n, j - 1)
        return m <= 0 or fps.between(j - m, j) == list(tail[n - m:])

    if ends_at(expected):
        return expected, "count", False
    candidates = [j for j in range(2, len(fps) + 1) if ends_at(j)]  # j >= 2: one real record compared
    if candidates:
        j = min(candidates, key=lambda c: abs(c - expected))
        notes.append(f"last read's tail found {j - expected:+d} records from where the count put it")
        return j, "realigned", False
    if any(fps.present_from(f, 1) for f in tail):
        return expected, "count", False  # partly there: a grouping difference, keep the count
    return 0, "reset", True


def _filtered_read(previous: LogPosition | None, header: LogHeader, lines: Sequence[str],
                   watch: Sequence[str], record_bound: int | None) -> LogRead:
    def defer(why: str) -> LogRead:
        return LogRead((), previous or LogPosition(), full_read_needed=why, method="none")

    if not watch:
        raise WatchError("a filtered read needs the watched mnemonics its command was built from")
    n = header.logged
    assert n is not None
    if previous is None or previous.logged is None:
        return defer("no position yet: the first read must see the whole buffer")
    if previous.buffer_bytes != header.buffer_bytes:
        return defer(f"buffer size changed ({previous.buffer_bytes} -> {header.buffer_bytes} bytes)")
    if n < previous.logged:
        return defer(f"messages-logged count went down ({previous.logged} -> {n})")
    matcher = watch_matcher(watch)
    records = [r for r in group_records(lines) if matcher.search(r.text)]
    delta = n - previous.logged
    bound = record_bound or max(MIN_RECORD_BOUND, 2 * (previous.record_bytes or MIN_RECORD_BOUND))
    capacity = (header.buffer_bytes or 0) // bound  # messages the buffer surely holds

    def surely_present(w: Watched) -> bool:
        return n - w.lo < capacity

    old = previous.watched
    if records and records[-1].seq is not None and previous.seq is not None:
        # (A reload shows as the count going down, checked above; the watched lines' numbers
        # may all be old, so they prove nothing about it.)
        first = next((i for i, r in enumerate(records) if r.seq is not None and r.seq > previous.seq), len(records))
        # Old lines still shown are the newest remembered ones (the buffer drops from its head).
        kept = list(old[len(old) - first:]) if 0 < first <= len(old) else []
        if [w.fp for w in kept] != [r.fp for r in records[:first]]:
            kept = [Watched(r.fp, 0, previous.logged) for r in records[:first]]  # place unknown
        newest_old_shown = bool(old) and first > 0 and records[first - 1].fp == old[-1].fp
        if not newest_old_shown and delta >= capacity:
            return defer(f"{delta} messages since the last read: more than the buffer surely holds")
        return _filtered_result(previous, n, records[first:], kept, "seq")

    fps = [r.fp for r in records]
    p = [w.fp for w in old]
    # Lines before the first surely-present one may have left the buffer; that one has not.
    pinned = next((i for i, w in enumerate(old) if surely_present(w)), len(old))
    valid = [
        d for d in range(0, pinned + 1)
        if 0 <= len(fps) - (len(p) - d) <= delta and p[d:] == fps[:len(p) - d]
    ]
    if not valid:
        return defer("the watched lines do not continue the last read's (buffer cleared?)")
    if len(valid) > 1:
        return defer(f"{len(valid)} ways to align identical watched lines on the last read's")
    d = valid[0]
    if d == len(p) and delta >= capacity:
        # None of the last read's watched lines is left to show that nothing was lost.
        return defer(f"{delta} messages since the last read: more than the buffer surely holds")
    return _filtered_result(previous, n, records[len(p) - d:], list(old[d:]), "align")


def _filtered_result(previous: LogPosition, n: int, fresh_records: list[_Record], kept: list[Watched],
                     method: str) -> LogRead:
    assert previous.logged is not None
    counted = previous.counted
    new: list[NewLine] = []
    fresh: list[Watched] = []
    for r in fresh_records:
        counted += 1
        new.append(NewLine(r.text, None, r.seq, _key(previous.epoch, None, r.seq, counted)))
        fresh.append(Watched(r.fp, previous.logged + 1, n))
    seqs = [r.seq for r in fresh_records if r.seq is not None]
    position = replace(previous, logged=n, seq=max(seqs) if seqs else previous.seq, tail=(),
                       watched=tuple(kept + fresh)[-MAX_MATCHED:], counted=counted)
    return LogRead(tuple(new), position, method=method)


def _fingerprint_read(previous: LogPosition | None, lines: Sequence[str], watch: Sequence[str],
                      filtered: bool) -> LogRead:
    """No `messages logged` count: fall back to fingerprints with multiplicity (cursor.py).
    Identical lines are told apart only by how many the buffer holds; a wrap that drops
    some while as many identical ones arrive goes unseen."""
    records = group_records(lines)
    if filtered and watch:
        matcher = watch_matcher(watch)
        records = [r for r in records if matcher.search(r.text)]
    cursor = LogCursor.from_text(previous.fallback if previous else None)
    fresh, cursor = fingerprint_new_lines(cursor, [r.text for r in records])
    base = previous or LogPosition()
    counted = base.counted
    new = []
    for text in fresh:
        counted += 1
        new.append(NewLine(text, None, None, f"{base.epoch}:f{counted}"))
    position = replace(base, logged=None, tail=(), watched=(), fallback=cursor.to_text(), counted=counted)
    return LogRead(tuple(new), position, method="fingerprint",
                   notes=("no messages-logged count in the header: identical lines are matched by text",))


# --------------------------------------------------------------------------- one poll


FULL_COMMAND = "show logging"


def poll_log(run: Callable[[str], str], previous: LogPosition | None, watch: Sequence[str], *,
             full: bool = False, only_watched: bool = False,
             whole_buffer: AbstractContextManager[object] | None = None) -> LogRead:
    """One poll of a router's log: the filtered command, then the whole buffer only when the
    filtered read cannot be exact (or `full` asks for it: the first read, every Nth poll).

    `run(command) -> output text` is the caller's session. Persist `result.position.to_text()`
    after handling `result.new_lines`; report `result.gap` when it is set. `only_watched`:
    report only the watched lines (the filtered read's kind) from a whole-buffer read too,
    which then holds nothing of the other records but their fingerprints. `whole_buffer`
    is held while the whole buffer is read and walked (the caller's bound on how many such
    reads, each a copy or two of a 10 MB buffer, run at once)."""
    if not full and previous is not None:
        header, lines = split_show_logging(run(poll_command(watch)))
        result = read_new_lines(previous, header, lines, watch=watch, filtered=True)
        if result.full_read_needed is None:
            return result
        why = result.full_read_needed
    else:
        why = None
    with whole_buffer if whole_buffer is not None else nullcontext():
        header, body = iter_show_logging(run(FULL_COMMAND))  # the whole buffer: walked, not split into a list
        result = read_new_lines(previous, header, body, watch=watch, only_watched=only_watched)
    return replace(result, whole=True, notes=(*result.notes, f"whole buffer read: {why}") if why else result.notes)


# --------------------------------------------------------------------------- a past moment


def log_as_of(text: str, logged: int) -> str | None:
    """A whole `show logging` cut back to the moment its header counted `logged` messages:
    the header, then the buffer's records without the newest (count now - `logged`) ones.

    None when the output has no count, or a count below `logged` (the router reloaded or
    its counters were reset in between: the records cannot be told apart). The records to
    drop are found from the end of the buffer (a 10 MB buffer, read at every arming, has
    tens of thousands of records; the few logged since the count are at its tail), so only
    they are parsed; the rest is copied line by line, blank lines left out as records
    leave them (at C speed: a line-by-line Python loop over a 10 MB buffer cost 0.1 s a copy)."""
    header, _body = iter_show_logging(text)
    if header.logged is None or header.logged < logged:
        return None
    marker = next((m for m in _LOG_BUFFER_AT.finditer(text)), None)
    body_start = marker.end() if marker is not None else 0
    cut = _newest_records_start(text, body_start, header.logged - logged)
    pieces = text[:body_start].splitlines()
    pieces += filter(str.strip, text[body_start:cut].splitlines())
    return "\n".join(pieces) + "\n"


def _newest_records_start(text: str, start: int, drop: int) -> int:
    """Where, in `text[start:]` (a buffer's lines), its newest `drop` records begin: a
    record starts at a line `_grouped` takes as a start, or at the buffer's first line."""
    if drop <= 0:
        return len(text)
    end, found, first = len(text), 0, start
    while end > start:
        line_start = max(text.rfind("\n", start, end - 1) + 1, start) if end - 1 > start else start
        line = text[line_start:end].rstrip("\r\n")
        end = line_start
        if not line.strip():
            continue
        first = line_start
        if line[0] not in " \t" and parse_log_line(line, year=2000) is not None:
            found += 1
            if found == drop:
                return line_start
    return first  # fewer records than `drop` (the buffer's first line is one): none is kept
