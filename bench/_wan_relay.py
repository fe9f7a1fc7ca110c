"""A WAN between the agent and the lab, for the benchmarks: every byte arrives a one-way
delay after it was sent, in each direction.

The lab answers on loopback in a fraction of a millisecond, so a benchmark on it cannot
see how many round trips the agent waits for in a row; a jump host reaching routers over
a WAN waits 20-150 ms for each. This relay stands in for that network, in its own process
(its work must not share the agent's CPU):

  tcp  one listener per lab router, on --listen-base + i for the router on --target-base
       + i. The upstream connection is made half a round trip after the accept (the TCP
       handshake's share of a real connect), then each chunk read on one side is written
       to the other one `--delay-ms` later, in order. Bandwidth is not limited.
  udp  --udp LISTEN:TARGET: each datagram (syslog) is sent on after the same delay.

It prints one JSON line when listening ({"tcp": [first, last], "udp": port}) and runs
until killed. `--delay-ms` is one way: a round trip costs twice that.

    python bench/_wan_relay.py --delay-ms 25 --target-base 20001 --count 200 --listen-base 40001
    python bench/_wan_relay.py --delay-ms 25 --udp 0:5514
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys

CHUNK = 1 << 16


async def _carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Everything `reader` gets, written to `writer` `delay` seconds after it came."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not data:  # the sender closed its side
                with contextlib.suppress(OSError):  # the other side may have gone first
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    delivering = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((loop.time() + delay, b""))
    try:
        await delivering
    except ConnectionError:
        pass


def _tcp_handler(target_port: int, delay: float):
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)  # SYN and SYN-ACK: the router sees the connection half a round trip later
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(_carry(client_r, upstream_w, delay), _carry(upstream_r, client_w, delay))
        finally:
            for w in (client_w, upstream_w):
                w.close()

    return handle


class _DelayedDatagrams(asyncio.DatagramProtocol):
    """Each datagram sent on after the delay from the address it came from (a lab router
    sends its syslog from its own 127.x address, which tells the agent who sent it)."""

    def __init__(self, target: tuple[str, int], delay: float):
        self.target, self.delay = target, delay
        self._senders: dict[str, socket.socket] = {}

    def datagram_received(self, data: bytes, addr) -> None:
        sender = self._senders.get(addr[0])
        if sender is None:
            sender = self._senders[addr[0]] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender.bind((addr[0], 0))
            sender.setblocking(False)
        asyncio.get_running_loop().call_later(self.delay, self._send, sender, data)

    def _send(self, sender: socket.socket, data: bytes) -> None:
        try:
            sender.sendto(data, self.target)
        except OSError:
            pass  # a full buffer drops it, as a network would


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    parser.add_argument("--target-base", type=int)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--listen-base", type=int)
    parser.add_argument("--udp", help="LISTEN_PORT:TARGET_PORT on 127.0.0.1 (LISTEN_PORT 0: any free one)")
    args = parser.parse_args()
    delay = args.delay_ms / 1000.0
    said: dict = {}
    servers = []
    for i in range(args.count):
        servers.append(await asyncio.start_server(_tcp_handler(args.target_base + i, delay), "127.0.0.1",
                                                  args.listen_base + i, backlog=512))
    if args.count:
        said["tcp"] = [args.listen_base, args.listen_base + args.count - 1]
    if args.udp:
        listen, target = (int(p) for p in args.udp.split(":"))
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _DelayedDatagrams(("127.0.0.1", target), delay), local_addr=("127.0.0.1", listen))
        said["udp"] = transport.get_extra_info("sockname")[1]
    print(json.dumps(said), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
