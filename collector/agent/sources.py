"""Who sent an invalid-SPI line: an inventory router (the flow's other end), a configured
peer, the receiver itself, or nobody the agent knows (`LineSources.classify`).

Inventory addresses come from the inventory and from what the agent learnt of each
router's interfaces (the state store); a receiver's configured peers from its running
config and crypto sessions, read over SSH when first needed and kept PEER_REFRESH.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from collector.core.decide import SourceKind
from collector.cryptoconfig import classify_config, parse_crypto_sessions
from collector.detect.events import Flow
from collector.inventory import Inventory
from collector.sessions import SessionError, SessionSource
from collector.state import StateStore
from collector.timeutil import utcnow

log = logging.getLogger(__name__)

PEER_REFRESH = timedelta(minutes=10)  # a receiver's configured and active peers, read when needed

Address = IPv4Address | IPv6Address


class LineSources:
    """Says who sent a line. Thread-safe: the address index is built once (a race builds
    it twice, alike); `_lock` guards the per-router locks that keep one peers read at a
    time per router."""

    def __init__(self, inventory: Inventory, store: StateStore, sessions: SessionSource):
        self.inventory = inventory
        self.store = store
        self.sessions = sessions
        self._lock = threading.Lock()
        self._peers: dict[str, tuple] = {}
        self._peer_reads: dict[str, threading.Lock] = {}  # router -> held while its peers are read
        self._by_address: dict[Address, frozenset[str]] | None = None  # the inventory does not change

    def classify(self, flow: Flow, *, read_peers: bool = True) -> tuple[SourceKind | None, str | None, bool | None]:
        """(what srcaddr is, the sender's inventory name, whether destaddr is the receiver's).
        `read_peers=False`: no SSH read; a source outside the inventory is then None (not
        known yet) unless the receiver's configured peers were read within PEER_REFRESH."""
        owners = self.owners(flow.src)
        mine = self._addresses_of(flow.router)
        dst_owned = (flow.dst in mine) if mine else None
        if owners == {flow.router} or flow.src in mine:
            return SourceKind.SELF, None, dst_owned
        others = owners - {flow.router}
        if len(others) == 1:
            return SourceKind.INVENTORY, next(iter(others)), dst_owned
        if len(others) > 1:
            return SourceKind.AMBIGUOUS, None, dst_owned
        known = self._peers_of(flow.router, read=read_peers)
        if known is None:
            return None, None, dst_owned
        peers, networks = known
        if flow.src in peers or any(flow.src in net for net in networks):
            return SourceKind.PEER, None, dst_owned
        return SourceKind.UNKNOWN, None, dst_owned

    def owners(self, address: Address) -> set[str]:
        """The inventory routers that have `address` (its own list or learnt interfaces)."""
        owners = set(self._inventory_owners().get(address, ()))
        owners |= set(self.store.routers_with_address(address))
        return {name for name in owners if name in self.inventory.hosts}

    def _inventory_owners(self) -> dict[Address, frozenset[str]]:
        """Inventory address -> its routers, built once: looking through every host for each
        line cost 0.1-0.5 s at 10,000 routers (four addresses each, parsed on every look)."""
        index = self._by_address
        if index is None:
            built: dict[Address, set[str]] = {}
            for host in self.inventory.hosts.values():
                for text in host.addresses:
                    if _is_ip(text):
                        built.setdefault(ip_address(text), set()).add(host.name)
            index = self._by_address = {address: frozenset(names) for address, names in built.items()}
        return index

    def _addresses_of(self, router: str) -> set[Address]:
        host = self.inventory.hosts.get(router)
        found = {a.address for a in self.store.addresses(router)}
        if host is not None:
            found |= {ip_address(a) for a in host.addresses if _is_ip(a)}
        return found

    def _peers_of(self, router: str, *, read: bool = True
                  ) -> tuple[frozenset[Address], tuple[IPv4Network | IPv6Network, ...]] | None:
        """Configured peers (crypto map `set peer`, tunnel destinations, static NHRP, IKEv2
        peers), peers with a crypto session now, and the networks of its pre-shared keys
        and keyrings, read once per PEER_REFRESH per router (one read at a time per router:
        a poll and a syslog line's count may ask at once). `read=False`: None unless known."""
        cached = self._peers_fresh(router)
        if cached is not None or not read:
            return cached
        with self._lock:
            reading = self._peer_reads.setdefault(router, threading.Lock())
        with reading:
            return self._peers_fresh(router) or self._read_peers(router)

    def _peers_fresh(self, router: str) -> tuple[frozenset[Address], tuple[IPv4Network | IPv6Network, ...]] | None:
        cached = self._peers.get(router)
        if cached is not None and utcnow() - cached[0] < PEER_REFRESH:
            return cached[1], cached[2]
        return None

    def _read_peers(self, router: str) -> tuple[frozenset[Address], tuple[IPv4Network | IPv6Network, ...]]:
        now = utcnow()
        host = self.inventory.hosts.get(router)
        peers: set[Address] = set()
        networks: tuple = ()
        if host is not None:
            try:
                with self.sessions.session(host) as session:
                    config = session.run("show running-config", read_timeout=max(host.options.read_timeout, 120.0))
                    sessions = session.run("show crypto session", check=False)
                for tunnel in classify_config(config.text).tunnels:
                    peers |= {ip_address(p) for p in tunnel.peers if _is_ip(p)}
                peers |= {ip_address(s.peer) for s in parse_crypto_sessions(sessions.text) if _is_ip(s.peer)}
                networks = keyed_networks(config.text)
            except SessionError as exc:
                log.warning("%s: could not read its configured peers: %s", router, exc.reason)
                return frozenset(), ()  # not cached: asked again at the next line
        self._peers[router] = (now, frozenset(peers), networks)
        return self._peers[router][1], networks


# `crypto isakmp key K address A [MASK]`, keyring `pre-shared-key address A [MASK] key K`,
# IKEv2 keyring peer ` address A [MASK]`, ISAKMP/IKEv2 profile `match identity address A [MASK]`.
_KEYED = re.compile(r"^\s*(?:crypto isakmp key \S+ address|pre-shared-key address|address|"
                    r"match identity (?:remote )?address(?: ipv4)?)\s+([0-9A-Fa-f:.]+)(?:[ /]([0-9.]+))?", re.M)


def keyed_networks(running_config: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Addresses and networks the router holds a key or identity match for. A wildcard
    (`0.0.0.0 0.0.0.0`) names no peer: it would make every scanner a peer."""
    found = []
    for address, mask in _KEYED.findall(running_config):
        try:
            network = ip_network(f"{address}/{mask}" if mask else address, strict=False)
        except ValueError:
            continue
        if network.prefixlen > 0 and not network.network_address.is_unspecified:
            found.append(network)
    return tuple(found)


def _is_ip(text: str) -> bool:
    try:
        ip_address(str(text))
    except ValueError:
        return False
    return True
