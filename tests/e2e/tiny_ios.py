"""A tiny IOS-like SSH router for session tests: what the lab cannot be (yet).

Prints prompts as IOS does (the whole hostname in exec mode, only its first 20 characters
before `(config...)#`), changes its name on `hostname X`, asks for the enable secret
without echo, prints a login banner (optionally in two pieces, the first ending in a
`#` line), refuses lines with `% Invalid input ...` or, for commands its AAA policy
denies, `Command authorization failed.`, and holds `show slow N` back N seconds.
Every line it receives is recorded, so a test can check what was (not) sent.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncssh

CONFIG_PROMPT_CHARS = 20


@dataclass
class TinyIos:
    hostname: str = "R1"
    password: str = "pw"
    secret: str = "en-secret"
    banner: str = ""
    banner_pause: float = 0.0  # seconds between the banner and the prompt
    denied: tuple[str, ...] = ()  # regexes of lines AAA refuses
    prompt_after_return: bool = False  # print the first prompt only once a Return is typed
    refuse_pty: bool = False  # refuse the client's terminal request (the shell still starts)
    received: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)  # the client's input as it came, write by write
    terminal: tuple[str | None, int] | None = None  # (type, width) of the session's terminal
    logins: int = 0  # password attempts
    port: int = 0

    def prompt(self, mode: str) -> str:
        if mode == "user":
            return self.hostname + ">"
        if mode == "priv":
            return self.hostname + "#"
        return self.hostname[:CONFIG_PROMPT_CHARS] + f"({mode})#"

    def answer(self, mode: str, line: str) -> tuple[str, str]:
        """(output, mode afterwards) for one line typed in `mode`."""
        self.received.append(line)
        words = line.split()
        if not words:
            return "", mode
        if any(re.search(p, line) for p in self.denied):
            return "Command authorization failed.\n", mode
        verb = words[0]
        if mode in ("user", "priv"):
            if verb == "terminal":
                return "", mode
            if verb == "enable":
                return "", "ask-secret"
            if verb in ("configure", "conf") and mode == "priv":
                return "Enter configuration commands, one per line.  End with CNTL/Z.\n", "config"
            if line == "show banner-like":  # an output line that looks like the prompt with a command after it
                return f"banner says:\n{self.prompt(mode)}show users\n", mode
            if verb == "show":
                return f"output of {line}\n", mode
            return f"{line}\n  ^\n% Invalid input detected at '^' marker.\n\n", mode
        if verb == "end":
            return "", "priv"
        if verb == "hostname" and len(words) == 2:
            self.hostname = words[1]
            return "", mode
        if verb == "interface":
            return "", "config-if"
        if words[:3] == ["event", "manager", "applet"] and mode == "config":
            return "", "config-applet"
        if verb in ("event", "action") and mode == "config-applet":
            return "", mode
        if verb == "exit":
            return "", "config" if mode != "config" else "priv"
        if verb in ("logging", "ip", "description", "no", "debug"):
            return "", mode
        if verb == "incomplete":
            return "% Incomplete command.\n\n", mode
        return f"{line}\n  ^\n% Invalid input detected at '^' marker.\n\n", mode


class _Server(asyncssh.SSHServer):
    def __init__(self, router: TinyIos):
        self.router = router

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        self.router.logins += 1
        return password == self.router.password


async def typed_lines(stdin: asyncssh.SSHReader, writes: list[str] | None = None) -> AsyncIterator[str]:
    """Each line a client types (ended by CR, LF or CRLF), as it completes; what each
    read brought is appended to `writes` (lines written at once come in one read)."""
    buffer = ""
    while True:
        try:
            data = await stdin.read(4096)
        except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
            continue
        if not data:
            return
        if writes is not None:
            writes.append(data)
        buffer += data
        while "\n" in buffer or "\r" in buffer:
            cut = min(i for i in (buffer.find("\n"), buffer.find("\r")) if i >= 0)
            line, buffer = buffer[:cut], buffer[cut + 1:].lstrip("\n")
            yield line


async def _shell(router: TinyIos, process: asyncssh.SSHServerProcess) -> None:
    out = process.stdout
    router.terminal = (process.get_terminal_type(), process.get_terminal_size()[0])
    if router.banner:
        out.write(router.banner.replace("\n", "\r\n"))
        if router.banner_pause:
            await asyncio.sleep(router.banner_pause)
    mode = "user"
    lines = typed_lines(process.stdin, router.writes)
    if router.prompt_after_return and await anext(lines, None) is None:
        return
    out.write("\r\n" + router.prompt(mode))
    async for line in lines:
        if mode == "ask-secret":
            if line == router.secret:
                mode = "priv"
                out.write("\r\n" + router.prompt(mode))
            else:
                out.write("\r\n% Access denied\r\n\r\nPassword: ")
            continue
        out.write(line + "\r\n")
        if line.strip() == "exit" and mode in ("user", "priv"):
            process.exit(0)
            return
        slow = re.fullmatch(r"show slow (\d+(?:\.\d+)?)", line.strip())
        if slow:
            await asyncio.sleep(float(slow.group(1)))
        output, mode = router.answer(mode, line.strip())
        out.write(output.replace("\n", "\r\n"))
        out.write("Password: " if mode == "ask-secret" else router.prompt(mode))
    process.exit(0)


@contextmanager
def tiny_ios(router: TinyIos) -> Iterator[TinyIos]:
    """Serve `router` on 127.0.0.1 (its `port` is set) for the duration of the block."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    servers: list = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            key = asyncssh.generate_private_key("ssh-ed25519")
            server = await asyncssh.create_server(
                lambda: _Server(router), "127.0.0.1", 0, server_host_keys=[key],
                process_factory=lambda p: _shell(router, p), encoding="utf-8", line_editor=False,
                allow_pty=not router.refuse_pty)
            router.port = server.sockets[0].getsockname()[1]
            servers.append(server)

        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield router
    finally:
        async def stop() -> None:
            for server in servers:
                server.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
