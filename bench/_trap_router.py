"""A minimal SSH router emulator whose outputs contain prompt-looking lines.

The lab cannot print a line that is exactly its own prompt, so the correctness check of
benchmark 1 uses this tiny asyncssh server on 127.0.0.1 (random port, ed25519 host key,
any password). Prompt `trap#`. Commands:

    show inside     1,000 lines with `trap#` and `trap#show version` lines inside, one write
    show pause      the same, but the server stops for PAUSE seconds right after a line
                    that is exactly `trap#` (as a busy router pausing mid-output would)
    anything else   no output (netmiko's session preparation works)
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import asyncssh

PROMPT = "trap#"
PAUSE = 0.3


def inside_output() -> str:
    lines = []
    for i in range(1, 1001):
        lines.append(f"line {i:04d} of a long output, padding padding padding padding padding")
        if i in (250, 500):
            lines.append(PROMPT)  # a line that is exactly the prompt
        if i == 750:
            lines.append(PROMPT + "show version")  # the prompt followed by a command
    return "\n".join(lines) + "\n"


def expected_lines() -> int:
    return inside_output().count("\n")


class _Shell:
    def __init__(self, process: asyncssh.SSHServerProcess):
        self.process = process

    async def run(self) -> None:
        out = self.process.stdout
        out.write(PROMPT)
        buffer = ""
        try:
            while True:
                data = await self.process.stdin.read(4096)
                if not data:
                    break
                buffer += data
                while "\n" in buffer or "\r" in buffer:
                    cut = min(i for i in (buffer.find("\n"), buffer.find("\r")) if i >= 0)
                    line, buffer = buffer[:cut], buffer[cut + 1:]
                    if line == "" and buffer.startswith("\n"):
                        buffer = buffer[1:]
                    await self._answer(line.strip())
        except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged, BrokenPipeError, ConnectionError):
            pass
        finally:
            self.process.exit(0)

    async def _answer(self, command: str) -> None:
        out = self.process.stdout
        out.write(command + "\r\n")  # echo, as a vty does
        if command in ("exit", "logout", "quit"):
            self.process.exit(0)
            return
        if command == "show inside":
            out.write(inside_output().replace("\n", "\r\n"))
        elif command == "show pause":
            text = inside_output()
            head, _sep, tail = text.partition("\n" + PROMPT + "\n")
            out.write((head + "\n" + PROMPT).replace("\n", "\r\n"))
            await out.drain()
            await asyncio.sleep(PAUSE)
            out.write(("\n" + tail).replace("\n", "\r\n"))
        out.write(PROMPT)


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return True


@dataclass
class TrapRouter:
    """Run with `with TrapRouter() as router: router.port`."""

    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: object | None = None

    def __enter__(self) -> "TrapRouter":
        self._loop = asyncio.new_event_loop()
        ready: threading.Event = threading.Event()

        async def start() -> None:
            key = asyncssh.generate_private_key("ssh-ed25519")
            self._server = await asyncssh.create_server(
                _Server, "127.0.0.1", 0, server_host_keys=[key],
                process_factory=lambda p: asyncio.ensure_future(_Shell(p).run()), encoding="utf-8", line_editor=False)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(start())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="trap-router", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("trap router did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            def shut() -> None:
                self._server.close()
                self._loop.stop()
            self._loop.call_soon_threadsafe(shut)
        if self._thread is not None:
            self._thread.join(timeout=10)
