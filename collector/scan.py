"""Look for out-of-sync tunnels in syslog archives, without touching a router.

Input: files a syslog server or an engineer already has, plain or gzip-compressed:

* rsyslog / syslog-ng files: `Dec  6 00:12:07 HOST <what the router sent>` (the traditional
  format) or `2026-12-06T00:12:07.123456+01:00 HOST <...>` (RSYSLOG_FileFormat, syslog-ng
  ISO stamps);
* relayed datagrams kept with their `<PRI>` (and possibly the relay's own header);
* saved `show logging` output (no archive header; the receiver is then the inventory owner
  of the destination address, or the file's name).

Only lines holding `RECVD_PKT_INV_SPI` are parsed, and they are parsed by
`collector.detect.logline.parse_invalid_spi` (the agent's own strict validation); the
archive header in front of them is the one thing this module reads itself (a pre-step:
logline knows what routers and relays send, not what syslog servers write to disk).

Speed: a day of a large network's syslog is tens of millions of lines, almost none of them
invalid-SPI. Files are read in large binary blocks and searched with `bytes.find`, so a
line that is not an invalid-SPI line costs no Python work at all.

Flows are counted the way the agent counts them (`occurs` within `within`, windows anchored
at their first line, as in the playbook): a flow whose windows never reached `occurs` lines
was a rekey transient; one that did is repeated; a repeated flow still logging when the
archive ends (see `_quiet_allowance`) is still going.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from collector.detect.logline import parse_invalid_spi, parse_log_line

__all__ = ["ScanError", "FlowSummary", "ScanResult", "scan_files", "TRANSIENT", "REPEATED", "STILL_GOING"]

log = logging.getLogger(__name__)

TRANSIENT, REPEATED, STILL_GOING = "transient", "repeated", "still going"

_TAG = b"RECVD_PKT_INV_SPI"
_BLOCK = 8 << 20  # bytes read at once: large enough that per-block Python work is noise
_GZIP_MAGIC = b"\x1f\x8b"

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}

# What a syslog server writes in front of the message it received. The BSD form is told
# apart from an IOS stamp by what follows the seconds: a space and a host name here, a
# colon or a fraction in an IOS stamp ("Nov 9 21:10:13: %..." / "Sep 2 13:27:57.707: %...").
# The host may not end with ':' so that "Jan 8 15:00:23 EDT: %..." stays an IOS stamp.
_ARCHIVE_HEADER = re.compile(
    r"(?:<(?P<pri>\d{1,3})>)?"
    r"(?:(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)"
    r"|(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(?P<day>\d{1,2})"
    r" (?P<hh>\d\d):(?P<mi>\d\d):(?P<ss>\d\d))"
    r" (?P<host>[A-Za-z0-9][A-Za-z0-9._:-]{0,254}(?<!:)) (?P<rest>.*)",
    re.S,
)


class ScanError(Exception):
    """A file that cannot be read: one line naming it."""


@dataclass
class FlowSummary:
    receiver: str
    src: str
    dst: str
    spi: int
    prot: int
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    verdict: str = TRANSIENT
    known_peer: bool | None = None  # None: no inventory given
    peer_name: str | None = None  # the inventory host owning the source address
    files: list[str] = field(default_factory=list)
    _times: list[datetime] = field(default_factory=list, repr=False)

    @property
    def spi_hex(self) -> str:
        return f"0x{self.spi:08X}"

    def as_dict(self) -> dict:
        return {
            "receiver": self.receiver, "source": self.src, "destination": self.dst,
            "spi": self.spi_hex, "prot": self.prot, "count": self.count,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "verdict": self.verdict, "known_peer": self.known_peer, "peer": self.peer_name,
            "files": self.files,
        }


@dataclass
class ScanResult:
    flows: list[FlowSummary]
    lines: int  # physical lines read, all files
    matched: int  # lines holding the invalid-SPI tag
    rejected: int  # of those, lines that did not validate (edited, truncated, foreign)
    untimed: int  # valid lines without any time stamp (counted, not windowed)
    end: datetime | None  # newest time stamp seen in the archive
    files: list[str]


# --------------------------------------------------------------------------- reading


def _open(path: Path):
    try:
        fh = open(path, "rb")
        magic = fh.read(2)
        fh.seek(0)
    except OSError as exc:
        raise ScanError(f"{path}: {exc.strerror or exc}") from None
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb")
    return fh


def _blocks(path: Path) -> Iterator[bytes]:
    """The file in blocks that each end at a line end (the last may not)."""
    fh = _open(path)
    carry = b""
    try:
        with fh:
            while True:
                try:
                    block = fh.read(_BLOCK)
                except (OSError, EOFError, gzip.BadGzipFile) as exc:
                    raise ScanError(f"{path}: {exc}") from None
                if not block:
                    break
                cut = block.rfind(b"\n")
                if cut < 0:
                    carry += block
                    continue
                yield carry + block[: cut + 1]
                carry = block[cut + 1:]
    finally:
        if carry:
            yield carry


def _tagged_lines(block: bytes) -> Iterator[bytes]:
    """Every line of `block` that holds the tag; C-speed for the lines that do not."""
    find, rfind = block.find, block.rfind
    pos = find(_TAG)
    while pos >= 0:
        start = rfind(b"\n", 0, pos) + 1
        end = find(b"\n", pos)
        if end < 0:
            end = len(block)
        yield block[start:end]
        pos = find(_TAG, end)


def _last_line(block: bytes) -> bytes:
    stripped = block.rstrip(b"\r\n")
    return stripped[stripped.rfind(b"\n") + 1:]


# --------------------------------------------------------------------------- one line


@dataclass(frozen=True, slots=True)
class _Header:
    host: str | None
    time: datetime | None
    rest: str


def _archive_header(line: str, ref: datetime) -> _Header:
    """The syslog server's host and receive time, and the router's text after them."""
    m = _ARCHIVE_HEADER.match(line)
    if m is None:
        return _Header(None, None, line)
    when: datetime | None = None
    if m.group("iso"):
        try:
            # Wall clock as written: a BSD-stamped file of the same server has no zone either.
            when = datetime.fromisoformat(m.group("iso").replace(" ", "T")).replace(tzinfo=None)
        except ValueError:
            return _Header(None, None, line)
    else:
        try:
            when = datetime(ref.year, _MONTHS[m.group("mon")], int(m.group("day")),
                            int(m.group("hh")), int(m.group("mi")), int(m.group("ss")))
        except ValueError:
            return _Header(None, None, line)
        if when > ref + timedelta(days=2):  # December lines in a file written in January
            when = when.replace(year=when.year - 1)
    return _Header(m.group("host"), when, m.group("rest"))


def _line_time(line: str, ref: datetime) -> datetime | None:
    header = _archive_header(line, ref)
    if header.time is not None:
        return header.time
    record = parse_log_line(header.rest, year=ref.year)
    return record.timestamp if record is not None else None


# --------------------------------------------------------------------------- the scan


def scan_files(
    paths: Iterable[Path],
    *,
    inventory=None,
    since: datetime | timedelta | None = None,
    occurs: int = 2,
    within: timedelta = timedelta(minutes=10),
) -> ScanResult:
    """Scan archives for invalid-SPI flows.

    `inventory` (a `collector.inventory.Inventory`) names receivers by the owner of the
    destination address and tells whether a source is a known peer. `since` keeps lines at
    or after a time, or within a duration before the end of the archive."""
    flows: dict[tuple, FlowSummary] = {}
    total = matched = rejected = untimed = 0
    end: datetime | None = None
    names: list[str] = []
    owners = _owners(inventory)

    for path in paths:
        path = Path(path)
        names.append(str(path))
        try:
            stamp = path.stat().st_mtime
        except OSError as exc:
            raise ScanError(f"{path}: {exc.strerror or exc}") from None
        # A year-less stamp gets the year that puts it at or before the file's last write.
        mtime = datetime.fromtimestamp(stamp)
        written = datetime.fromtimestamp(stamp, timezone.utc)
        fallback_receiver = _stem(path)
        last = b""
        for block in _blocks(path):
            total += block.count(b"\n")
            if block and not block.endswith(b"\n"):
                total += 1
            tail = _last_line(block)
            if tail:
                last = tail
            for raw in _tagged_lines(block):
                matched += 1
                line = raw.decode("utf-8", "replace").rstrip("\r")
                header = _archive_header(line, mtime)
                event = parse_invalid_spi(header.rest, router="-", source="archive",
                                          received_at=written)
                if event is None:
                    rejected += 1
                    continue
                flow = event.flow
                when = header.time or event.device_time
                src, dst = str(flow.src), str(flow.dst)
                receiver = owners.get(dst) or header.host or _origin_host(header.rest) or fallback_receiver
                key = (receiver, src, dst, flow.spi, flow.prot)
                summary = flows.get(key)
                if summary is None:
                    summary = flows[key] = FlowSummary(receiver, src, dst, flow.spi, flow.prot)
                if str(path) not in summary.files:
                    summary.files.append(str(path))
                if when is None:
                    untimed += 1
                    summary.count += 1
                else:
                    summary._times.append(when)
        if last:
            when = _line_time(last.decode("utf-8", "replace").rstrip("\r"), mtime)
            if when is not None and (end is None or when > end):
                end = when

    for summary in flows.values():
        if summary._times and (end is None or max(summary._times) > end):
            end = max(summary._times)
    cutoff = _cutoff(since, end)
    result: list[FlowSummary] = []
    for summary in flows.values():
        times = sorted(t for t in summary._times if cutoff is None or t >= cutoff)
        if cutoff is not None and not times:
            continue
        summary._times = times
        summary.count += len(times)
        if times:
            summary.first, summary.last = times[0], times[-1]
        summary.verdict = _verdict(times, summary.count, occurs, within, end)
        if inventory is not None:
            peer = owners.get(summary.src)
            summary.known_peer = peer is not None
            summary.peer_name = peer
        result.append(summary)
    result.sort(key=lambda s: (s.first or datetime.min, s.receiver, s.src, s.spi))
    for summary in result:
        log.debug("flow %s %s -> %s: %d lines, %s", summary.spi_hex, summary.src, summary.dst, summary.count,
                  summary.verdict, extra={"router": summary.receiver, "flow": _flow_key(summary)})
    log.info("scanned %d files, %d lines: %d invalid-SPI lines, %d rejected, %d flows", len(names), total,
             matched, rejected, len(result), extra={"files": names})
    return ScanResult(flows=result, lines=total, matched=matched, rejected=rejected, untimed=untimed,
                      end=end, files=names)


def _flow_key(s: FlowSummary) -> str:
    """The agent's flow key (collector.detect.events.Flow.key) for log and JSON output."""
    return f"{s.receiver}|{s.src}|{s.dst}|{s.spi_hex}|{s.prot}"


