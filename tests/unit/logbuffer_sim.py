"""A router's log buffer for the reader's property tests: byte-accurate FIFO with the head
record cut by the wrap, the `messages logged` count, sequence numbers, clear, resize, reload.

Its rules are the reader's documented assumptions (collector/detect/logread.py): the count
grows by one per buffered message and survives `clear logging` and a resize; sequence
numbers count every message produced (also those below the buffer's level); a reload
resets both and empties the buffer.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

INV_SPI = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=192.0.2.1, "
           "prot=50, spi=0x1DB73BBB(498547643), srcaddr=198.51.100.{n}")
BODIES = (
    INV_SPI.format(n=2),
    INV_SPI.format(n=2),
    INV_SPI.format(n=3),
    "%LINEPROTO-5-UPDOWN: Line protocol on Interface Tunnel10, changed state to down",
    "%LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to up",
    "IKEv2:(SESSION ID = 1,SA ID = 1):Received Packet [From 198.51.100.2:500/To 192.0.2.1:500/VRF i0:f0]\n"
    "Payload contents:\n SA N  TSi TSr",
    "%SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.0.0.9)",
)
STAMPS = ("uptime", "none", "datetime", "datetime-year")


@dataclass
class Message:
    ordinal: int
    text: str


@dataclass
class SimRouter:
    capacity: int
    stamp: str = "uptime"
    seq_on: bool = False
    logged: int = 0
    seq: int = 0
    clock: int = 0  # seconds; may jump back
    records: deque[Message] = field(default_factory=deque)
    history: list[Message] = field(default_factory=list)  # every buffered message since boot
    used: int = 0
    cut: int = 0  # bytes overwritten at the start of the oldest record

    def _prefix(self) -> str:
        if self.stamp == "none":
            return ""
        if self.stamp == "uptime":
            return "8w0d: "
        h, rem = divmod(self.clock % 86400, 3600)
        m, s = divmod(rem, 60)
        year = " 2026" if self.stamp == "datetime-year" else ""
        return f"*Dec  6{year} {h:02d}:{m:02d}:{s:02d}: "

    def log(self, body: str, *, buffered: bool = True) -> None:
        self.seq += 1
        self.clock += 1
        if not buffered:  # below the buffer's level: numbered, not buffered, not counted
            return
        text = (f"{self.seq:06d}: " if self.seq_on else "") + self._prefix() + body
        self.logged += 1
        self.records.append(Message(self.logged, text))
        self.history.append(Message(self.logged, text))
        self.used += len(text) + 1
        while self.records and self.used - self.cut > self.capacity:
            first = len(self.records[0].text) + 1
            excess = self.used - self.cut - self.capacity
            if first - self.cut <= excess:
                self.records.popleft()
                self.used -= first
                self.cut = 0
            else:
                self.cut += excess

    def jump_clock(self, seconds: int) -> None:
        self.clock = max(0, self.clock + seconds)

    def clear(self) -> None:
        self.records.clear()
        self.used = self.cut = 0

    def resize(self, capacity: int) -> None:
        if capacity != self.capacity:
            self.capacity = capacity
            self.clear()

    def reload(self) -> None:
        self.clear()
        self.history.clear()
        self.logged = self.seq = 0

    def present(self) -> list[Message]:
        """Records in the buffer, the oldest possibly cut (its text then is the visible part)."""
        out = [Message(m.ordinal, m.text) for m in self.records]
        if out and self.cut:
            visible = out[0].text[self.cut:].lstrip("\n")
            if visible.strip():
                out[0] = Message(out[0].ordinal, visible)
            else:  # only the newline is left: nothing of it can be read
                out.pop(0)
        return out

    def show_logging(self) -> str:
        head = [
            "Syslog logging: enabled (0 messages dropped, 0 messages rate-limited, 0 flushes, 0 overruns, "
            "xml disabled, filtering disabled)",
            "",
            "    Console logging: disabled",
            f"    Monitor logging: level debugging, {self.logged + 7} messages logged, xml disabled,",
            "                     filtering disabled",
            f"    Buffer logging:  level debugging, {self.logged} messages logged, xml disabled,",
            "                    filtering disabled",
            f"    Trap logging: level informational, {self.seq} message lines logged",
            "",
            f"Log Buffer ({self.capacity} bytes):",
            "",
        ]
        visible = "\n".join(m.text for m in self.records)[self.cut:] if self.records else ""
        body = visible.split("\n") if visible else []
        return "\n".join(head + body) + "\n"

    def show_logging_include(self, command: str) -> str:
        """What `show logging | include REGEX` prints: IOS regex semantics for the characters
        the poll command uses (`.`, `|`, literals), which Python's re shares."""
        regex = re.compile(command.split(" | include ", 1)[1])
        return "".join(line + "\n" for line in self.show_logging().splitlines() if regex.search(line))
