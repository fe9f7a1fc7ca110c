"""One process carries 500 routers, and 50 netmiko sessions run against it at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from netmiko import ConnectHandler

from collector.lab.runner import RunningLab, running_lab

ROUTERS = 500
SESSIONS = 50


@pytest.fixture(scope="module")
def big_lab() -> Iterator[RunningLab]:
    with running_lab(routers=ROUTERS, seed=0, realism="none") as running:
        yield running


def test_five_hundred_routers_listen_in_one_process(big_lab: RunningLab) -> None:
    assert len(big_lab.fleet.routers) == ROUTERS
    ports = list(big_lab.ports.values())
    assert len(set(ports)) == ROUTERS and ports == list(range(ports[0], ports[0] + ROUTERS))
    sample = big_lab.routers[:: ROUTERS // 5] + [big_lab.routers[-1]]
    for router in sample:
        with ConnectHandler(**big_lab.connect_params(router)) as conn:
            assert conn.find_prompt() == f"{router}>"
    assert big_lab.control.routers()[-1]["port"] == ports[-1]


def test_fifty_concurrent_netmiko_sessions(big_lab: RunningLab) -> None:
    routers = big_lab.routers[:SESSIONS]
    all_open = threading.Barrier(SESSIONS, timeout=120)

    def session(router: str) -> tuple[str, str, int]:
        with ConnectHandler(**big_lab.connect_params(router)) as conn:
            before = conn.send_command("show clock")
            all_open.wait()  # every session is established at this point
            in_use = big_lab.listener_stats(router).sessions_in_use
            return before, conn.send_command("show version"), in_use

    with ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(session, routers))
    assert len(results) == SESSIONS
    for clock, version, in_use in results:
        assert clock and "Invalid" not in clock
        assert "Cisco IOS" in version
        assert in_use == 1
