"""Log output: JSON lines with context fields, verbosity after the subcommand, APScheduler's
own lines only at -vv."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time
from ipaddress import ip_address
from pathlib import Path

import pytest

from collector.detect.events import Flow
from collector.logfmt import JsonFormatter, configure_logging, hoist_global_options

LINE = ("Dec  6 08:00:00 rtr-a 1: *Dec  6 08:00:00.123: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet "
        "has invalid spi for destaddr=10.0.0.1, prot=50, spi=0x00000005(5), srcaddr=10.0.0.2\n")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libs = {n: logging.getLogger(n).level for n in ("apscheduler", "paramiko", "asyncssh", "netmiko")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in libs.items():
        logging.getLogger(name).setLevel(lvl)


def test_json_record_with_router_incident_flow_and_exception(restore_logging):
    out = io.StringIO()
    configure_logging(1, "json", stream=out)
    log = logging.getLogger("collector.agent")
    flow = Flow(router="hub", src=ip_address("10.0.0.2"), dst=ip_address("10.0.0.1"), spi=0x1A2B3C4D, prot=50)
    log.info("armed %s and %s", "hub", "spoke",
             extra={"router": "hub", "incident": "i-1", "flow": flow, "seconds": 1.25, "path": Path("/b")})
    log.debug("not shown at -v")
    try:
        raise RuntimeError("line one\nline two")
    except RuntimeError:
        log.exception("capture failed", extra={"router": "spoke"})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # one line per record, the traceback's newlines escaped
    first, second = (json.loads(line) for line in lines)
    assert list(first)[:7] == ["ts", "level", "logger", "message", "router", "incident", "flow"]
    assert first["message"] == "armed hub and spoke" and first["level"] == "info"
    assert first["flow"] == "hub|10.0.0.2|10.0.0.1|0x1A2B3C4D|50"
    assert first["seconds"] == 1.25 and first["path"] == "/b"
    assert first["ts"].endswith("Z") and first["logger"] == "collector.agent"
    assert second["level"] == "error" and second["router"] == "spoke" and "incident" not in second
    assert "RuntimeError: line one\nline two" in second["exception"]


def test_text_format_and_reconfiguring_replaces_only_our_handler(restore_logging):
    theirs = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(theirs)
    first, second = io.StringIO(), io.StringIO()
    configure_logging(0, "text", stream=first)
    configure_logging(2, "text", stream=second)
    logging.getLogger("collector.x").debug("hello %d", 5, extra={"router": "r1"})
    assert first.getvalue() == ""
    assert second.getvalue().rstrip().endswith("DEBUG collector.x: hello 5")
    assert theirs in logging.getLogger().handlers
    with pytest.raises(ValueError):
        configure_logging(0, "xml")


@pytest.mark.parametrize("verbosity, shown", [(1, False), (2, True)])
def test_apscheduler_lines_only_at_vv(restore_logging, verbosity, shown):
    from apscheduler.schedulers.background import BackgroundScheduler

    out = io.StringIO()
    configure_logging(verbosity, "json", stream=out)
    ran = threading.Event()
    scheduler = BackgroundScheduler()
    scheduler.add_job(ran.set)
    scheduler.start()
    assert ran.wait(5)
    for _ in range(500):  # the one-off job is removed just after it ran: stop after that
        if not scheduler.get_jobs():
            break
        time.sleep(0.01)
    scheduler.shutdown(wait=True)
    logging.getLogger("apscheduler.scheduler").warning(  # what a slow poll job makes it say every second
        'Execution of job "Agent.poll_all" skipped: maximum number of running instances reached (1)')
    logging.getLogger("collector.agent").info("our own line")
    loggers = [json.loads(line)["logger"] for line in out.getvalue().splitlines()]
    assert "collector.agent" in loggers
    assert any(name.startswith("apscheduler") for name in loggers) is shown


def test_hoist_moves_only_verbosity_and_log_format():
    assert hoist_global_options(["watch", "-i", "inv.yaml", "-vv", "--log-format", "json"]) == [
        "-vv", "--log-format", "json", "watch", "-i", "inv.yaml"]
    assert hoist_global_options(["scan", "--log-format=json", "--verbose", "f.log"]) == [
        "--log-format=json", "--verbose", "scan", "f.log"]
    assert hoist_global_options(["collect", "-c", "show version", "--", "-v"]) == [
        "collect", "-c", "show version", "--", "-v"]
    assert hoist_global_options(["parse", "-vx"]) == ["parse", "-vx"]


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


def test_cli_verbosity_after_the_subcommand_and_json_lines(tmp_path):
    (tmp_path / "s.log").write_text(LINE)
    quiet = _run(tmp_path, "scan", "s.log", "--log-format", "json")
    assert quiet.returncode == 0 and not [l for l in quiet.stderr.splitlines() if l.startswith("{")]
    for argv in (["scan", "s.log", "-vv", "--log-format", "json"], ["-vv", "--log-format", "json", "scan", "s.log"]):
        done = _run(tmp_path, *argv)
        assert done.returncode == 0, done.stderr
        records = [json.loads(l) for l in done.stderr.splitlines() if l.startswith("{")]
        levels = {r["level"] for r in records}
        assert levels == {"debug", "info"}
        [flow] = [r for r in records if r["level"] == "debug"]
        assert flow["router"] == "rtr-a" and flow["flow"] == "rtr-a|10.0.0.2|10.0.0.1|0x00000005|50"
    text = _run(tmp_path, "scan", "s.log", "-v")
    assert "INFO collector.scan: scanned 1 files, 1 lines" in text.stderr
