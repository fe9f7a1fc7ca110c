"""The lab over real SSH: netmiko sessions, the vty line discipline, auth and host keys."""
# Shell and SSH mechanics: routers keep their inventory names as hostnames here (realism "none");
# realistic names, timestamps and buffers are tested in test_realism.py and test_ssh_prompts.py.

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import asyncssh
import paramiko
import pytest
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException

from collector.lab.runner import RunningLab, running_lab
from collector.lab.sshserver import derive_host_key

CONTRACT_COMMANDS = [
    "show version",
    "show running-config",
    "show ip interface brief",
    "show clock",
    "show processes cpu | include CPU",
    "show logging",
    "show crypto isakmp sa",
    "show crypto isakmp sa detail",
    "show crypto ipsec sa",
    "show crypto session",
    "show debugging",
    "show crypto debug-condition",
]


@pytest.fixture(scope="module")
def lab() -> Iterator[RunningLab]:
    with running_lab(routers=6, seed=0, realism="none") as running:
        yield running


class RawShell:
    """A bare paramiko shell, to see exactly the bytes the router sends."""

    def __init__(self, lab: RunningLab, router: str):
        params = lab.connect_params(router)
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.client.connect(
            "127.0.0.1", params["port"], params["username"], params["password"],
            look_for_keys=False, allow_agent=False, timeout=10,
        )
        self.chan = self.client.invoke_shell(term="vt100", width=511, height=1000)
        self.chan.settimeout(10)

    def read_until(self, marker: bytes) -> bytes:
        data = b""
        while not data.endswith(marker):
            chunk = self.chan.recv(65536)
            if not chunk:
                raise EOFError(f"channel closed; got {data!r}")
            data += chunk
        return data

    def read_to_close(self) -> bytes:
        data = b""
        while chunk := self.chan.recv(65536):
            data += chunk
        return data

    def close(self) -> None:
        self.client.close()


def _visit(lab: RunningLab, router: str, device_type: str) -> dict[str, str]:
    with ConnectHandler(**lab.connect_params(router, device_type)) as conn:
        assert conn.find_prompt() == f"{router}>"
        conn.enable()
        assert conn.find_prompt() == f"{router}#"
        outputs = {command: conn.send_command(command) for command in CONTRACT_COMMANDS}
        conn.config_mode()
        assert conn.check_config_mode()
        conn.exit_config_mode()
        assert conn.find_prompt() == f"{router}#"
        return outputs


@pytest.mark.parametrize("device_type", ["cisco_ios", "cisco_xe"])
def test_every_router_answers_the_contract_commands(lab: RunningLab, device_type: str) -> None:
    with ThreadPoolExecutor(len(lab.routers)) as pool:
        results = dict(zip(lab.routers, pool.map(lambda r: _visit(lab, r, device_type), lab.routers)))
    for router, outputs in results.items():
        for command, output in outputs.items():
            assert "% Invalid input" not in output, (router, command, output)
            assert "% Incomplete command" not in output, (router, command, output)
        assert "Cisco IOS" in outputs["show version"]
        assert f"hostname {lab.fleet.routers[router].state.hostname}" in outputs["show running-config"]
        assert outputs["show ip interface brief"].lstrip().startswith("Interface")
        assert re.search(r"\d\d:\d\d:\d\d\.\d{3} \S+ \w{3} \w{3} +\d+ \d{4}", outputs["show clock"])
        assert outputs["show processes cpu | include CPU"].startswith("CPU utilization for five seconds")
        assert "Syslog logging:" in outputs["show logging"]


def test_prompt_echo_and_line_endings(lab: RunningLab) -> None:
    shell = RawShell(lab, "hub1")
    try:
        assert shell.read_until(b"hub1>").endswith(b"\r\nhub1>")
        for ending in (b"\r", b"\n", b"\r\n"):
            shell.chan.sendall(b"show clock" + ending)
            reply = shell.read_until(b"hub1>")
            assert reply.startswith(b"show clock\r\n"), reply
            lines = reply.split(b"\r\n")
            # echo, one clock line, then the prompt; no stray empty command from a CRLF
            assert len(lines) == 3 and lines[-1] == b"hub1>", reply
            assert b"\n" not in reply.replace(b"\r\n", b"")
        shell.chan.sendall(b"\r\n")
        assert shell.read_until(b"hub1>") == b"\r\nhub1>"
    finally:
        shell.close()


def test_backspace_edits_the_line(lab: RunningLab) -> None:
    shell = RawShell(lab, "spoke1")
    try:
        shell.read_until(b"spoke1>")
        shell.chan.sendall(b"show clocx\x7fk\r")
        reply = shell.read_until(b"spoke1>")
        assert reply.startswith(b"show clocx\b \bk\r\n")
        assert b"Invalid input" not in reply
        shell.chan.sendall(b"show cloc\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08show clock\n")
        assert b"Invalid input" not in shell.read_until(b"spoke1>")
    finally:
        shell.close()


