"""RFC 3164 syslog over UDP from the simulated routers, to loopback only.

Each router sends from its own loopback source address (`router.syslog_source`,
e.g. 127.20.0.5) so a collector can tell routers apart by the packet's source, as
it would with real routers. A packet is `<PRI>` followed by the line exactly as IOS
sends it (`123: *Nov 27 10:41:07.123: %CRYPTO-4-...`), PRI = facility local7 (23)
* 8 + the severity digit of the `%FACILITY-SEVERITY-MNEMONIC` tag (debug output
without a tag counts as severity 7).

The lab never sends a packet off the machine: any destination outside 127.0.0.0/8
and ::1 is refused with NonLoopbackDestination.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable, Iterator
from datetime import datetime
from operator import itemgetter
from typing import Protocol

log = logging.getLogger(__name__)

FACILITY_LOCAL7 = 23
DEBUG_SEVERITY = 7
_SEVERITY_TAG = re.compile(r"%[A-Z0-9_]+(?:-[A-Z0-9_]+)*?-([0-7])-[A-Z0-9_]+")


class NonLoopbackDestination(ValueError):
    """The lab was asked to send syslog somewhere other than this machine's loopback."""


class _SyslogRouter(Protocol):
    name: str
    syslog_source: str

    def drain_syslog_timed(self) -> list[tuple[datetime, str]]: ...

    def syslog_targets(self) -> list[tuple[str, int]]: ...


def severity_of(line: str) -> int:
    """Severity digit of the first `%FAC-N-MNEMONIC` tag; debug lines have none."""
    match = _SEVERITY_TAG.search(line)
    return int(match.group(1)) if match else DEBUG_SEVERITY


def rfc3164_packet(line: str, facility: int = FACILITY_LOCAL7) -> bytes:
    """`<PRI>` + the IOS line (IOS puts no hostname in by default)."""
    return f"<{facility * 8 + severity_of(line)}>{line}".encode("utf-8", "replace")


def loopback_destination(host: str, port: int) -> tuple[str, int]:
    """Validate a destination: a loopback IP literal (or `localhost`) and a UDP port."""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise NonLoopbackDestination(f"syslog destination {host!r} is not an IP address on loopback") from None
    if not address.is_loopback:
        raise NonLoopbackDestination(
            f"syslog destination {address} is not a loopback address; the lab only sends to 127.0.0.0/8 or ::1"
        )
    if not 0 < port < 65536:
        raise NonLoopbackDestination(f"syslog destination port {port} is out of range")
    return str(address), port


def parse_host_port(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` -> a validated loopback destination."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise NonLoopbackDestination(f"syslog destination {text!r} is not HOST:PORT")
    return loopback_destination(host, int(port_text))


class SyslogSender:
    """UDP sockets, one per router source address, created on first use."""

    def __init__(self, extra_targets: Iterable[tuple[str, int]] = ()):
        self._extra = [loopback_destination(host, port) for host, port in extra_targets]
        self._sockets: dict[str, socket.socket] = {}
        self._v6: socket.socket | None = None
        self._warned: set[tuple[str, str, int]] = set()
        self.sent = 0

    def _socket_for(self, source: str) -> socket.socket:
        sock = self._sockets.get(source)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((source, 0))
            self._sockets[source] = sock
        return sock

    def _v6_socket(self) -> socket.socket:
        # An IPv4 loopback source cannot reach ::1; ::1 itself is the closest stand-in.
        if self._v6 is None:
            self._v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            self._v6.setblocking(False)
            self._v6.bind(("::1", 0))
        return self._v6

    def targets_of(self, router: _SyslogRouter) -> list[tuple[str, int]]:
        """The router's loopback `logging host` entries plus the lab-wide --syslog-to, deduplicated."""
        targets: list[tuple[str, int]] = []
        for host, port in [*router.syslog_targets(), *self._extra]:
            try:
                target = loopback_destination(host, port)
            except NonLoopbackDestination as exc:
                key = (router.name, host, port)
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("lab %s: not sending syslog: %s", router.name, exc)
                continue
            if target not in targets:
                targets.append(target)
        return targets

    def send(self, source: str, line: str, targets: Iterable[tuple[str, int]]) -> None:
        self._send(source, line, [loopback_destination(host, port) for host, port in targets])

    def _send(self, source: str, line: str, targets: list[tuple[str, int]]) -> None:
        """`targets` already checked by loopback_destination (a burst sends thousands)."""
        packet = rfc3164_packet(line)
        for host, port in targets:
            sock = self._v6_socket() if ":" in host else self._socket_for(source)
            try:
                sock.sendto(packet, (host, port))
                self.sent += 1
            except (BlockingIOError, ConnectionRefusedError):
                pass  # UDP: a full buffer or nobody listening loses the datagram, as on a real network

    def pump(self, routers: Iterable[_SyslogRouter]) -> int:
        """Send every router's new log lines; returns the number of lines drained."""
        return sum(self.pump_in_turns(routers, turn=0))

    def pump_in_turns(self, routers: Iterable[_SyslogRouter], turn: int = 200) -> Iterator[int]:
        """Send every router's new log lines in the order they were logged, across routers
        (as a network delivers them: a clock step must not send one router's last minute
        before another's first second), yielding the count sent after each `turn` lines and
        at the end, so that the caller can serve other work in between (0: one turn)."""
        queued: list[tuple[datetime, str, str, list[tuple[str, int]]]] = []
        for router in routers:
            lines = router.drain_syslog_timed()
            if lines:
                source, targets = router.syslog_source, self.targets_of(router)
                queued.extend((when, line, source, targets) for when, line in lines)
        queued.sort(key=itemgetter(0))  # stable: a router's lines keep their order
        sent = 0
        for _when, line, source, targets in queued:
            self._send(source, line, targets)
            sent += 1
            if sent == turn:
                yield sent
                sent = 0
        if sent:
            yield sent

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        if self._v6 is not None:
            self._v6.close()
            self._v6 = None
