"""The ordinary traffic of a busy router: the messages that fill a production log buffer.

A real 10 MB buffer holds weeks of interface flaps, routing adjacency changes, DMVPN/NHRP
registrations and logins, with the odd crypto line among them. The lab writes that
history into the buffer before it starts (`history`) and keeps adding to it while it runs
(`next_message`), so that an agent reading the log meets what it would meet in
production. Every message form below comes from a public capture; the source of each
is in the comment next to it and in docs/lab-fidelity.md.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime

from collector.lab.clock import local_clock_text
from collector.lab.topology import MGRE_DYNAMIC, MGRE_STATIC, RouterSpec, TunnelSpec

NOC_SOURCES = ("10.255.255.5", "10.255.255.6", "10.255.255.21")  # jump hosts (RFC 1918, not loopback)
OPERATORS = ("admin", "netops", "noc-ro")
SSH_CIPHER = "using crypto cipher 'aes256-ctr', hmac 'hmac-sha2-256'"


def scanner_address(rng: random.Random) -> str:
    """A public unicast IPv4 address outside every range the lab uses (text only: the lab
    sends nothing to it)."""
    while True:
        a = rng.randrange(1, 224)
        if a in (10, 100, 127, 169, 172, 192, 198, 203):
            continue
        return f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _spare_interface(lan_if: str, n: int) -> str:
    """A physical port that carries no tunnel: the LAN port's neighbour (Gi0/0/1 -> Gi0/0/2)."""
    head, _, last = lan_if.rpartition("/") if "/" in lan_if else ("", "", lan_if)
    if head:
        return f"{head}/{int(last) + n}"
    stem = lan_if.rstrip("0123456789")
    return f"{stem}{int(lan_if[len(stem):]) + n}"