def _verdict(times: list[datetime], count: int, occurs: int, within: timedelta, end: datetime | None) -> str:
    """EEM-style windows anchored at their first line, as the agent's tracker counts."""
    repeated = False
    if times:
        start, n = times[0], 0
        for t in times:
            if t - start > within:
                start, n = t, 0
            n += 1
            if n >= occurs:
                repeated = True
                break
    elif count >= occurs:
        repeated = True  # no time stamps at all: the count is all there is
    if not repeated:
        return TRANSIENT
    if times and end is not None and end - times[-1] <= _quiet_allowance(times, within):
        return STILL_GOING
    return REPEATED


def _quiet_allowance(times: list[datetime], within: timedelta) -> timedelta:
    """How long a flow may be silent at the end of the archive and still count as going on.

    IOS logs a flow at most about once a minute (the message is rate limited per flow), so
    a live flow has a line in the last minute or two; a flow that logged more slowly
    gets twice its own median gap. Never more than the counting window."""
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    typical = gaps[len(gaps) // 2] * 2 if gaps else timedelta(0)
    return min(max(typical, timedelta(minutes=2)), within)


def _cutoff(since: datetime | timedelta | None, end: datetime | None) -> datetime | None:
    if since is None:
        return None
    if isinstance(since, timedelta):
        return end - since if end is not None else None
    return since.replace(tzinfo=None) if since.tzinfo is not None else since


def _owners(inventory) -> dict[str, str]:
    """Address -> inventory host name: owned addresses first, then management addresses."""
    if inventory is None:
        return {}
    import ipaddress

    owners: dict[str, str] = {}
    for host in inventory.hosts.values():
        try:
            owners.setdefault(ipaddress.ip_address(host.hostname).compressed, host.name)
        except ValueError:
            pass
    for host in inventory.hosts.values():
        for address in host.addresses:
            try:
                owners[ipaddress.ip_address(address).compressed] = host.name
            except ValueError:
                pass
    return owners


def _origin_host(text: str) -> str | None:
    """`logging origin-id` host name inside the router's own text, if any."""
    record = parse_log_line(text)
    return record.hostname if record is not None else None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".log", ".txt"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or path.name


# --------------------------------------------------------------------------- output


def format_table(result: ScanResult) -> list[str]:
    """One line per flow, aligned, plus a header; times to the second."""
    def when(t: datetime | None) -> str:
        return t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"

    rows = [("RECEIVER", "SOURCE", "DESTINATION", "SPI", "COUNT", "FIRST", "LAST", "VERDICT", "KNOWN PEER")]
    for f in result.flows:
        known = "-" if f.known_peer is None else (f"yes ({f.peer_name})" if f.known_peer else "no")
        rows.append((f.receiver, f.src, f.dst, f.spi_hex, str(f.count), when(f.first), when(f.last), f.verdict, known))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
