"""A router's logging subsystem: timestamps, sequence numbers, the buffer and its destinations.

Formats follow docs/domain.md §2.1 (line prefixes) and §2.11 (`show logging` header).
The buffer is byte-accurate: once it wraps, the oldest line is cut mid-way, so the first
line after `Log Buffer (N bytes):` can be a fragment, as on a real router. Its text is
kept in blocks of BLOCK_BYTES (not one object per line) so that a 10 MB or 50 MB buffer
costs about its size in memory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from collector.lab.clock import LabZone

LEVELS: dict[str, int] = {
    "emergencies": 0,
    "alerts": 1,
    "critical": 2,
    "errors": 3,
    "warnings": 4,
    "notifications": 5,
    "informational": 6,
    "debugging": 7,
}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
DEBUG_SEVERITY = 7
DEFAULT_BUFFER_SIZE = 4096
BLOCK_BYTES = 65536
# The message discriminators the lab's routers define: name -> mnemonic substring dropped.
# `logging discriminator NAME mnemonics drops WORD` (Cisco "Message Discriminator" guide).
DISCRIMINATORS: dict[str, str] = {"NOFLAP": "UPDOWN"}
SYSLOG_QUEUE_LIMIT = 20000  # lines kept for the UDP sender if nobody drains them


def level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    return LEVELS[level]


@dataclass(frozen=True, slots=True)
class TimestampFormat:
    """One `service timestamps {log|debug} ...` setting."""

    kind: str = "datetime"  # "datetime" | "uptime" | "none"
    msec: bool = True
    localtime: bool = False
    show_timezone: bool = False
    year: bool = False

    def config_line(self, which: str) -> str:
        if self.kind == "none":
            # IOS keeps the default's keyword in the `no` form (public router configs)
            return f"no service timestamps {which} uptime"
        if self.kind == "uptime":
            return f"service timestamps {which} uptime"
        words = ["service timestamps", which, "datetime"]
        if self.msec:
            words.append("msec")
        if self.localtime:
            words.append("localtime")
        if self.show_timezone:
            words.append("show-timezone")
        if self.year:
            words.append("year")  # keyword order of the Cisco command reference
        return " ".join(words)


def uptime_text(seconds: float) -> str:
    """IOS compact uptime stamps: `00:39:24`, `1d02h`, `8w0d`, `1y2w` (Cisco, "Troubleshooting
    with service timestamps"; forms seen in public IOS logs)."""
    s = int(seconds)
    days, rem = divmod(s, 86400)
    if days >= 365:
        return f"{days // 365}y{(days % 365) // 7}w"
    if days == 0:
        h, rem = divmod(rem, 3600)
        m, sec = divmod(rem, 60)
        return f"{h:02d}:{m:02d}:{sec:02d}"
    if days < 7:
        return f"{days}d{rem // 3600:02d}h"
    return f"{days // 7}w{days % 7}d"


_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def clock_text(when: datetime, *, msec: bool = True, year: bool = False, tz: str | None = None) -> str:
    """`Nov 27 10:41:07.123` (day padded to two columns, as IOS prints it)."""
    text = "%s %2d %s%02d:%02d:%02d" % (
        _MONTHS[when.month],
        when.day,
        f"{when.year} " if year else "",
        when.hour,
        when.minute,
        when.second,
    )
    if msec:
        text += ".%03d" % (when.microsecond // 1000)
    if tz:
        text += " " + tz
    return text


def _mnemonic_has(text: str, word: str) -> bool:
    """Does the message's `%FAC-SEV-MNEMONIC:` contain `word` (a discriminator's `mnemonics drops`)?"""
    start = text.find("%")
    if start < 0:
        return False
    end = text.find(":", start)
    return end > start and word in text[start:end]


@dataclass
class Destination:
    level: int | None  # None = disabled
    logged: int = 0


class RouterLog:
    """Everything the router does with a message once it has been produced."""

    def __init__(
        self,
        *,
        buffer_size: int,
        buffer_level: str | None,
        console_level: str | None,
        monitor_level: str | None,
        trap_level: str,
        hosts: list[tuple[str, int]],
        log_format: TimestampFormat,
        debug_format: TimestampFormat,
        sequence_numbers: bool,
        ntp_synced: bool,
        doubled_colon: bool,
        boot_time: datetime,
        xe: bool,
        discriminator: str | None = None,
        zone: LabZone | None = None,
    ):
        self.buffer_size = buffer_size
        self.buffer = Destination(None if buffer_level is None else LEVELS[buffer_level])
        self.console = Destination(None if console_level is None else LEVELS[console_level])
        self.monitor = Destination(None if monitor_level is None else LEVELS[monitor_level])
        self.trap = Destination(LEVELS[trap_level])
        self.hosts = list(hosts)
        self.log_format = log_format
        self.debug_format = debug_format
        self.sequence_numbers = sequence_numbers
        self.ntp_synced = ntp_synced
        self.doubled_colon = doubled_colon  # IOS-XE 17 with show-timezone prints `UTC: : %...` (`EDT: : %`)
        self.boot_time = boot_time
        self.zone = zone  # `clock timezone` / `summer-time`; None: UTC
        self.xe = xe
        self.sequence = 0
        self.syslog_counter = 0
        self._blocks: deque[str] = deque()  # full blocks of lines, each ending in "\n"
        self._tail: list[str] = []  # newest lines, not yet packed into a block
        self._tail_bytes = 0
        self._bytes = 0
        self._cut = 0  # bytes already overwritten at the start of the oldest block
        self.discriminator = discriminator  # name on `logging buffered discriminator NAME`
        self.discriminator_drops: str | None = DISCRIMINATORS.get(discriminator or "")  # mnemonic it drops
        self.dropped_by_md = 0
        self._syslog: deque[tuple[datetime, str]] = deque(maxlen=SYSLOG_QUEUE_LIMIT)  # (logged at, wire line)
        self.monitor_sinks: list[deque[str]] = []

    # -- producing ----------------------------------------------------------------

    def prefix(self, when: datetime, *, debug: bool) -> str:
        fmt = self.debug_format if debug else self.log_format
        if fmt.kind == "none":
            return ""
        if fmt.kind == "uptime":
            return uptime_text((when - self.boot_time).total_seconds()) + ": "
        mark = "" if self.ntp_synced else "*"
        name = "UTC"
        if fmt.localtime and self.zone is not None:  # without `localtime` IOS stamps in UTC
            when, name = self.zone.local(when)
        return mark + clock_text(when, msec=fmt.msec, year=fmt.year, tz=name if fmt.show_timezone else None) + ": "

    def emit(self, when: datetime, severity: int, text: str, *, debug: bool = False) -> str:
        """Log one message (text after the timestamp; continuation lines joined by "\\n")."""
        self.sequence += 1
        head = self.prefix(when, debug=debug)
        if head and not debug and self.doubled_colon and text.startswith("%"):
            head += ": "
        if self.sequence_numbers:
            head = f"{self.sequence:06d}: " + head
        line = head + text
        if self.buffer.level is not None and severity <= self.buffer.level:
            if self.discriminator and self.discriminator_drops and _mnemonic_has(text, self.discriminator_drops):
                self.dropped_by_md += 1
            else:
                self.buffer.logged += 1
                self._append(line)
        if self.console.level is not None and severity <= self.console.level:
            self.console.logged += 1
        if self.monitor.level is not None and severity <= self.monitor.level:
            self.monitor.logged += 1
            for sink in self.monitor_sinks:
                sink.append(line)
        if severity <= self.trap.level:
            self.trap.logged += 1
            self.syslog_counter += 1
            wire = line.replace("\n", " ")
            self._syslog.append((when, wire if self.sequence_numbers else f"{self.syslog_counter}: {wire}"))
        return line

    def _append(self, line: str) -> None:
        size = len(line) + 1
        self._tail.append(line)
        self._tail_bytes += size
        self._bytes += size
        if self._tail_bytes >= BLOCK_BYTES:
            self._pack()
        if self._bytes - self._cut > self.buffer_size:
            self._trim()

    def _pack(self) -> None:
        if self._tail:
            self._blocks.append("\n".join(self._tail) + "\n")
            self._tail.clear()
            self._tail_bytes = 0

    def _trim(self) -> None:
        while self._bytes - self._cut > self.buffer_size:
            if not self._blocks:
                self._pack()
            first = len(self._blocks[0])
            excess = self._bytes - self._cut - self.buffer_size
            if first - self._cut <= excess:
                self._blocks.popleft()
                self._bytes -= first
                self._cut = 0
            else:
                self._cut += excess

    def prefill(self, lines: list[tuple[int, str]]) -> None:
        """History the router logged before the lab started: (severity, full line with prefix).

        Counted as logged (header counters, sequence numbers) but not sent to syslog.
        """
        for severity, line in lines:
            self.sequence += 1
            if self.console.level is not None and severity <= self.console.level:
                self.console.logged += 1
            if self.monitor.level is not None and severity <= self.monitor.level:
                self.monitor.logged += 1
            if severity <= self.trap.level:
                self.trap.logged += 1
                self.syslog_counter += 1
            if self.buffer.level is not None and severity <= self.buffer.level:
                if self.discriminator and self.discriminator_drops and _mnemonic_has(line, self.discriminator_drops):
                    self.dropped_by_md += 1
                    continue
                self.buffer.logged += 1
                self._append(line)

    # -- settings -------------------------------------------------------------------

    def set_buffered(self, size: int | None, level: str | None) -> None:
        """`logging buffered [SIZE] [LEVEL]`; a new size reallocates (and empties) the buffer."""
        if size is not None and size != self.buffer_size:
            self.buffer_size = size
            self.clear()
        self.buffer.level = LEVELS[level or "debugging"]

    def disable_buffered(self) -> None:
        self.buffer.level = None

    def clear(self) -> None:
        self._blocks.clear()
        self._tail.clear()
        self._tail_bytes = 0
        self._bytes = 0
        self._cut = 0

    # -- reading --------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        return self._bytes - self._cut

    def lines(self) -> list[str]:
        """Buffer content as physical lines, oldest first (the first may be a fragment)."""
        text = self.buffer_text()
        return text.split("\n") if text else []

    def buffer_text(self) -> str:
        parts = list(self._blocks)
        if parts and self._cut:
            parts[0] = parts[0][self._cut :]
        if self._tail:
            parts.append("\n".join(self._tail) + "\n")
        elif not parts:
            return ""
        text = "".join(parts)
        return text[:-1] if text.endswith("\n") else text

    def drain_syslog(self) -> list[str]:
        return [line for _when, line in self.drain_syslog_timed()]

    def drain_syslog_timed(self) -> list[tuple[datetime, str]]:
        """The lines for syslog not sent yet, each with the lab time it was logged at."""
        out = list(self._syslog)
        self._syslog.clear()
        return out

    def header(self) -> str:
        def dest(label: str, d: Destination, pad: str) -> list[str]:
            if d.level is None:
                return [f"    {label} disabled, xml disabled,", f"{pad}filtering disabled"]
            return [
                f"    {label} level {LEVEL_NAMES[d.level]}, {d.logged} messages logged, xml disabled,",
                f"{pad}filtering disabled",
            ]

        lines = [
            "Syslog logging: enabled (0 messages dropped, 0 messages rate-limited, 0 flushes, "
            "0 overruns, xml disabled, filtering disabled)",
            "",
        ]
        if self.discriminator:
            # layout of the MD table: Cisco "Message Discriminator" guide, Genie's show logging data
            lines += [
                "Active Message Discriminator:",
                f"{self.discriminator:<10}mnemonics      drops    {self.discriminator_drops or ''}",
                "",
            ]
        else:
            lines += ["No Active Message Discriminator.", "", ""]
        lines += ["", "No Inactive Message Discriminator.", "", ""]
        lines += dest("Console logging:", self.console, " " * 21)
        lines += dest("Monitor logging:", self.monitor, " " * 21)
        lines += dest("Buffer logging: ", self.buffer, " " * 20)
        lines += [
            "    Exception Logging: size (4096 bytes)",
            "    Count and timestamp logging messages: disabled",
            "    Persistent logging: disabled",
            "",
            "No active filter modules.",
            "",
        ]
        trap_indent = "" if self.xe else "    "
        lines.append(
            f"{trap_indent}Trap logging: level {LEVEL_NAMES[self.trap.level]}, {self.trap.logged} message lines logged"
        )
        for host, port in self.hosts:
            lines += [
                f"        Logging to {host}  (udp port {port}, audit disabled,",
                "              link up),",
                f"              {self.trap.logged} message lines logged, ",
                "              0 message lines rate-limited, ",
                "              0 message lines dropped-by-MD, ",  # the discriminator is on the buffer only
                f"              xml disabled, sequence number {'enabled' if self.sequence_numbers else 'disabled'}",
                "              filtering disabled",
            ]
        lines += [
            "        Logging Source-Interface:       VRF Name:",
            "        Loopback0                                ",
            "",
        ]
        return "\n".join(lines)

    def show(self) -> str:
        text = self.header()
        if self.buffer.level is None:
            return text + "\n"
        body = self.buffer_text()
        return text + f"\nLog Buffer ({self.buffer_size} bytes):\n\n" + (body + "\n" if body else "")

    def snapshot_settings(self) -> dict[str, object]:
        return {
            "buffer_size": self.buffer_size,
            "buffer_level": None if self.buffer.level is None else LEVEL_NAMES[self.buffer.level],
            "console_level": None if self.console.level is None else LEVEL_NAMES[self.console.level],
            "monitor_level": None if self.monitor.level is None else LEVEL_NAMES[self.monitor.level],
            "trap_level": LEVEL_NAMES[self.trap.level],
            "hosts": [f"{h}:{p}" for h, p in self.hosts],
            "log_format": self.log_format,
            "debug_format": self.debug_format,
        }
