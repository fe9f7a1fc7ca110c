"""Crypto debug state (`debug crypto ...`, peer conditions) and the debug lines it produces.

Output shapes: `show debugging` per docs/domain.md §2.9, `show crypto debug-condition`
per §2.10, debug lines per §2.1/§2.2/§2.14. Which prefix family a line uses depends on
the image: IOS-XE `ISAKMP: (1001):`, IOS 15 `ISAKMP:(1001):`, IOS 12.4 `ISAKMP (0:1001):`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("isakmp", "ikev2", "ikev2-error", "ipsec")
_LABEL = {"isakmp": "ISAKMP", "ikev2": "IKEv2", "ikev2-error": "IKEv2", "ipsec": "IPSEC"}


def banner(kind: str, on: bool) -> str:
    """What `debug crypto KIND` answers.

    ISAKMP/IPsec: `Crypto ISAKMP debugging is on` (real/debug/xe_showdebug_crypto_ce2.txt
    shows the same words in `show debugging`). IKEv2: `IKEv2 default debugging is on`,
    `debug crypto ikev2 error` -> `IKEv2 error debugging is on` (real/debug/
    xe16_ikev2_debug_excerpt.txt). The `off` forms are reconstructed from the `on` ones.
    """
    state = "on" if on else "off"
    if kind == "ikev2":
        return f"IKEv2 default debugging is {state}"
    if kind == "ikev2-error":
        return f"IKEv2 error debugging is {state}"
    return f"Crypto {_LABEL[kind]} debugging is {state}"


@dataclass
class DebugState:
    flags: set[str] = field(default_factory=set)
    peers: list[str] = field(default_factory=list)

    @property
    def armed(self) -> bool:
        return bool(self.flags)

    def on(self, kind: str) -> str:
        self.flags.add(kind)
        return banner(kind, True) + "\n"

    def off(self, kind: str) -> str:
        self.flags.discard(kind)
        if kind == "ikev2":  # `no debug crypto ikev2` also ends `debug crypto ikev2 error`
            self.flags.discard("ikev2-error")
        return banner(kind, False) + "\n"

    def all_off(self) -> str:
        """`undebug all`: debug flags only; conditions stay (docs/domain.md §2.10)."""
        self.flags.clear()
        return "All possible debugging has been turned off\n"

    def add_peer(self, peer: str) -> str:
        if peer not in self.peers:
            self.peers.append(peer)
        return ""

    def remove_peer(self, peer: str) -> str:
        if peer not in self.peers:
            return "% Condition not found\n"
        self.peers.remove(peer)
        return ""

    def reset(self) -> str:
        self.peers.clear()
        return ""

    def wants(self, kind: str, peer: str, text: str = "") -> bool:
        """Would a `kind` debug line about `peer` be printed? (unconditioned = every peer)

        `debug crypto ikev2 error` prints only the `IKEv2-ERROR:` lines.
        """
        wanted = kind in self.flags or (
            kind == "ikev2" and "ikev2-error" in self.flags and text.startswith("IKEv2-ERROR")
        )
        return wanted and (not self.peers or peer in self.peers)

    def show_debugging(self, *, xe: bool) -> str:
        lines: list[str] = []
        if xe:
            lines += [
                "IOSXE Conditional Debug Configs:",
                "",
                "Conditional Debug Global State: Stop",
                "",
                "IOSXE Packet Tracing Configs:",
                "",
                "",
                "",
                "Packet Infra debugs:",
                "",
                "Ip Address                                               Port",
                "------------------------------------------------------|----------",
                "",
            ]
        if self.flags:
            # heading: `Cryptographic Subsystem:` on IOS-XE (real/debug/xe_showdebug_crypto_ce2.txt),
            # `Cryptographic subsystems:` on IOS (real/debug/ios_showdebug_crypto_subsystems.txt)
            lines.append("Cryptographic Subsystem:" if xe else "Cryptographic subsystems:")
            for kind in KINDS:
                if kind in self.flags and not (kind == "ikev2-error" and "ikev2" in self.flags):
                    lines.append("  " + banner(kind, True))
            if self.peers:
                # reconstructed: no public capture shows how conditions appear here
                lines.append("  Crypto conditional debugging is on (peer filters set)")
            lines.append("")
        return "\n".join(lines) + ("\n" if lines else "")

    def show_condition(self) -> str:
        # reconstructed: no public capture of `show crypto debug-condition` exists
        # (docs/real-routers.md); the agent must not rest a safety check on these words alone
        lines = [
            f"Crypto conditional debug currently is turned {'ON' if self.peers else 'OFF'}",
            "IKE debug context unmatched flag:OFF",
            "IPsec debug context unmatched flag:OFF",
            "Crypto Engine debug context unmatched flag:OFF",
        ]
        if self.peers:
            lines += ["", "IKE peer IP address filters:", *self.peers]
        return "\n".join(lines) + "\n"

    def snapshot(self) -> dict[str, list[str]]:
        return {"flags": sorted(self.flags), "peers": list(self.peers)}


# -- debug line text ------------------------------------------------------------------------
# Source of each line (real capture, domain.md section, or "reconstructed"): docs/lab-fidelity.md.
# Each function returns [(kind, message)], kind being the debug that prints it; a message
# may hold continuation lines ("\n"), printed without a timestamp as IOS does.


def _node(rng_value: int, family: str) -> str:
    """ISAKMP message IDs: unsigned on 15.x/XE, signed 32-bit on 12.4 (docs/domain.md §2.14)."""
    if family == "ios124" and rng_value >= 2**31:
        return str(rng_value - 2**32)
    return str(rng_value)


def isakmp(family: str, conn: int, text: str, tag: str = "") -> str:
    """`ISAKMP: (1001):text` (XE), `ISAKMP:(1001):text` (15.x), `ISAKMP (0:1001): text` (12.4)."""
    label = "ISAKMP" + (f"-{tag}" if tag and family == "xe" else "")
    if family == "xe":
        return f"{label}: ({conn}):{text}"
    if family == "ios124":
        return f"ISAKMP (0:{conn}): {text}"
    if tag == "PAK":
        return f"ISAKMP ({conn}): {text}"
    return f"ISAKMP:({conn}):{text}"


def ikev2(session: int, text: str, error: bool = False) -> str:
    return f"IKEv2{'-ERROR' if error else ''}:(SESSION ID = {session},SA ID = 1):{text}"


def spi_text(spi: int) -> str:
    return f"0x{spi:08X}({spi})"


def no_ike_sa_lines(family: str, ike_version: int, local: str, peer: str, spi: int) -> list[tuple[str, str]]:
    """The receiver of a stale SPI with no IKE SA to carry a notify (docs/domain.md §2.1)."""
    if ike_version == 2:
        return [
            (
                "ikev2",
                f"IKEv2-ERROR:(SESSION ID = 0,SA ID = 0):: No IKE SA with {peer}; "
                f"ignoring request to send INVALID_SPI notify for SPI 0x{spi:08X}",
            )
        ]
    text = f"ignoring request to send delete notify (no ISAKMP sa) src {local} dst {peer} for SPI 0x{spi:08X}"
    if family == "xe":
        return [("isakmp", f"ISAKMP-ERROR: (0):{text}")]
    return [("isakmp", f"ISAKMP: {text}")]


def rekey_lines(
    family: str,
    ike_version: int,
    *,
    initiator: bool,
    conn: int,
    session: int,
    node: int,
    local: str,
    peer: str,
    port: int,
    interface: str,
    spi_in: int,
    spi_out: int,
    old_spi_in: int | None,
) -> list[tuple[str, str]]:
    """Quick mode (IKEv1) or CREATE_CHILD_SA (IKEv2) rekey, from one end's point of view."""
    create = (
        "ipsec",
        f"IPSEC(create_sa): sa created,\n  (sa) sa_dest= {local}, sa_proto= 50,\n    sa_spi= {spi_text(spi_in)},",
    )
    enable = ("ipsec", "IPSEC(key_engine_enable_outbound): rec'd enable notify from ISAKMP")
    if ike_version == 2:
        out = []
        if initiator:
            out.append(("ikev2", ikev2(session, "Sending CREATE_CHILD_SA exchange REQUEST")))
            out.append(
                (
                    "ikev2",
                    f"IKEv2:(SESSION ID = {session},SA ID = 1):Received Packet [From {peer}:{port}/To {local}:{port}/VRF i0:f0]\n"
                    f"Initiator SPI : {node:016X} - Responder SPI : {spi_in:016X} Message id: 4\n"
                    "IKEv2 CREATE_CHILD_SA Exchange RESPONSE\nPayload contents:\n SA N  TSi TSr",
                )
            )
        else:
            out.append(
                (
                    "ikev2",
                    f"IKEv2:(SESSION ID = {session},SA ID = 1):Received Packet [From {peer}:{port}/To {local}:{port}/VRF i0:f0]\n"
                    f"Initiator SPI : {node:016X} - Responder SPI : {spi_in:016X} Message id: 4\n"
                    "IKEv2 CREATE_CHILD_SA Exchange REQUEST\nPayload contents:\n SA N  TSi TSr",
                )
            )
            out.append(("ikev2", ikev2(session, "Sending CREATE_CHILD_SA exchange RESPONSE")))
        out.append(create)
        out.append(("ikev2", ikev2(session, f"Installed IPsec SA [SPI: 0x{spi_in:08X}] on {interface}")))
        if old_spi_in is not None and initiator:
            out.append(("ikev2", ikev2(session, f"Sending DELETE INFO message for IPsec SA [SPI: 0x{old_spi_in:08X}]")))
        return out
    n = _node(node, family)
    if initiator:
        out = [
            ("isakmp", isakmp(family, conn, f"beginning Quick Mode exchange, M-ID of {n}")),
            (
                "isakmp",
                isakmp(family, conn, f"sending packet to {peer} my_port {port} peer_port {port} (I) QM_IDLE", "PAK"),
            ),
            ("isakmp", isakmp(family, conn, f"Node {n}, Input = IKE_MESG_INTERNAL, IKE_INIT_QM")),
            (
                "isakmp",
                isakmp(
                    family, conn, f"received packet from {peer} dport {port} sport {port} Global (I) QM_IDLE", "PAK"
                ),
            ),
            create,
            ("isakmp", isakmp(family, conn, f"Successfully installed IPSEC SA (SPI:0x{spi_in:08X}) on {interface}")),
            ("isakmp", isakmp(family, conn, f'deleting node {n} error FALSE reason "No Error"')),
            enable,
            ("ipsec", f"IPSEC(update_current_outbound_sa): updated peer {peer} current outbound sa to SPI {spi_out:X}"),
        ]
    else:
        out = [
            (
                "isakmp",
                isakmp(
                    family, conn, f"received packet from {peer} dport {port} sport {port} Global (R) QM_IDLE", "PAK"
                ),
            ),
            ("isakmp", isakmp(family, conn, f"set new node {n} to QM_IDLE")),
            ("ipsec", "IPSEC(validate_proposal_request): proposal part #1"),
            ("isakmp", isakmp(family, conn, "QM Responder gets spi")),
            ("isakmp", isakmp(family, conn, "Old State = IKE_QM_READY  New State = IKE_QM_SPI_STARVE")),
            (
                "ipsec",
                "IPSEC(get_old_outbound_sa_for_peer): No outbound SA found for peer 7F9E85D63050"
                if old_spi_in is None
                else f"IPSEC(get_old_outbound_sa_for_peer): Found outbound SA for peer {peer}",
            ),
            create,
            ("isakmp", isakmp(family, conn, f"Successfully installed IPSEC SA (SPI:0x{spi_in:08X}) on {interface}")),
            ("isakmp", isakmp(family, conn, f'deleting node {n} error FALSE reason "QM done (await)"')),
            enable,
        ]
    return out


