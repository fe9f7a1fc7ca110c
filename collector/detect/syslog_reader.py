"""The syslog receiver's reading process: drains the UDP socket with a GIL of its own.

In the agent's process a reading thread must take the GIL back after every `recvfrom`;
while any other thread computes (a poll parsing logs, an arming), that costs it up to the
interpreter's switch interval (5 ms) per datagram, and a burst larger than the socket
buffer was lost: 20,000 datagrams sent at once beside one busy thread, 3,359 read
(docs/performance.md section 22). Here nothing else runs, so the socket is drained at the
kernel's pace.

Started by `SyslogReceiver` as `python -m collector.detect.syslog_reader FD` with the bound
socket passed as FD. Writes records to stdout, each a kind byte and a 4-byte length:
  H  a datagram holding the invalid-SPI marker: source address, NUL, the datagram
  S  counters (received, not invalid-SPI, lost by the kernel), whenever they changed,
     at most every STATS_EVERY datagrams or STATS_SECONDS
Exits when its parent goes away or stdout closes.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time

MAX_DATAGRAM = 8192  # RFC 5426 recommends receivers accept at least 2048 octets
MARKER = b"RECVD_PKT_INV_SPI"
HEADER = struct.Struct("!cI")
COUNTERS = struct.Struct("!QQQ")
STATS_EVERY = 500
STATS_SECONDS = 0.1
# Linux: the socket's count of datagrams dropped, with each datagram (the option number elsewhere means something else)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40) if sys.platform.startswith("linux") else None


def record(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def serve(sock: socket.socket, out) -> None:
    parent = os.getppid()
    ancillary = 0  # without the option: no count of what the kernel dropped
    if SO_RXQ_OVFL is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            ancillary = socket.CMSG_SPACE(4)
        except OSError:
            pass
    sock.settimeout(STATS_SECONDS)
    received = ignored = lost = 0
    told = (0, 0, 0)
    told_at = time.monotonic()
    while True:
        try:
            data, cmsgs, _flags, peer = sock.recvmsg(MAX_DATAGRAM, ancillary)
        except socket.timeout:
            data = None
        hint = None
        if data is not None:
            received += 1
            for level, kind, value in cmsgs:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    lost = struct.unpack("=I", value[:4])[0]
            if MARKER in data:
                hint = record(b"H", peer[0].encode() + b"\0" + data)
            else:
                ignored += 1
        now = (received, ignored, lost)
        # the counters go before the hint they count, so that the agent never sees a hint
        # queued that is not yet received; a hint is never held back
        if now != told and (hint is not None or data is None or received - told[0] >= STATS_EVERY
                            or time.monotonic() - told_at >= STATS_SECONDS):
            out.write(record(b"S", COUNTERS.pack(*now)))
            told, told_at = now, time.monotonic()
            if hint is None:
                out.flush()
        if hint is not None:
            out.write(hint)
            out.flush()
        if data is None and os.getppid() != parent:
            return


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    try:
        serve(sock, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
