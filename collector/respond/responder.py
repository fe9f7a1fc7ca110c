"""The only code that changes a router: arm, join, capture, disarm, hand over, verify.

Every change follows the plan (`collector.respond.plan`): each step is written to the
state store as `pending` BEFORE it is sent, `applied` after; disarm replays the undo
lists recorded in the store (not an in-memory plan), so the same code disarms after a
normal capture, a timeout, SIGTERM, or a crash found at the next start.

Whose is what: the tool switches off only what it switched on. Pre-flight reads the
router's debugs and crypto conditions; an arm step whose debug or condition is already on
is not sent (so it has no undo), and the disarm verification counts only the tool's own
debugs and conditions as leftovers (others are reported as `foreign`, untouched).

`Responder` is composed of one part per responsibility, each in its own module over the
shared `ResponderBase` (`base`): `Arming` (`arming`: arm, the dry-run plan, the step
ledger) under `Joining` (`joining`: a flow joining an armed router, several at once), `Capturing` (`capturing`) and `Disarming` (`disarming`: disarm, hand-over,
verification, the emergency sweep). The NAT-T lookup of the sender's peer lives here.
"""

from __future__ import annotations

import re
from ipaddress import ip_address

from collector.inventory import Host
from collector.respond.joining import Joining
from collector.respond.capturing import Capturing
from collector.respond.disarming import Disarming
from collector.respond.facts import PeerAddress, run_checked

_CURRENT_PEER = re.compile(r"^\s*current_peer (\S+)", re.M)
_CURRENT_SPI = re.compile(r"^\s*current outbound spi: 0x([0-9A-Fa-f]+)", re.M)


class Responder(Joining, Capturing, Disarming):
    """Acts on routers for the agent: arm, join, capture, disarm, hand over, emergency.

    Threads: the agent calls it from worker threads; calls for different routers may run
    at once, calls for ONE router must not (the agent serialises them per router). The
    profile cache, the live IKE versions and the dead-man deadlines are guarded by one
    lock (`ResponderBase._lock`), never held while a router is talked to; the state store
    is safe across threads.

    Invariants: a step is recorded `pending` before it is sent; an arm that fails half-way
    undoes what it applied before it returns; nothing the tool did not switch on is ever
    switched off; results are values (`ArmResult`, `DisarmResult`), never sentences to parse.
    """

    def find_sender_peer(self, host: Host, spi_hex: str) -> PeerAddress | None:
        """The peer address the sender (`host`) itself uses for the flow whose SPI the
        receiver logged: the `current_peer` of the SA whose current outbound SPI is
        `spi_hex`. Under NAT-T the receiver logs its inside address as destaddr, which the
        sender does not know; this is the address to condition, query and advise by.
        None when no SA has that SPI.

        Raises:
            ValueError: `spi_hex` is not a 32-bit hex number.
            SessionError: the sender could not be read."""
        spi = int(spi_hex, 16)
        if not 0 <= spi <= 0xFFFFFFFF:
            raise ValueError(f"SPI {spi_hex!r} does not fit 32 bits")
        with self.sessions.session(host) as session:
            text = run_checked(session, "show crypto ipsec sa", read_timeout=max(host.options.read_timeout, 120.0)).text
        return peer_of_outbound_spi(text, spi)


def peer_of_outbound_spi(show_crypto_ipsec_sa: str, spi: int) -> PeerAddress | None:
    """The `current_peer` of the SA block whose `current outbound spi` is `spi` (docs/domain.md
    §2.5); the address is parsed, never passed on as text.

    Raises:
        Nothing: no matching block, or a peer that is not an address, gives None.
    """
    peer_text = None
    for line in show_crypto_ipsec_sa.splitlines():
        peer = _CURRENT_PEER.match(line)
        if peer:
            peer_text = peer.group(1)
            continue
        current = _CURRENT_SPI.match(line)
        if current and peer_text and int(current.group(1), 16) == spi:
            try:
                return ip_address(peer_text)
            except ValueError:
                return None
    return None