class Traffic:
    """Message generator of one router (deterministic per seed and router)."""

    def __init__(self, spec: RouterSpec, tunnels: list[tuple[TunnelSpec, int]], seed: int):
        self.spec = spec
        self.rng = random.Random(f"{seed}:traffic:{spec.name}")
        self.ports = [_spare_interface(spec.platform.lan_if, n) for n in (1, 2)]
        self.bgp = [f"10.255.{spec.index // 250}.{200 + i}" for i in range(2)]  # iBGP to route reflectors
        self.ospf = [f"10.254.{spec.index % 250}.{i}" for i in (1, 2)]
        self.dmvpn = [(t, end) for t, end in tunnels if t.ends[end].config_type in (MGRE_STATIC, MGRE_DYNAMIC)]
        self.tty = 2

    # -- one event (one or a few lines) ---------------------------------------------

    def event(self, when: datetime) -> list[tuple[float, int, str]]:
        """(offset seconds, severity, message) of one ordinary event at `when`."""
        kinds = ["flap", "bgp", "ospf", "login", "login", "config", "ssh-fail"]
        if self.dmvpn:
            kinds += ["dmvpn", "dmvpn"]
        kind = self.rng.choice(kinds)
        return getattr(self, "_" + kind.replace("-", "_"))(when)

    def _flap(self, when: datetime) -> list[tuple[float, int, str]]:
        port = self.rng.choice(self.ports)
        back = self.rng.uniform(2, 30)
        # forms: public IOS lab transcripts (`%LINK-3-UPDOWN`, `%LINEPROTO-5-UPDOWN`)
        return [
            (0.0, 3, f"%LINK-3-UPDOWN: Interface {port}, changed state to down"),
            (1.0, 5, f"%LINEPROTO-5-UPDOWN: Line protocol on Interface {port}, changed state to down"),
            (back, 3, f"%LINK-3-UPDOWN: Interface {port}, changed state to up"),
            (back + 1.0, 5, f"%LINEPROTO-5-UPDOWN: Line protocol on Interface {port}, changed state to up"),
        ]

    def _bgp(self, when: datetime) -> list[tuple[float, int, str]]:
        nbr = self.rng.choice(self.bgp)
        back = self.rng.uniform(20, 90)
        # forms: public troubleshooting transcripts ("Down BGP Notification sent", "4/0 (hold time expired)")
        return [
            (0.0, 3, f"%BGP-3-NOTIFICATION: sent to neighbor {nbr} 4/0 (hold time expired) 0 bytes"),
            (0.0, 5, f"%BGP-5-ADJCHANGE: neighbor {nbr} Down BGP Notification sent"),
            (back, 5, f"%BGP-5-ADJCHANGE: neighbor {nbr} Up"),
        ]

    def _ospf(self, when: datetime) -> list[tuple[float, int, str]]:
        nbr = self.rng.choice(self.ospf)
        port = self.spec.platform.lan_if
        back = self.rng.uniform(30, 60)
        # forms: public OSPF lab transcripts ("Neighbor Down: Dead timer expired", "Loading Done")
        return [
            (0.0, 5, f"%OSPF-5-ADJCHG: Process 1, Nbr {nbr} on {port} from FULL to DOWN, Neighbor Down: Dead timer expired"),
            (back, 5, f"%OSPF-5-ADJCHG: Process 1, Nbr {nbr} on {port} from LOADING to FULL, Loading Done"),
        ]

    def _dmvpn(self, when: datetime) -> list[tuple[float, int, str]]:
        t, end = self.rng.choice(self.dmvpn)
        me, peer = t.ends[end], t.ends[1 - end]
        ifname = me.tunnel_if or "Tunnel0"
        # forms: a public DMVPN lab's `show logging` (two spaces after CRYPTO_SS:, before UP)
        lines = [(0.0, 5, f"%DMVPN-5-CRYPTO_SS:  {ifname}: local address : {me.local_addr} remote address : {peer.public_addr} socket is UP")]
        if me.config_type == MGRE_STATIC:  # the spoke reports its hub (NHS)
            lines.append(
                (
                    0.003,
                    5,
                    f"%DMVPN-5-NHRP_NHS_UP: {ifname}: Next Hop Server : (Tunnel: {peer.tunnel_ip} NBMA: {peer.public_addr}) "
                    f"for (Tunnel: {me.tunnel_ip} NBMA: {me.public_addr}) is  UP",
                )
            )
        return lines

    def _login(self, when: datetime) -> list[tuple[float, int, str]]:
        user = self.rng.choice(OPERATORS)
        src = self.rng.choice(NOC_SOURCES)
        self.tty = self.tty % 4 + 2
        stay = self.rng.uniform(30, 600)
        at = when.replace(microsecond=0)
        # forms: public IOS/IOS-XE logs (SEC_LOGIN with "at HH:MM:SS ZONE Ddd Mon D YYYY", local time, SSH2_SESSION, SYS-6-LOGOUT)
        return [
            (0.0, 5, f"%SSH-5-SSH2_SESSION: SSH2 Session request from {src} (tty = 0) {SSH_CIPHER} Succeeded"),
            (0.05, 5, f"%SSH-5-SSH2_USERAUTH: User '{user}' authentication for SSH2 Session from {src} (tty = 0) {SSH_CIPHER} Succeeded"),
            (
                0.06,
                5,
                f"%SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: {user}] [Source: {src}] [localport: 22] "
                f"at {local_clock_text(self.spec.zone, at)}",
            ),
            (stay, 6, f"%SYS-6-LOGOUT: User {user} has exited tty session {self.tty}({src})"),
        ]

    def _config(self, when: datetime) -> list[tuple[float, int, str]]:
        user = self.rng.choice(OPERATORS[:2])
        src = self.rng.choice(NOC_SOURCES)
        return [(0.0, 5, f"%SYS-5-CONFIG_I: Configured from console by {user} on vty0 ({src})")]

    def _ssh_fail(self, when: datetime) -> list[tuple[float, int, str]]:
        src = f"203.0.113.{self.rng.randrange(100, 250)}"  # an internet address guessing passwords
        user = self.rng.choice(("admin", "cisco", "root", "support"))
        at = when.replace(microsecond=0)
        return [
            (
                0.0,
                4,
                f"%SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: {user}] [Source: {src}] [localport: 22] "
                f"[Reason: Login Authentication Failed] at {local_clock_text(self.spec.zone, at)}",
            )
        ]

    def _scan(self, when: datetime) -> list[tuple[float, int, str]]:
        return self.scan()

    def scan(self) -> list[tuple[float, int, str]]:
        """ESP with a random SPI from internet sources that are no peer: one or two sources,
        the same SPI, 3 s apart (real/syslog/pastebin_f2b1tc77_scan.txt)."""
        spi = self.rng.getrandbits(16) << 16  # the capture's SPI ends in 0000 (0x77B40000)
        out = []
        for i in range(self.rng.choice((1, 1, 2))):
            src = scanner_address(self.rng)
            text = (
                "%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for "
                f"destaddr={self.spec.wan_ip}, prot=50, spi=0x{spi:08X}({spi}), srcaddr={src}"
            )
            if self.spec.inv_spi_interface:
                text += f", input interface={self.spec.platform.wan_if}"
            out.append((3.0 * i, 4, text))
        return out

    def scan_interval(self) -> float:
        """Lab seconds to the next scan of this router's public address (about every 10 min)."""
        return self.rng.expovariate(1 / 600.0)

    # -- streams ------------------------------------------------------------------------

    def history(
        self, start: float, end: float, target_bytes: int, at: Callable[[float], datetime]
    ) -> Iterator[tuple[float, int, str]]:
        """About `target_bytes` of messages spread over lab seconds [start, end), in time order."""
        per_event = 330  # bytes of one event, prefix included, on average
        events = max(1, target_bytes // per_event)
        start = max(start, end - events * 20.0)  # a busy router: an event every 20 s or so
        gap = (end - start) / events
        t = start
        pending: list[tuple[float, int, str]] = []
        for _ in range(events):
            t += gap * self.rng.uniform(0.2, 1.8)
            if t >= end:
                break
            for offset, severity, text in self.event(at(t)):
                pending.append((t + offset, severity, text))
            if self.spec.scanned and self.rng.random() < gap / 7200.0:  # a scan every two hours or so
                pending += [(t + 1.0 + offset, sv, tx) for offset, sv, tx in self.scan()]
            if len(pending) > 64:
                pending.sort()
                cut = [p for p in pending if p[0] <= t]
                pending = [p for p in pending if p[0] > t]
                yield from cut
        pending.sort()
        yield from (p for p in pending if p[0] < end)

    def interval(self) -> float:
        """Lab seconds to the next event while the lab runs (a busy router: a few a minute)."""
        return self.rng.expovariate(1 / 25.0)
