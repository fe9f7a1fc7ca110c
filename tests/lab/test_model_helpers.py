"""Shared helpers for the lab model tests (no tests here; imported by test_model_*.py)."""

from __future__ import annotations

import re
from datetime import datetime

from collector.lab.fleet import Fleet
from collector.lab.router import Router
from collector.lab.shell import CliSession

START = datetime(2026, 11, 27, 10, 40, 0)
INV_SPI = "%CRYPTO-4-RECVD_PKT_INV_SPI"


def build(routers: int = 6, scenarios: list[str] | None = None, seed: int = 0, realism: str = "none") -> Fleet:
    """A frozen-clock fleet: only clock.step() moves lab time.

    The model tests default to plain routers (realism "none") so that each checks one
    mechanism; test_realism.py checks the realistic default fleet.
    """
    return Fleet.build(routers, scenarios or [], seed=seed, time_scale=0.0, start=START, realism=realism)


def priv(router: Router) -> CliSession:
    s = router.open_session()
    s.execute("enable")
    s.execute(router.enable_secret)
    assert s.prompt in (f"{router.name}#", f"{router.state.hostname}#")
    s.execute("terminal length 0")
    return s


def configure(router: Router, *lines: str) -> list[str]:
    s = priv(router)
    s.execute("configure terminal")
    outs = [s.execute(line) for line in lines]
    s.execute("end")
    return outs


def step(fleet: Fleet, seconds: float) -> None:
    fleet.clock.step(seconds)
    fleet.tick()


def inv_spi_lines(router: Router) -> list[str]:
    return [ln for ln in router.log.lines() if INV_SPI in ln]


def flow_of(line: str) -> tuple[str, str, str]:
    m = re.search(r"destaddr=([\d.]+), prot=50, spi=(0x[0-9A-F]+)\(\d+\), srcaddr=([\d.]+)", line)
    assert m, line
    return m.group(3), m.group(1), m.group(2)


def set_buffer_debugging(router: Router) -> None:
    configure(router, "logging buffered 512000 debugging")
