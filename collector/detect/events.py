"""Typed values that travel from a log line to the flow tracker.

A `%CRYPTO-4-RECVD_PKT_INV_SPI` line becomes an `InvalidSpiEvent`; events with the same
`Flow` key are counted by the tracker. Both are frozen so they can be keys and be shared
between threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address


@dataclass(frozen=True)
class Flow:
    """One invalid-SPI flow as note 115801 defines it, seen by one receiving router."""

    __slots__ = ("router", "src", "dst", "spi", "prot", "_hash")

    router: str  # inventory name of the router that logged the drop (the receiver)
    src: IPv4Address | IPv6Address  # srcaddr: the sender, still using a stale SA
    dst: IPv4Address | IPv6Address  # destaddr: the receiver's own address
    spi: int  # the SPI the sender encrypts with, which the receiver does not know
    prot: int  # 50 = ESP, 51 = AH

    def __post_init__(self) -> None:
        # Hashed once: flows key the tracker's and the core's maps, and an address hashes
        # slowly (2 µs a flow: most of what a save of 5,580 open windows' changes took).
        object.__setattr__(self, "_hash", hash((self.router, self.src, self.dst, self.spi, self.prot)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        # rebuilt, so hashed again, where it is unpickled: a string's hash differs per process
        return (Flow, (self.router, self.src, self.dst, self.spi, self.prot))

    @property
    def spi_hex(self) -> str:
        return f"0x{self.spi:08X}"

    def key(self) -> str:
        """A stable text key, used in the state store and bundle names."""
        return f"{self.router}|{self.src}|{self.dst}|{self.spi_hex}|{self.prot}"


@dataclass(frozen=True, slots=True)
class InvalidSpiEvent:
    """One `%CRYPTO-4-RECVD_PKT_INV_SPI` line, parsed and validated."""

    flow: Flow
    raw: str  # the line verbatim, as the router printed or sent it
    device_time: datetime | None  # timestamp printed by the router (no year: filled in), None if absent
    seq: int | None  # `service sequence-numbers` value, None if absent
    interface: str | None  # `input interface=` where the image prints it
    source: str  # "poll" | "syslog"
    received_at: datetime  # when the agent got the line (UTC, aware)
