"""Syslog sender: RFC 3164 framing, loopback-only destinations, per-router source address."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from collector.lab.syslog import (
    NonLoopbackDestination,
    SyslogSender,
    loopback_destination,
    parse_host_port,
    rfc3164_packet,
    severity_of,
)

INV_SPI = (
    "123: *Nov 27 10:41:07.123: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
    "destaddr=192.0.2.1, prot=50, spi=0x68842105(1753489669), srcaddr=192.0.2.2, input interface=GigabitEthernet1"
)


@pytest.mark.parametrize(
    ("line", "severity"),
    [
        (INV_SPI, 4),
        ("5: *Nov 27 10:41:07.123: %SYS-5-CONFIG_I: Configured from console by lab on vty0", 5),
        ("*Nov 27 10:41:07.123: %LINEPROTO-5-UPDOWN: Line protocol on Interface Tunnel1, changed state to up", 5),
        ("*Nov 27 10:41:07.123: %IOSXE-3-PLATFORM: R0/0: cpp_cp: QFP:0.0 Thread:000 %IPSEC-3-RECVD_PKT_NOT_IPSEC: x", 3),
        ("*Nov 27 10:41:07.123: ISAKMP-ERROR: (0):ignoring request to send delete notify (no ISAKMP sa)", 7),
    ],
)
def test_severity_comes_from_the_ios_tag(line: str, severity: int) -> None:
    assert severity_of(line) == severity


def test_packet_is_pri_then_the_ios_line() -> None:
    # local7 (23) * 8 + severity 4
    assert rfc3164_packet(INV_SPI) == b"<188>" + INV_SPI.encode()
    assert rfc3164_packet("ISAKMP: (0):x").startswith(b"<191>ISAKMP")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.20.0.5", "::1", "[::1]", "localhost"])
def test_loopback_destinations_are_accepted(host: str) -> None:
    address, port = loopback_destination(host, 514)
    assert port == 514
    assert address in ("127.0.0.1", "127.20.0.5", "::1")


@pytest.mark.parametrize("host", ["10.0.0.5", "192.0.2.1", "8.8.8.8", "::2", "syslog.example.com", "0.0.0.0"])
def test_other_destinations_are_refused(host: str) -> None:
    with pytest.raises(NonLoopbackDestination):
        loopback_destination(host, 514)


def test_host_port_parsing() -> None:
    assert parse_host_port("127.0.0.1:5514") == ("127.0.0.1", 5514)
    assert parse_host_port("[::1]:5514") == ("::1", 5514)
    for bad in ("127.0.0.1", "127.0.0.1:port", ":514", "10.1.1.1:514", "127.0.0.1:70000"):
        with pytest.raises(NonLoopbackDestination):
            parse_host_port(bad)

T0 = datetime(2023, 11, 27, 10, 41, 7)


@dataclass
class _Router:
    """Just the syslog face of a router, to test the sender without a fleet."""

    name: str
    syslog_source: str
    lines: list[str | tuple[datetime, str]] = field(default_factory=list)  # a bare line: logged at T0
    targets: list[tuple[str, int]] = field(default_factory=list)

    def drain_syslog_timed(self) -> list[tuple[datetime, str]]:
        lines, self.lines = self.lines, []
        return [item if isinstance(item, tuple) else (T0, item) for item in lines]

    def syslog_targets(self) -> list[tuple[str, int]]:
        return list(self.targets)


@pytest.fixture
def receiver() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_each_router_sends_from_its_own_loopback_address(receiver: socket.socket) -> None:
    dest = receiver.getsockname()
    hub = _Router("hub1", "127.20.0.1", [INV_SPI])
    spoke = _Router("spoke1", "127.20.0.2", ["7: *Nov 27 10:41:08.000: %SYS-5-CONFIG_I: Configured"], [dest])
    sender = SyslogSender([dest])
    try:
        assert sender.pump([hub, spoke]) == 2
        got = sorted(receiver.recvfrom(4096) for _ in range(2))
    finally:
        sender.close()
    # spoke1 lists the same target as --syslog-to: one datagram, not two
    assert [(data, addr[0]) for data, addr in got] == sorted(
        [(b"<188>" + INV_SPI.encode(), "127.20.0.1"), (b"<189>7: *Nov 27 10:41:08.000: %SYS-5-CONFIG_I: Configured", "127.20.0.2")]
    )
    receiver.settimeout(0.2)
    with pytest.raises(socket.timeout):
        receiver.recvfrom(4096)


def test_router_targets_off_loopback_are_skipped(receiver: socket.socket) -> None:
    router = _Router("hub1", "127.20.0.9", [INV_SPI], [("10.0.0.5", 514), receiver.getsockname()])
    sender = SyslogSender()
    try:
        sender.pump([router])
        data, addr = receiver.recvfrom(4096)
    finally:
        sender.close()
    assert addr[0] == "127.20.0.9" and data.endswith(INV_SPI.encode())
    assert sender.sent == 1


def test_sender_refuses_a_non_loopback_lab_target() -> None:
    with pytest.raises(NonLoopbackDestination):
        SyslogSender([("192.0.2.10", 514)])
    sender = SyslogSender()
    with pytest.raises(NonLoopbackDestination):
        sender.send("127.20.0.1", INV_SPI, [("198.51.100.7", 514)])
    sender.close()


# -- end to end: a running lab sends real UDP -----------------------------------------


def _receive_until(sock: socket.socket, predicate, limit: int = 500) -> tuple[bytes, tuple[str, int]]:
    for _ in range(limit):
        data, addr = sock.recvfrom(65536)
        if predicate(data):
            return data, addr
    raise AssertionError("expected syslog datagram not received")


def test_config_change_is_sent_from_the_routers_source_address(receiver: socket.socket) -> None:
    from netmiko import ConnectHandler

    from collector.lab.runner import running_lab

    with running_lab(routers=4, syslog_to=receiver.getsockname()) as lab:
        # spoke2 traps only warnings by default: CONFIG_I (notice) needs a lower trap level
        lab.control.config("spoke2", ["logging trap debugging"])
        with ConnectHandler(**lab.connect_params("spoke2")) as conn:
            conn.enable()
            conn.send_config_set(["interface Loopback0", "description lab syslog test"])
        data, addr = _receive_until(receiver, lambda d: b"%SYS-5-CONFIG_I" in d)
        assert addr[0] == lab.fleet.routers["spoke2"].syslog_source
        assert data.startswith(b"<189>")  # local7, notice
        assert f"Configured from console by {lab.fleet.routers['spoke2'].username} on vty".encode() in data


def test_logging_host_configured_on_the_router_gets_its_syslog(receiver: socket.socket) -> None:
    from collector.lab.runner import running_lab

    host, port = receiver.getsockname()
    with running_lab(routers=4) as lab:
        lab.control.config("hub2", [f"logging host {host} transport udp port {port}", "logging trap debugging"])
        lab.control.config("hub2", ["interface Loopback0", "description second change"])
        data, addr = _receive_until(receiver, lambda d: b"%SYS-5-CONFIG_I" in d)
        assert addr[0] == lab.fleet.routers["hub2"].syslog_source


def test_desync_sends_invalid_spi_lines_from_the_receiver(receiver: socket.socket) -> None:
    from collector.lab.runner import running_lab

    with running_lab(routers=4, scenarios=["desync"], time_scale=0.0, syslog_to=receiver.getsockname()) as lab:
        desync = [p for p in lab.control.pairs() if p["scenario"] == "desync"]
        assert len(desync) == 1
        lab.control.step(240)
        data, addr = _receive_until(receiver, lambda d: b"%CRYPTO-4-RECVD_PKT_INV_SPI" in d)
    assert data.startswith(b"<188>")
    assert addr[0] == lab.fleet.routers[desync[0]["receiver"]].syslog_source
    assert f"srcaddr={desync[0]['sender_addr']}".encode() in data


def test_running_lab_refuses_a_non_loopback_syslog_target() -> None:
    from collector.lab.runner import running_lab

    for target in ("192.0.2.50:514", ("198.51.100.9", 514)):
        with pytest.raises(NonLoopbackDestination):
            with running_lab(routers=2, syslog_to=target):
                pass


def test_a_burst_goes_in_the_order_it_was_logged_across_routers_in_turns(receiver: socket.socket) -> None:
    dest = receiver.getsockname()
    # ten routers, 70 lines each, logged one second apart in turn: router i's n-th line at
    # second 10 * n + i, so the network sees them interleaved, not router by router
    routers = [_Router(f"spoke{i}", f"127.20.1.{i}",
                       [(T0 + timedelta(seconds=10 * n + i), f"spoke{i} line {n}") for n in range(70)], [dest])
               for i in range(10)]
    sender = SyslogSender()
    got: list[bytes] = []
    try:
        turns = []
        for count in sender.pump_in_turns(routers, turn=200):
            turns.append(count)
            while len(got) < sender.sent:
                got.append(receiver.recvfrom(4096)[0])
    finally:
        sender.close()
    assert turns == [200, 200, 200, 100]
    assert [g.split(b">", 1)[1].decode() for g in got] == [f"spoke{i} line {n}" for n in range(70) for i in range(10)]
    assert all(not r.lines for r in routers)


def test_a_routers_ssh_answer_does_not_wait_for_a_steps_burst_of_syslog(receiver: socket.socket, tmp_path) -> None:
    """A clock step that makes 20,000 syslog lines at once (as 45 lab seconds of a large
    fleet do): a router's command is answered while the burst is still being sent, not after
    it, as no real router waits for the others' syslog."""
    from collector.hostkeys import KnownHosts
    from collector.inventory import load_inventory
    from collector.lab.runner import running_lab
    from collector.sessions import SessionPool

    burst = 20_000
    with running_lab(routers=8, time_scale=0.0, realism="none", syslog_to=receiver.getsockname()) as lab:
        names = lab.routers

        def lines_at_one_second() -> None:
            def emit(_when: float) -> None:
                now = lab.fleet.clock.now()
                for n in range(burst):
                    lab.fleet.routers[names[n % len(names)]].log.emit(now, 3, f"%LINK-3-UPDOWN: Interface Tunnel{n}, "
                                                                             "changed state to down")
            lab.fleet.scheduler.at(lab.fleet.clock.elapsed() + 1.0, emit)

        lab.call(lines_at_one_second)
        host = load_inventory(lab.state_dir / "inventory.yaml").hosts[names[0]]
        with SessionPool(KnownHosts(tmp_path / "known_hosts")) as pool, pool.session(host) as session:
            sent_before = lab.call(lambda: lab._runtime.syslog.sent)
            lab.control.step(1.0)
            session.run("show clock")
            sent_at_answer = lab._runtime.syslog.sent  # it only grows: read after the answer came
        deadline, last = time.monotonic() + 30, -1
        while (last < burst or lab._runtime.syslog.sent - sent_before != last) and time.monotonic() < deadline:
            last = lab._runtime.syslog.sent - sent_before
            time.sleep(0.3)
        sent_in_all = lab._runtime.syslog.sent - sent_before
    assert sent_in_all >= burst  # the whole burst went, in the end (a datagram a line and target)
    assert sent_at_answer - sent_before < sent_in_all
