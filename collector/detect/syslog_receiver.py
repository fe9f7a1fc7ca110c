"""UDP syslog receiver (RFC 3164 and 5424), for routers that send their log to the jump host.

The socket is read by a process of its own (`syslog_reader`), which passes on only the
datagrams holding the invalid-SPI marker. A thread of the agent must take the GIL back
after each datagram, which waits while another thread computes: beside one busy thread it
read 3,359 of a 20,000-datagram burst, and the kernel dropped the rest.

Only lines from addresses the inventory knows are looked at; the others are counted and
dropped. A line that passes is still only a *hint*: the agent confirms it over SSH on that
router before anything is armed, so a spoofed datagram can at most cause one extra log
read.

Hints go through a bounded queue to one dispatching thread. Under a flood the oldest hints
are not what matters: when the queue is full new ones are dropped and counted, and a real
repeated flow is still found by the next SSH log poll. So is one whose line the kernel
dropped from a full socket buffer (counted as `lost`).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

from collector.detect.syslog_reader import COUNTERS, HEADER, MAX_DATAGRAM

log = logging.getLogger(__name__)

__all__ = ["MAX_DATAGRAM", "ReceiverStats", "SyslogHint", "SyslogReceiver"]

RECEIVE_BUFFER = 4 << 20  # asked of the kernel for the socket: ~4,000 datagrams of a burst
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the reader imports collector from here


@dataclass(frozen=True, slots=True)
class SyslogHint:
    router: str  # inventory name of the sender
    source_ip: str
    data: bytes  # the datagram, at most MAX_DATAGRAM bytes


@dataclass
class ReceiverStats:
    received: int = 0
    foreign: int = 0  # invalid-SPI lines from addresses outside the inventory
    ignored: int = 0  # not an invalid-SPI line
    queued: int = 0
    dropped_full: int = 0
    lost: int = 0  # dropped by the kernel before they were read (socket buffer full; Linux only)


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
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        # Linux caps the request at net.core.rmem_max (208 KiB by default) and reports twice
        # the size it granted (half of it goes to bookkeeping)
        granted = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.buffer_bytes = granted // 2 if sys.platform.startswith("linux") else granted
        self._sock.bind((host, port))
        self.address = self._sock.getsockname()[:2]
        self._reader: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._relay_loop, name="syslog-read", daemon=True),
            threading.Thread(target=self._dispatch_loop, name="syslog-dispatch", daemon=True),
        ]

    def buffer_warning(self) -> str | None:
        """A sentence for the operator when the kernel granted less buffer than asked."""
        if self.buffer_bytes >= RECEIVE_BUFFER:
            return None
        return (f"syslog receiver: the kernel gave its socket {self.buffer_bytes // 1024} KiB of buffer, not the "
                f"{RECEIVE_BUFFER >> 20} MiB asked for; a burst larger than that is lost before it is read "
                f"(raise net.core.rmem_max to {RECEIVE_BUFFER} or more)")

    def start(self) -> "SyslogReceiver":
        fd = self._sock.fileno()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
        self._reader = subprocess.Popen([sys.executable, "-m", "collector.detect.syslog_reader", str(fd)],
                                        pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.terminate()
            try:
                self._reader.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._reader.kill()
                self._reader.wait()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        for thread in self._threads:
            thread.join(timeout=2)
        if self._reader is not None and self._reader.stdout is not None:
            self._reader.stdout.close()
        self._sock.close()

    def _relay_loop(self) -> None:
        """The reader's records: hints to the queue (known senders only), counters to stats."""
        assert self._reader is not None and self._reader.stdout is not None
        stream = self._reader.stdout
        owners: dict[str, str | None] = {}  # the inventory does not change while we run
        while True:
            head = stream.read(HEADER.size)
            if len(head) < HEADER.size:
                if not self._stop.is_set():
                    log.error("syslog reader process ended (exit %s); no more syslog hints", self._reader.poll())
                return
            kind, size = HEADER.unpack(head)
            payload = stream.read(size)
            if kind == b"S":
                self.stats.received, self.stats.ignored, self.stats.lost = COUNTERS.unpack(payload)
                continue
            source, _, data = payload.partition(b"\0")
            source_ip = source.decode()
            if source_ip not in owners:
                owners[source_ip] = self._owner_of(source_ip) if len(owners) < 100_000 else None
            router = owners[source_ip]
            if router is None:
                self.stats.foreign += 1
                continue
            try:
                self._queue.put_nowait(SyslogHint(router, source_ip, data))
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
