"""Prompts over real SSH for hostnames of every length IOS allows (exec whole, config cut at 20)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netmiko import ConnectHandler
from test_model_shell import long_hostname
from test_ssh_sessions import RawShell

from collector.lab.runner import RunningLab, running_lab


@pytest.fixture(scope="module")
def lab() -> Iterator[RunningLab]:
    with running_lab(routers=2, seed=0) as running:
        yield running


@pytest.mark.parametrize("length", [16, 17, 20, 21, 30, 63])
def test_prompts_over_ssh_for_hostname_length(lab: RunningLab, length: int) -> None:
    name = long_hostname(length)
    assert lab.control.config("hub1", [f"hostname {name}"]) == ""
    secret = lab.fleet.routers["hub1"].enable_secret
    shell = RawShell(lab, "hub1")
    try:
        assert shell.read_until(f"{name}>".encode()).endswith(f"\r\n{name}>".encode())
        shell.chan.sendall(b"enable\r")
        shell.read_until(b"Password: ")
        shell.chan.sendall(secret.encode() + b"\r")
        assert shell.read_until(f"{name}#".encode()).endswith(f"\r\n{name}#".encode())
        shell.chan.sendall(b"configure terminal\r")
        shell.read_until(f"\r\n{name[:20]}(config)#".encode())
        # `hostname` takes effect at once: the next prompt already carries the new name
        renamed = long_hostname(length - 1) + "z"
        shell.chan.sendall(f"hostname {renamed}\r".encode())
        reply = shell.read_until(f"{renamed[:20]}(config)#".encode())
        assert reply == f"hostname {renamed}\r\n{renamed[:20]}(config)#".encode(), reply
        shell.chan.sendall(b"interface Loopback0\r")
        shell.read_until(f"\r\n{renamed[:20]}(config-if)#".encode())
        shell.chan.sendall(b"end\r")
        shell.read_until(f"\r\n{renamed}#".encode())
    finally:
        shell.close()
    with ConnectHandler(**lab.connect_params("hub1", "cisco_ios")) as conn:
        assert conn.find_prompt() == f"{renamed}>"
        conn.enable()
        assert conn.find_prompt() == f"{renamed}#"
        assert "hostname " + renamed in conn.send_command("show running-config | include ^hostname")