def renegotiate_lines(
    family: str,
    ike_version: int,
    *,
    initiator: bool,
    conn: int,
    session: int,
    local: str,
    peer: str,
    port: int,
    interface: str,
    spi_in: int,
) -> list[tuple[str, str]]:
    """A fresh IKE SA + first IPsec SA (after recovery, DPD, clear or reboot)."""
    if ike_version == 2:
        first = "Sending Packet" if initiator else "Received Packet"
        return [
            (
                "ikev2",
                f"IKEv2:(SESSION ID = {session},SA ID = 1):{first} [From {local if initiator else peer}:{port}/"
                f"To {peer if initiator else local}:{port}/VRF i0:f0]\nIKEv2 IKE_SA_INIT Exchange "
                f"{'REQUEST' if initiator else 'RESPONSE'}\nPayload contents:\n SA KE N VID VID VID VID NOTIFY(NAT_DETECTION_SOURCE_IP) NOTIFY(NAT_DETECTION_DESTINATION_IP)",
            ),
            ("ikev2", ikev2(session, "Processing IKE_AUTH message")),
            ("ikev2", ikev2(session, f"Session with IKE ID PAIR ({local}, {peer}) is UP")),
            (
                "ipsec",
                f"IPSEC(create_sa): sa created,\n  (sa) sa_dest= {local}, sa_proto= 50,\n    sa_spi= {spi_text(spi_in)},",
            ),
        ]
    out = []
    if initiator:
        out += [
            ("isakmp", isakmp(family, 0, f"Created a peer struct for {peer}, peer port {port}")),
            ("isakmp", isakmp(family, 0, "beginning Main Mode exchange")),
            (
                "isakmp",
                isakmp(family, 0, f"sending packet to {peer} my_port {port} peer_port {port} (I) MM_NO_STATE", "PAK"),
            ),
        ]
    else:
        out += [
            (
                "isakmp",
                isakmp(family, 0, f"received packet from {peer} dport {port} sport {port} Global (N) NEW SA", "PAK"),
            ),
            ("isakmp", isakmp(family, 0, f"Created a peer struct for {peer}, peer port {port}")),
        ]
    out += [
        (
            "isakmp",
            isakmp(
                family,
                conn,
                "Old State = IKE_I_MM6  New State = IKE_P1_COMPLETE"
                if initiator
                else "Old State = IKE_R_MM5  New State = IKE_P1_COMPLETE",
            ),
        ),
        ("isakmp", isakmp(family, conn, "processing NOTIFY INITIAL_CONTACT protocol 1")),
        (
            "ipsec",
            f"IPSEC(create_sa): sa created,\n  (sa) sa_dest= {local}, sa_proto= 50,\n    sa_spi= {spi_text(spi_in)},",
        ),
        ("isakmp", isakmp(family, conn, f"Successfully installed IPSEC SA (SPI:0x{spi_in:08X}) on {interface}")),
    ]
    return out


