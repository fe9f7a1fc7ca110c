"""Transport faults, set at runtime through the control API, seen by real SSH clients."""
# Shell and SSH mechanics: routers keep their inventory names as hostnames here (realism "none");
# realistic names, timestamps and buffers are tested in test_realism.py and test_ssh_prompts.py.

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import paramiko
import pytest
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

from collector.lab.runner import RunningLab, running_lab
from collector.lab.sshserver import derive_host_key

DEFAULT_FAULTS = {
    "refuse_connections": False,
    "changed_host_key": False,
    "slow_seconds": 0.0,
    "drop_after_bytes": None,
    "vty_limit": 5,
    "wrong_password": False,
}


@pytest.fixture(scope="module")
def lab() -> Iterator[RunningLab]:
    with running_lab(routers=4, seed=0, realism="none") as running:
        yield running


@pytest.fixture
def router(lab: RunningLab) -> Iterator[str]:
    """spoke1, with its faults and vty lines back to normal after each test."""
    yield "spoke1"
    lab.control.fault("spoke1", **DEFAULT_FAULTS)
    _wait_for(lambda: lab.listener_stats("spoke1").sessions_in_use == 0)


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _client(lab: RunningLab, router: str) -> paramiko.SSHClient:
    params = lab.connect_params(router)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", params["port"], params["username"], params["password"],
                   look_for_keys=False, allow_agent=False, timeout=10)
    return client


def _shell(client: paramiko.SSHClient) -> paramiko.Channel:
    chan = client.invoke_shell(term="vt100", width=511, height=1000)
    chan.settimeout(10)
    return chan


def _read_until(chan: paramiko.Channel, marker: bytes) -> bytes:
    data = b""
    while not data.endswith(marker):
        chunk = chan.recv(65536)
        if not chunk:
            raise EOFError(data)
        data += chunk
    return data


def test_vty_limit_refuses_the_sixth_session_like_ios(lab: RunningLab, router: str) -> None:
    params = lab.connect_params(router)
    sessions = [ConnectHandler(**params) for _ in range(5)]
    try:
        assert lab.listener_stats(router).sessions_in_use == 5
        with pytest.raises(NetmikoTimeoutException, match="TCP connection to device failed"):
            ConnectHandler(**params)
        # what the client sees underneath: the SYN is refused, as with all vty lines busy on IOS
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", params["port"]), timeout=5)
        # the five established sessions keep working
        assert sessions[0].send_command("show clock")
        sessions.pop().disconnect()
        _wait_for(lambda: lab.listener_stats(router).listening)
        replacement = ConnectHandler(**params)
        sessions.append(replacement)
        assert replacement.find_prompt() == f"{router}>"
    finally:
        for session in sessions:
            session.disconnect()


def test_a_session_waiting_at_login_holds_a_vty_line(lab: RunningLab, router: str) -> None:
    lab.control.fault(router, vty_limit=1)
    params = lab.connect_params(router)
    idle = socket.create_connection(("127.0.0.1", params["port"]), timeout=5)
    try:
        assert idle.recv(64).startswith(b"SSH-2.0-")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", params["port"]), timeout=5)
    finally:
        idle.close()
    _wait_for(lambda: lab.listener_stats(router).listening)
    with ConnectHandler(**params) as conn:
        assert conn.find_prompt() == f"{router}>"


def test_raising_vty_limit_at_runtime_reopens_the_listener(lab: RunningLab, router: str) -> None:
    lab.control.fault(router, vty_limit=0)
    _wait_for(lambda: not lab.listener_stats(router).listening)  # closing the listener is asynchronous
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", lab.ports[router]), timeout=5)
    lab.control.fault(router, vty_limit=5)
    _wait_for(lambda: lab.listener_stats(router).listening)
    with ConnectHandler(**lab.connect_params(router)) as conn:
        assert conn.find_prompt() == f"{router}>"


def test_refuse_connections_closes_before_the_banner(lab: RunningLab, router: str) -> None:
    lab.control.fault(router, refuse_connections=True)
    with socket.create_connection(("127.0.0.1", lab.ports[router]), timeout=5) as sock:
        assert sock.recv(64) == b""  # accepted, then closed: no SSH banner
    with pytest.raises(NetmikoTimeoutException, match="Error reading SSH protocol banner"):
        ConnectHandler(**lab.connect_params(router))
    lab.control.fault(router, refuse_connections=False)
    with ConnectHandler(**lab.connect_params(router)) as conn:
        assert conn.find_prompt() == f"{router}>"


