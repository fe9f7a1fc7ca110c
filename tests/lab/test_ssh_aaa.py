"""AAA command authorization, EEM under AAA and the vty pool, over real SSH to a running lab."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netmiko import ConnectHandler

from collector.lab.control import LabControlError
from collector.lab.runner import RunningLab, running_lab

AAA_LINES = ["aaa new-model", "aaa authorization commands 15 default group tacacs+"]
PEER = "10.99.0.1"


@pytest.fixture
def lab() -> Iterator[RunningLab]:
    with running_lab(routers=2, seed=0, realism="none") as running:
        yield running


def _lab_user(lab: RunningLab) -> str:
    return lab.connect_params("hub1")["username"]


def test_denied_command_over_ssh_prints_the_refusal_and_arms_nothing(lab: RunningLab) -> None:
    assert lab.control.config("hub1", AAA_LINES) == ""
    lab.control.fault("hub1", tacacs={_lab_user(lab): {"deny": ["debug crypto condition"]}})
    with ConnectHandler(**lab.connect_params("hub1", "cisco_ios")) as conn:
        conn.enable()
        assert conn.send_command("debug crypto isakmp").strip() == "Crypto ISAKMP debugging is on"
        refused = conn.send_command(f"debug crypto condition peer ipv4 {PEER}")
        assert refused.strip() == "Command authorization failed."
        assert "%" not in refused
        assert PEER not in conn.send_command("show crypto debug-condition")
        assert "aaa authorization commands 15 default group tacacs+" in conn.send_command("show running-config")
    debug = lab.control.state("hub1")["debug"]
    assert PEER not in debug["peers"] and "isakmp" in str(debug["flags"])


def test_a_bad_policy_is_refused_by_the_control_api(lab: RunningLab) -> None:
    with pytest.raises(LabControlError, match="tacacs"):
        lab.control.fault("hub1", tacacs={"lab": {"permit": "show"}})
    assert lab.control.state("hub1")["faults"]["tacacs"] is None


def _deadman(name: str, header_options: str = "") -> list[str]:
    return [
        f"event manager applet {name} {header_options}".rstrip(),
        " event timer countdown time 60",
        ' action 001 cli command "enable"',
        ' action 002 cli command "undebug all"',
        f' action 003 cli command "no debug crypto condition peer ipv4 {PEER}"',
    ]


@pytest.mark.parametrize(
    ("header_options", "username", "runs"),
    [("", None, False), ("authorization bypass", None, True), ("", "eem-svc", True), ("", "contractor", False)],
)
def test_deadman_applet_under_aaa_over_ssh(
    lab: RunningLab, header_options: str, username: str | None, runs: bool
) -> None:
    lab.control.config("hub1", AAA_LINES)
    user = _lab_user(lab)
    lab.control.fault("hub1", tacacs={user: {}, "eem-svc": {"permit": ["undebug", "no debug crypto condition"]}})
    with ConnectHandler(**lab.connect_params("hub1", "cisco_ios")) as conn:
        conn.enable()
        conn.send_command(f"debug crypto condition peer ipv4 {PEER}")
        conn.send_command("debug crypto ipsec")
        lines = _deadman("DEADMAN_T1", header_options)
        if username:
            lines.insert(0, f"event manager session cli username {username}")
        conn.send_config_set(lines)
        lab.control.step(61)
        debugging = conn.send_command("show debugging")
        conditions = conn.send_command("show crypto debug-condition")
    assert ("Crypto IPSEC debugging is on" not in debugging) == runs, debugging
    assert (PEER not in conditions) == runs, conditions
    run = lab.control.state("hub1")["eem_runs"][-1]
    assert run["applet"] == "DEADMAN_T1"
    refused = [a["cli"] for a in run["actions"] if a.get("output") == "Command authorization failed.\n\n"]
    assert refused == ([] if runs else ["undebug all", f"no debug crypto condition peer ipv4 {PEER}"])


def test_refusal_bytes_on_the_wire_in_exec_and_config_mode(lab: RunningLab) -> None:
    from test_ssh_sessions import RawShell

    lab.control.config("hub1", [*AAA_LINES, "aaa authorization config-commands"])
    lab.control.fault("hub1", tacacs={_lab_user(lab): {"deny": ["debug crypto condition", "event manager"]}})
    secret = lab.fleet.routers["hub1"].enable_secret
    shell = RawShell(lab, "hub1")
    try:
        shell.read_until(b"hub1>")
        shell.chan.sendall(b"enable\r")
        shell.read_until(b"Password: ")
        shell.chan.sendall(secret.encode() + b"\r")
        shell.read_until(b"hub1#")
        shell.chan.sendall(f"deb cry cond peer ipv4 {PEER}\r".encode())
        reply = shell.read_until(b"hub1#")
        assert reply == f"deb cry cond peer ipv4 {PEER}\r\nCommand authorization failed.\r\n\r\nhub1#".encode()
        shell.chan.sendall(b"configure terminal\r")
        shell.read_until(b"hub1(config)#")
        shell.chan.sendall(b"event manager applet DEADMAN_T2 authorization bypass\r")
        reply = shell.read_until(b"hub1(config)#")
        assert reply.endswith(b"\r\nCommand authorization failed.\r\n\r\nhub1(config)#"), reply
        shell.chan.sendall(b"logging buffered 100000\r")  # permitted: back at the config prompt, silent
        assert shell.read_until(b"hub1(config)#") == b"logging buffered 100000\r\nhub1(config)#"
    finally:
        shell.close()
    state = lab.control.state("hub1")
    assert state["applets"] == [] and PEER not in state["debug"]["peers"]