def recovery_lines(family: str, local: str, peer: str, port: int, spi: int) -> list[tuple[str, str]]:
    """invalid-spi-recovery: the receiver opens an IKE SA to deliver the INVALID_SPI notify."""
    return [
        ("isakmp", isakmp(family, 0, "SA request profile is (NULL)")),
        ("isakmp", isakmp(family, 0, f"Created a peer struct for {peer}, peer port {port}")),
        ("isakmp", isakmp(family, 0, "Locking peer struct 0x7F3A5C2E1B40, refcount 1 for isakmp_initiator")),
        (
            "isakmp",
            isakmp(family, 0, f"sending INVALID_SPI notify to {peer} for SPI 0x{spi:08X} (invalid-spi-recovery)"),
        ),
        ("isakmp", isakmp(family, 0, "beginning Main Mode exchange")),
        (
            "isakmp",
            isakmp(family, 0, f"sending packet to {peer} my_port {port} peer_port {port} (I) MM_NO_STATE", "PAK"),
        ),
    ]


def sender_chatter_lines(
    family: str,
    ike_version: int,
    *,
    conn: int,
    session: int,
    peer: str,
    port: int,
    spi_out: int,
    remaining: int,
    dpd: bool,
    seq: int,
) -> list[tuple[str, str]]:
    """What a sender with debugs armed prints about its (stale) SA, a few times a lab minute."""
    out: list[tuple[str, str]] = []
    if ike_version == 2:
        if dpd:
            out.append(("ikev2", ikev2(session, "Sending DPD/liveness query")))
            out.append(("ikev2", ikev2(session, "Retransmitting packet")))
        else:
            out.append(("ikev2", ikev2(session, "Check for existing active SA")))
    else:
        if dpd:
            out.append(("isakmp", isakmp(family, conn, f"DPD/R_U_THERE sent to {peer} seq {seq}")))
            out.append(
                (
                    "isakmp",
                    isakmp(
                        family, conn, f"sending packet to {peer} my_port {port} peer_port {port} (I) QM_IDLE", "PAK"
                    ),
                )
            )
        else:
            out.append(("isakmp", isakmp(family, conn, f"purging node {2_000_000_000 + seq * 7919}")))
    out.append(("ipsec", "IPSEC(key_engine): got a queue event with 1 KMI message(s)"))
    out.append(("ipsec", f"IPSEC(sa_aging): outbound SA {spi_text(spi_out)} to {peer}: {remaining} sec left"))
    return out


def dpd_teardown_lines(family: str, ike_version: int, *, conn: int, session: int, peer: str) -> list[tuple[str, str]]:
    if ike_version == 2:
        return [
            ("ikev2", ikev2(session, "Sending DPD/liveness query")),
            (
                "ikev2",
                ikev2(
                    session,
                    "Retransmitting packet",
                ),
            ),
            ("ikev2", ikev2(session, f"Maximum number of retransmissions reached, peer {peer} is dead", error=True)),
            ("ikev2", ikev2(session, "Sending DELETE INFO message for IKEv2 SA")),
            ("ipsec", f"IPSEC(key_engine_delete_sas): delete all SAs shared with peer {peer}"),
        ]
    return [
        ("isakmp", isakmp(family, conn, f"DPD/R_U_THERE sent to {peer} seq 1")),
        ("isakmp", isakmp(family, conn, f"peer {peer} not responding!")),
        ("isakmp", isakmp(family, conn, f'deleting SA reason "DPD failure" state (I) QM_IDLE (peer {peer})')),
        ("ipsec", "IPSEC(key_engine_delete_sas): rec'd delete notify from ISAKMP"),
        ("ipsec", f"IPSEC(key_engine_delete_sas): delete all SAs shared with peer {peer}"),
    ]
