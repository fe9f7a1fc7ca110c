"""Syslog through the sites: a site worker receives its routers' UDP syslog and forwards
each invalid-SPI hint to the correlator, whose agent handles it as its own receiver's.

A router sends syslog to its own site's jump host (`collector worker --syslog`), not
across the WAN to the correlator. The worker's receiver keeps only datagrams from its
own site's routers that carry the invalid-SPI marker, and pushes each onto one Redis list;
the correlator takes them off and calls the agent's `on_syslog_hint`, which records the
line and confirms it by reading the router's log through the site (the same rule as on
one host: a UDP line is a hint, never a trigger by itself).

The list is capped: under a flood the oldest hints are dropped (a real repeated flow is
still found by the next log poll); a hint lost to a broker restart is found the same way.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass

import redis

from collector.detect.syslog_reader import MARKER, MAX_DATAGRAM
from collector.detect.syslog_receiver import SyslogHint, SyslogReceiver
from collector.inventory import Inventory

log = logging.getLogger(__name__)

HINTS = "collector:syslog"
MAX_QUEUED = 10_000  # hints waiting for the correlator, all sites together


@dataclass
class RelayStats:
    forwarded: int = 0  # worker: pushed to the broker
    failed: int = 0  # worker: the broker did not take it (down): dropped
    delivered: int = 0  # correlator: handed to the agent
    refused: int = 0  # correlator: not from a router of the site that forwarded it, or malformed


class SyslogForwarder:
    """The worker's side: its site's hints onto the broker."""

    def __init__(self, client: redis.Redis, site: str):
        self.client = client
        self.site = site
        self.stats = RelayStats()

    def __call__(self, hint: SyslogHint) -> None:
        message = json.dumps({"site": self.site, "router": hint.router, "source": hint.source_ip,
                              "data": base64.b64encode(hint.data).decode()})
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(HINTS, message)
                pipe.ltrim(HINTS, -MAX_QUEUED, -1)
                pipe.execute()
            self.stats.forwarded += 1
        except redis.RedisError as exc:
            self.stats.failed += 1
            log.warning("syslog hint from %s not forwarded (broker: %s); the next log poll finds the line",
                        hint.router, exc)


def site_receiver(host: str, port: int, inventory: Inventory, site: str, client: redis.Redis,
                  *, queue_size: int = 2000) -> tuple[SyslogReceiver, SyslogForwarder]:
    """A UDP receiver on host:port for the routers of `site` only, forwarding to the broker.

    Raises:
        OSError: the address cannot be bound."""
    forwarder = SyslogForwarder(client, site)

    def owner(ip: str) -> str | None:
        found = inventory.owner_of(ip)
        return found.name if found is not None and found.site == site else None

    return SyslogReceiver(host, port, owner, forwarder, queue_size=queue_size).start(), forwarder


class SyslogRelay:
    """The correlator's side: takes the sites' hints off the broker and hands each, checked
    against the correlator's own inventory, to `on_hint`."""

    def __init__(self, broker: str, inventory: Inventory, on_hint):
        self.client = redis.Redis.from_url(broker)
        self.inventory = inventory
        self.on_hint = on_hint
        self.stats = RelayStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syslog-relay", daemon=True)

    def start(self) -> SyslogRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                got = self.client.blpop([HINTS], timeout=1)
            except redis.RedisError:
                self._stop.wait(1.0)  # the broker is restarting: hints meanwhile are found by polls
                continue
            if got is None:
                continue
            hint = self.check(got[1])
            if hint is None:
                self.stats.refused += 1
                continue
            try:
                self.on_hint(hint)
                self.stats.delivered += 1
            except Exception:  # one bad hint must not stop the relay
                log.exception("syslog hint from %s could not be handled", hint.router)

    def check(self, raw: bytes) -> SyslogHint | None:
        """The hint, if it is one a worker of the router's own site could have received: the
        source address belongs to that router in this inventory, and the datagram is an
        invalid-SPI line of at most one datagram's size."""
        try:
            message = json.loads(raw)
            site, router, source = str(message["site"]), str(message["router"]), str(message["source"])
            data = base64.b64decode(message["data"], validate=True)
        except (ValueError, KeyError, TypeError):
            return None
        host = self.inventory.hosts.get(router)
        owner = self.inventory.owner_of(source)
        if host is None or host.site != site or owner is None or owner.name != router:
            return None
        if len(data) > MAX_DATAGRAM or MARKER not in data:
            return None
        return SyslogHint(router, source, data)
