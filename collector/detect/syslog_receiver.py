"""UDP syslog receiver (RFC 3164 and 5424), for routers that send their log to the jump host.

Only datagrams from addresses the inventory knows are looked at; everything else is
counted and dropped. A line that passes is still only a *hint*: the agent confirms it over
SSH on that router before anything is armed, so a spoofed datagram can at most cause one
extra log read.

The socket is drained by one thread into a bounded queue. Under a flood the oldest hints
are not what matters: when the queue is full new datagrams are dropped and counted, and a
real repeated flow is still found by the next SSH log poll.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address

log = logging.getLogger(__name__)

MAX_DATAGRAM = 8192  # RFC 5426 recommends receivers accept at least 2048 octets
_MARKER = b"RECVD_PKT_INV_SPI"


@dataclass(frozen=True, slots=True)
class SyslogHint:
    router: str  # inventory name of the sender
    source_ip: str
    data: bytes  # the datagram, at most MAX_DATAGRAM bytes


@dataclass
class ReceiverStats:
    received: int = 0
    foreign: int = 0  # from addresses outside the inventory
    ignored: int = 0  # not an invalid-SPI line
    queued: int = 0
    dropped_full: int = 0


class SyslogReceiver:
    """Listen on `host:port`; call `on_hint` (from a worker thread) for invalid-SPI lines
    sent by a known router. `owner_of(ip)` maps a source address to an inventory name."""

    def __init__(
        self,
        host: str,
        port: int,
        owner_of: Callable[[str], str | None],
        on_hint: Callable[[SyslogHint], None],
        *,
        queue_size: int = 10_000,
    ):
        self._owner_of = owner_of
        self._on_hint = on_hint
        self._queue: queue.Queue[SyslogHint | None] = queue.Queue(maxsize=queue_size)
        self.stats = ReceiverStats()
        family = socket.AF_INET6 if ip_address(host).version == 6 else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.bind((host, port))
        self._sock.settimeout(0.5)
        self.address = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read_loop, name="syslog-read", daemon=True),
            threading.Thread(target=self._dispatch_loop, name="syslog-dispatch", daemon=True),
        ]

    def start(self) -> "SyslogReceiver":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        for thread in self._threads:
            thread.join(timeout=2)
        self._sock.close()

    def _read_loop(self) -> None:
        owners: dict[str, str | None] = {}  # the inventory does not change while we run
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(MAX_DATAGRAM)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            self.stats.received += 1
            source = peer[0]
            if source not in owners:
                owners[source] = self._owner_of(source) if len(owners) < 100_000 else None
            router = owners[source]
            if router is None:
                self.stats.foreign += 1
                continue
            if _MARKER not in data:
                self.stats.ignored += 1
                continue
            try:
                self._queue.put_nowait(SyslogHint(router, source, data))
                self.stats.queued += 1
            except queue.Full:
                self.stats.dropped_full += 1

    def _dispatch_loop(self) -> None:
        while True:
            hint = self._queue.get()
            if hint is None or self._stop.is_set():
                return
            try:
                self._on_hint(hint)
            except Exception:  # one bad hint must not stop the receiver
                log.exception("syslog hint from %s could not be handled", hint.router)
