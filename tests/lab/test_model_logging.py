"""Logging settings, the `show logging` header, the wrapping buffer, timestamps and syslog."""

from __future__ import annotations

import re

from test_model_helpers import START, build, configure, priv, step

from collector.lab.logbuf import RouterLog, TimestampFormat


def _log(size: int = 4096) -> RouterLog:
    return RouterLog(
        buffer_size=size,
        buffer_level="debugging",
        console_level="debugging",
        monitor_level=None,
        trap_level="informational",
        hosts=[],
        log_format=TimestampFormat(),
        debug_format=TimestampFormat(),
        sequence_numbers=False,
        ntp_synced=False,
        doubled_colon=False,
        boot_time=START,
        xe=False,
    )


def test_buffer_wraps_at_its_size_and_keeps_the_newest_lines() -> None:
    log = _log(4096)
    for i in range(200):
        log.emit(START, 5, f"%SYS-5-TEST: message number {i:04d} " + "x" * 20)
    text = log.buffer_text()
    assert len(text) + 1 == 4096  # byte-accurate: the buffer is full to the byte
    lines = text.split("\n")
    assert lines[-1].endswith("message number 0199 " + "x" * 20)
    assert not lines[0].startswith("*Nov")  # the oldest line is a fragment, as on IOS
    assert "Log Buffer (4096 bytes):" in log.show()


def test_header_follows_logging_commands() -> None:
    fleet = build()
    r = fleet.routers["spoke3"]
    configure(
        r,
        "logging buffered 32768 warnings",
        "no logging console",
        "logging monitor informational",
        "logging host 127.0.0.1 transport udp port 5514",
        "logging trap debugging",
    )
    s = priv(r)
    head = s.execute("show logging")
    assert "    Console logging: disabled" in head
    assert re.search(r"Monitor logging: level informational, \d+ messages logged", head)
    assert re.search(r"Buffer logging:  level warnings, \d+ messages logged", head)
    assert re.search(r"Trap logging: level debugging, \d+ message lines logged", head)
    assert "Logging to 127.0.0.1  (udp port 5514, audit disabled," in head
    assert "Log Buffer (32768 bytes):" in head
    run = s.execute("show running-config")
    for line in (
        "logging buffered 32768 warnings",
        "no logging console",
        "logging monitor informational",
        "logging trap debugging",
        "logging host 127.0.0.1 transport udp port 5514",
    ):
        assert line in run.splitlines(), line
    configure(r, "no logging buffered", "logging console")
    head = s.execute("show logging")
    assert "Buffer logging:  disabled" in head and "Log Buffer (" not in head
    assert "Console logging: level debugging" in head
    assert "no logging buffered" in s.execute("show running-config")


def test_buffer_level_filters_what_is_kept() -> None:
    fleet = build(scenarios=["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    r = fleet.routers[info.receiver]
    configure(r, "logging buffered 64000 errors")  # warnings (INV_SPI is level 4) stay out
    step(fleet, 120)
    assert not any("RECVD_PKT_INV_SPI" in ln for ln in r.log.lines())
    configure(r, "logging buffered 64000 warnings")
    step(fleet, 60)
    assert sum("RECVD_PKT_INV_SPI" in ln for ln in r.log.lines()) == 1


def test_timestamp_styles() -> None:
    fleet = build(scenarios=["desync:7"])  # every tunnel of the six routers
    step(fleet, 31)
    prefixes = set()
    for r in fleet.routers.values():
        for line in r.log.lines():
            if "RECVD_PKT_INV_SPI" in line:
                prefixes.add(line.split("%CRYPTO")[0])
    patterns = {
        "star": r"^\*Nov 27 10:40:30\.\d{3}: $",
        "doubled": r"^Nov 27 10:40:30\.\d{3} UTC: : $",
    }
    assert any(re.match(patterns["star"], p) for p in prefixes)
    assert any(re.match(patterns["doubled"], p) for p in prefixes)
    # sequence numbers and an uptime stamp, set from the CLI
    r = fleet.routers["hub1"]
    configure(r, "service sequence-numbers", "service timestamps log uptime")
    step(fleet, 60)
    last = [ln for ln in r.log.lines() if "RECVD_PKT_INV_SPI" in ln][-1]
    assert re.match(r"^\d{6}: \d+w\dd: %CRYPTO-4-RECVD_PKT_INV_SPI", last)
    configure(r, "no service sequence-numbers", "service timestamps log datetime msec year show-timezone")
    step(fleet, 60)
    last = [ln for ln in r.log.lines() if "RECVD_PKT_INV_SPI" in ln][-1]
    assert re.match(r"^\*Nov 27 2026 10:4\d:\d\d\.\d{3} UTC: ", last)
    assert "service timestamps log datetime msec show-timezone year" in priv(r).execute("show run")


def test_input_interface_field_varies_per_router() -> None:
    fleet = build(scenarios=["desync:7"])  # every tunnel of the six routers
    step(fleet, 31)
    lines = [ln for r in fleet.routers.values() for ln in r.log.lines() if "RECVD_PKT_INV_SPI" in ln]
    assert any("input interface=" in ln for ln in lines)
    assert any(
        "input interface=" not in ln and ln.rstrip().endswith(re.search(r"srcaddr=([\d.]+)", ln).group(1))
        for ln in lines
    )


def test_syslog_targets_are_loopback_only_and_drain_respects_the_trap_level() -> None:
    fleet = build(scenarios=["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    r = fleet.routers[info.receiver]
    assert r.syslog_targets() == []  # the modelled 10.255.255.10 host is never a real target
    configure(r, "logging host 127.0.0.1", "logging host 192.0.2.99", "logging trap warnings")
    fleet.add_syslog_target("127.0.0.2", 5140)
    assert r.syslog_targets() == [("127.0.0.1", 514), ("127.0.0.2", 5140)]
    r.drain_syslog()
    step(fleet, 60)
    sent = r.drain_syslog()
    assert len(sent) == 1 and "%CRYPTO-4-RECVD_PKT_INV_SPI" in sent[0]
    assert re.match(r"^(\d+: )?\*?\w{3} [ \d]\d ", sent[0])
    assert r.drain_syslog() == []


def test_terminal_monitor_collects_lines_for_the_session() -> None:
    fleet = build(scenarios=["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    r = fleet.routers[info.receiver]
    configure(r, "logging monitor informational")
    s = priv(r)
    s.execute("terminal monitor")
    step(fleet, 60)
    assert any("RECVD_PKT_INV_SPI" in ln for ln in s.drain_monitor())
    s.execute("terminal no monitor")
    step(fleet, 60)
    assert s.drain_monitor() == []