def test_changed_host_key_is_detected_by_a_pinned_client(lab: RunningLab, router: str) -> None:
    port = lab.ports[router]
    original = _client(lab, router)
    pinned = original.get_transport().get_remote_server_key()
    original.close()
    assert pinned.get_base64() == derive_host_key(0, router).export_public_key("openssh").split()[1].decode()

    lab.control.fault(router, changed_host_key=True)
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{port}", pinned.get_name(), pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    params = lab.connect_params(router)
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect("127.0.0.1", port, params["username"], params["password"],
                       look_for_keys=False, allow_agent=False, timeout=10)
    client.close()

    lab.control.fault(router, changed_host_key=False)
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{port}", pinned.get_name(), pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port, params["username"], params["password"],
                   look_for_keys=False, allow_agent=False, timeout=10)
    client.close()


def test_wrong_password_fault_refuses_the_right_password(lab: RunningLab, router: str) -> None:
    lab.control.fault(router, wrong_password=True)
    with pytest.raises(NetmikoAuthenticationException):
        ConnectHandler(**lab.connect_params(router))


def test_slow_router_delays_output_but_not_echo(lab: RunningLab, router: str) -> None:
    client = _client(lab, router)
    try:
        chan = _shell(client)
        _read_until(chan, f"{router}>".encode())
        lab.control.fault(router, slow_seconds=0.4)
        started = time.monotonic()
        chan.sendall(b"show clock\r")
        assert _read_until(chan, b"show clock\r\n") == b"show clock\r\n"
        reply = _read_until(chan, f"{router}>".encode())
        # a lower bound only: the injected delay cannot be shorter than configured
        assert time.monotonic() - started >= 0.4
        assert b"Invalid" not in reply and reply.count(b"\r\n") == 1
        # input typed while a slow command runs is kept and run afterwards, in order
        chan.sendall(b"show clock\rshow version\r")
        replies = _read_until(chan, f"{router}>".encode())
        while replies.count(f"{router}>".encode()) < 2:
            replies += _read_until(chan, f"{router}>".encode())
        assert replies.index(b"show clock") < replies.index(b"Cisco IOS")
    finally:
        client.close()


def test_drop_after_bytes_cuts_one_output_and_closes(lab: RunningLab, router: str) -> None:
    prompt = f"{router}#".encode()

    def privileged_shell() -> tuple[paramiko.SSHClient, paramiko.Channel]:
        client = _client(lab, router)
        chan = _shell(client)
        _read_until(chan, f"{router}>".encode())
        chan.sendall(b"enable\r")
        _read_until(chan, b"Password: ")
        chan.sendall(lab.fleet.routers[router].enable_secret.encode() + b"\r")
        _read_until(chan, prompt)
        return client, chan

    client, chan = privileged_shell()
    chan.sendall(b"show running-config\r")
    full = _read_until(chan, prompt)[len(b"show running-config\r\n") : -len(prompt)]
    client.close()
    assert len(full) > 300

    lab.control.fault(router, drop_after_bytes=200)
    client, chan = privileged_shell()
    try:
        chan.sendall(b"show running-config\r")
        got = b""
        while chunk := chan.recv(65536):
            got += chunk
        assert got == b"show running-config\r\n" + full[:200]
        assert chan.closed or chan.eof_received
    finally:
        client.close()
    _wait_for(lambda: lab.listener_stats(router).sessions_in_use == 0)


def test_reboot_drops_the_routers_sessions(lab: RunningLab, router: str) -> None:
    conn = ConnectHandler(**lab.connect_params(router))
    other = ConnectHandler(**lab.connect_params("hub1"))
    try:
        lab.control.reboot(router)
        _wait_for(lambda: not conn.remote_conn.get_transport().is_active())
        assert other.find_prompt() == "hub1>"
        with ConnectHandler(**lab.connect_params(router)) as again:
            assert again.find_prompt() == f"{router}>"
    finally:
        conn.disconnect()
        other.disconnect()
