"""The vty pool over real SSH: SSH sessions and EEM applets share `line vty 0 4`; `show users`."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
from netmiko import ConnectHandler
from ntc_templates.parse import parse_output

from collector.lab.runner import RunningLab, running_lab

APPLET = [
    "event manager applet CLEANUP",
    " event timer countdown time 30",
    ' action 1.0 cli command "enable"',
    ' action 2.0 cli command "undebug all"',
]


@pytest.fixture
def lab() -> Iterator[RunningLab]:
    with running_lab(routers=2, seed=0) as running:
        yield running


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _ipsec_debug_on(lab: RunningLab) -> bool:
    return "ipsec" in lab.control.state("hub1")["debug"]["flags"]


def test_applet_cli_fails_while_ssh_sessions_hold_every_line(lab: RunningLab) -> None:
    params = lab.connect_params("hub1")
    sessions = [ConnectHandler(**params) for _ in range(5)]
    try:
        assert len(lab.control.state("hub1")["vty_in_use"]) == 5
        lab.control.config("hub1", ["do debug crypto ipsec", *APPLET])
        lab.control.step(31)
        run = lab.control.state("hub1")["eem_runs"][-1]
        assert run["applet"] == "CLEANUP" and run["error"] == "no vty line free"
        assert _ipsec_debug_on(lab)
        sessions[0].enable()
        log = sessions[0].send_command("show logging | include HA_EM")
        assert "%HA_EM-3-FMPD_CLI_CONNECT: Unable to establish CLI session" in log
        sessions.pop().disconnect()
        _wait_for(lambda: len(lab.control.state("hub1")["vty_in_use"]) == 4)
        lab.control.config("hub1", APPLET)
        lab.control.step(31)
        run = lab.control.state("hub1")["eem_runs"][-1]
        assert run["error"] is None and run["vty_line"] == 4
        assert not _ipsec_debug_on(lab)
    finally:
        for session in sessions:
            session.disconnect()


def test_held_lines_refuse_a_new_login_and_stop_applets(lab: RunningLab) -> None:
    lab.control.fault("hub1", vty_held=4)
    params = lab.connect_params("hub1")
    with ConnectHandler(**params) as conn:
        _wait_for(lambda: not lab.listener_stats("hub1").listening)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", params["port"]), timeout=5)
        lab.control.config("hub1", ["do debug crypto ipsec", *APPLET])
        lab.control.step(31)
        assert lab.control.state("hub1")["eem_runs"][-1]["error"] == "no vty line free"
        assert _ipsec_debug_on(lab)
        conn.enable()
        rows = parse_output(platform="cisco_ios", command="show users", data=conn.send_command("show users"))
        assert [row["line"] for row in rows] == ["2 vty 0", "3 vty 1", "4 vty 2", "5 vty 3", "*  6 vty 4"]
        assert rows[-1]["user"] == params["username"] and rows[-1]["location"] == "127.0.0.1"
    lab.control.fault("hub1", vty_held=0)
    _wait_for(lambda: lab.listener_stats("hub1").listening)
    with ConnectHandler(**params) as conn:
        conn.enable()
        assert "\nline vty 0 4\n" in conn.send_command("show running-config")


def test_show_users_marks_the_asking_session(lab: RunningLab) -> None:
    params = lab.connect_params("hub1")
    with ConnectHandler(**params) as first, ConnectHandler(**params) as second:
        first.enable()
        second.enable()
        first.send_command("show clock")
        text = second.send_command("show users")
        lines = text.splitlines()
        assert lines[0] == "    Line       User       Host(s)              Idle       Location"
        assert lines[1].startswith(f"   2 vty 0     {params['username']:<11}idle ")
        assert lines[2].startswith(f"*  3 vty 1     {params['username']:<11}idle ")
        assert lines[2].endswith(" 127.0.0.1")
