"""The session layer's reader on a real SSH channel: long outputs come back whole, a
prompt-looking line inside an output does not end it, a pager is paged through, and a
refused command is a distinct error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import asyncssh
import pytest

from collector.hostkeys import KnownHosts
from collector.inventory import Host, SshOptions
from collector.credentials import Secret
from collector.sessions import CommandRefused, SessionPool

pytestmark = pytest.mark.e2e

BIG_LINES = 120_000  # about 10 MB
LINE = "*Nov 27 10:00:00.000: ISAKMP: (1001):received packet from 192.0.2.3 dport 500 sport 500 Global (R) QM_IDLE\n"


def reply(command: str) -> str:
    if command == "show big":
        middle = BIG_LINES // 2
        body = LINE * middle + "R1#\n" + LINE * (BIG_LINES - middle)  # a prompt-looking line inside
        return body + "end-of-output\n"
    if command == "show paged":
        return "first page\n --More-- " + "\b" * 9 + "second page\n"
    if command.startswith("sh"):
        return f"output of {command}\n"
    if command.strip() == "":
        return ""
    return f"{command}\n  ^\n% Invalid input detected at '^' marker.\n"


class TinyRouter(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return password == "pw"


async def shell(process: asyncssh.SSHServerProcess) -> None:
    process.stdout.write("\r\nR1#")
    buffer = ""
    while True:
        try:
            data = await process.stdin.read(4096)
        except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
            continue
        if not data:
            break
        buffer += data
        while "\n" in buffer or "\r" in buffer:
            cut = min(i for i in (buffer.find("\n"), buffer.find("\r")) if i >= 0)
            command, buffer = buffer[:cut], buffer[cut + 1:].lstrip("\n")
            if command.strip() == " ":
                continue
            process.stdout.write(command + "\r\n" + reply(command.strip()).replace("\n", "\r\n") + "R1#")
    process.exit(0)


@pytest.fixture(scope="module")
def tiny_router() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    started: dict = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start():
            key = asyncssh.generate_private_key("ssh-ed25519")
            server = await asyncssh.create_server(TinyRouter, "127.0.0.1", 0, server_host_keys=[key],
                                                  process_factory=shell, encoding="utf-8", line_editor=False)
            started["port"] = server.sockets[0].getsockname()[1]
            started["server"] = server

        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    yield started["port"]
    loop.call_soon_threadsafe(loop.stop)


def host(port: int) -> Host:
    return Host(name="r1", hostname="127.0.0.1", port=port, platform="cisco_ios", username="u",
                password=Secret("pw"), secret=None, groups=(), site=None, data={}, addresses=(),
                options=SshOptions(read_timeout=60.0), member_of=())


def test_long_output_with_a_prompt_like_line_inside_comes_back_whole(tiny_router, tmp_path):
    with SessionPool(KnownHosts(tmp_path / "kh")) as pool, pool.session(host(tiny_router)) as session:
        out = session.run("show big", read_timeout=120)
    lines = out.text.splitlines()
    assert len(lines) == BIG_LINES + 2
    assert lines[BIG_LINES // 2] == "R1#"
    assert lines[-1] == "end-of-output"
    assert len(out.text) > 10_000_000


def test_pager_is_paged_through_and_session_is_reused(tiny_router, tmp_path):
    with SessionPool(KnownHosts(tmp_path / "kh")) as pool:
        with pool.session(host(tiny_router)) as session:
            first = session
            paged = session.run("show paged")
        assert "first page" in paged.text and "second page" in paged.text and "--More--" not in paged.text
        with pool.session(host(tiny_router)) as session:
            assert session is first  # kept open between uses
            assert session.run("show clock").text == "output of show clock\n"


def test_refused_command_is_a_distinct_error_and_keeps_the_session(tiny_router, tmp_path):
    with SessionPool(KnownHosts(tmp_path / "kh")) as pool:
        with pytest.raises(CommandRefused) as refused:
            with pool.session(host(tiny_router)) as session:
                session.run("bogus command")
        assert "Invalid input" in refused.value.reason
        assert "% Invalid input detected" in refused.value.output
        with pool.session(host(tiny_router)) as again:
            assert again is session and again.is_open