def test_enable_secret_is_not_echoed(lab: RunningLab) -> None:
    secret = lab.fleet.routers["hub1"].enable_secret
    shell = RawShell(lab, "hub1")
    try:
        shell.read_until(b"hub1>")
        shell.chan.sendall(b"enable\r")
        assert shell.read_until(b"Password: ") == b"enable\r\nPassword: "
        shell.chan.sendall(secret.encode() + b"\r")
        reply = shell.read_until(b"hub1#")
        assert secret.encode() not in reply
        assert reply == b"\r\nhub1#"
        shell.chan.sendall(b"exit\r")
        shell.read_to_close()
        assert shell.chan.closed or shell.chan.exit_status_ready()
    finally:
        shell.close()


def test_exit_closes_the_session_and_frees_the_line(lab: RunningLab) -> None:
    shell = RawShell(lab, "spoke2")
    shell.read_until(b"spoke2>")
    shell.chan.sendall(b"exit\r")
    assert shell.read_to_close() == b"exit\r\n"
    shell.close()
    deadline = time.monotonic() + 10
    while lab.listener_stats("spoke2").sessions_in_use and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lab.listener_stats("spoke2").sessions_in_use == 0


def test_exec_request_runs_one_command(lab: RunningLab) -> None:
    params = lab.connect_params("spoke3")
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", params["port"], params["username"], params["password"],
                   look_for_keys=False, allow_agent=False, timeout=10)
    try:
        _, stdout, _ = client.exec_command("show version", timeout=10)
        assert b"Cisco IOS" in stdout.read()
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()


def test_wrong_password_is_refused_and_the_connection_allows_retries(lab: RunningLab) -> None:
    params = lab.connect_params("spoke4")
    with pytest.raises(NetmikoAuthenticationException):
        ConnectHandler(**{**params, "password": "not-the-password"})

    # An interactive client (like OpenSSH re-asking "Password:") retries on the same connection.
    class Retrying(asyncssh.SSHClient):
        tries = ["wrong-1", "wrong-2", params["password"]]
        asked = 0

        def password_auth_requested(self) -> str | None:
            Retrying.asked += 1
            return Retrying.tries.pop(0) if Retrying.tries else None

    async def login() -> str:
        conn, _ = await asyncssh.create_connection(
            Retrying, "127.0.0.1", params["port"], username=params["username"],
            known_hosts=None, client_keys=None, agent_path=None, preferred_auth="password",
        )
        async with conn:
            result = await conn.run("show clock", timeout=10)
        return result.stdout

    output = asyncio.run(login())
    assert Retrying.asked == 3
    assert re.search(r"\d\d:\d\d:\d\d", output)


def _presented_key(port: int) -> paramiko.PKey:
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.start_client(timeout=10)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def _openssh_base64(key: object) -> str:
    return key.export_public_key("openssh").split()[1].decode()  # type: ignore[attr-defined]


def test_host_keys_are_per_router_and_stable_across_restarts(lab: RunningLab) -> None:
    first = {name: _presented_key(port) for name, port in lab.ports.items()}
    assert len({key.get_base64() for key in first.values()}) == len(first)
    for name, key in first.items():
        assert key.get_name() == "ssh-ed25519"
        assert key.get_base64() == _openssh_base64(derive_host_key(0, name))
    with running_lab(routers=2, seed=0, realism="none") as again:
        for name, port in again.ports.items():
            assert _presented_key(port).get_base64() == first[name].get_base64()
    assert _openssh_base64(derive_host_key(1, "hub1")) != first["hub1"].get_base64()


def test_tcp_connection_gets_an_ssh_banner(lab: RunningLab) -> None:
    with socket.create_connection(("127.0.0.1", lab.ports["hub1"]), timeout=10) as sock:
        assert sock.recv(256).startswith(b"SSH-2.0-Cisco-1.25")


def test_terminal_monitor_prints_log_lines_between_commands(lab: RunningLab) -> None:
    secret = lab.fleet.routers["hub2"].enable_secret
    lab.control.config("hub2", ["logging monitor debugging"])
    shell = RawShell(lab, "hub2")
    try:
        shell.read_until(b"hub2>")
        shell.chan.sendall(b"enable\r" + secret.encode() + b"\r")
        shell.read_until(b"hub2#")
        shell.chan.sendall(b"terminal monitor\r")
        shell.read_until(b"hub2#")
        lab.control.config("hub2", ["interface Loopback0", "description monitored change"])
        shown = shell.read_until(b"hub2#")
        assert b"%SYS-5-CONFIG_I: Configured from console by" in shown
        assert shown.startswith(b"\r\n") and shown.endswith(b"\r\nhub2#")
        shell.chan.sendall(b"terminal no monitor\r")
        shell.read_until(b"hub2#")
    finally:
        shell.close()
