"""Diagnosis checks: what a captured invalid-SPI incident says, as a list of `Finding`s.

Each check is a pure function `DiagnosisInputs -> list[Finding]` over values already parsed
from the bundle (configs, SPI sets from `show crypto ipsec sa`, debug lines, QFP counters).
The facts behind them are Cisco 115801 (the seed note), 116005 and the config guide, as
summarised in docs/domain.md; bug IDs are worded as "matches the pattern of", never as a
verdict, because only their titles are public.

Roles: the *receiver* logged `%CRYPTO-4-RECVD_PKT_INV_SPI` (flow.dst is its address); the
*sender* (flow.src) keeps encrypting with an SPI the receiver does not know.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Mapping, Sequence

from collector.detect.events import Flow
from collector.cryptoconfig import (
    CryptoProfile,
    Evidence,
    Recovery,
    TunnelConfig,
    TunnelKind,
    classify_config,
)
from collector.diagnose.findings import EvidenceRef, Finding, Severity
from collector.nhrp import MGRE_KINDS, NhrpEntry, flow_mapping

# --------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class RouterSide:
    """What the bundle holds about one tunnel end. `None` means "not captured", which the
    checks treat differently from "captured and empty"."""

    name: str  # inventory name
    config_text: str | None = None  # show running-config
    config_file: str | None = None  # its bundle file name, for evidence
    profile: CryptoProfile | None = None  # classify_config(config_text); computed when None
    ipsec_sa_file: str | None = None
    outbound_spis: frozenset[int] | None = None  # `current outbound spi` values towards the peer
    inbound_spis: frozenset[int] | None = None  # `inbound esp sas: spi:` values from the peer
    debug_file: str | None = None  # None: no debug capture from this end
    # debug output as numbered lines (findings.lines_as_evidence); plain strings are numbered
    # here, 1-based, under debug_file
    debug_lines: Sequence[EvidenceRef | str] = ()
    qfp_file: str | None = None
    qfp_before: Mapping[str, int] | None = None  # counter name -> value, both QFP drop commands
    qfp_after: Mapping[str, int] | None = None
    software_version: str | None = None  # e.g. "15.1(4)M4", "03.09.01.S", "16.06.05"
    nhrp_file: str | None = None  # `show ip nhrp` / `show dmvpn` as captured (DMVPN routers)
    nhrp_entries: tuple[NhrpEntry, ...] | None = None  # its entries; None: not captured
    platform_family: str | None = None  # "IOS", "IOS-XE", "ASR1000" (case-insensitive)
    # Whether the flow's SAs protect GRE (proxy protocol 47), from either end's SA table
    # toward the other; None: no proxy seen. DMVPN's SAs always do, so False rules it out.
    flow_over_gre: bool | None = None
    # The IKE version of the other end's tunnel toward this one, when it has one known
    # version: a tunnel of the other version cannot be this flow's.
    peer_ike: str | None = None

    def __post_init__(self) -> None:
        # accept plain sets/lists from callers, keep immutable values inside
        for name in ("outbound_spis", "inbound_spis"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        label = self.debug_file or f"{self.name}: debug"
        object.__setattr__(self, "debug_lines", tuple(
            EvidenceRef(label, n, item) if isinstance(item, str) else item
            for n, item in enumerate(self.debug_lines, start=1)))
        if self.profile is None and self.config_text is not None:
            object.__setattr__(self, "profile", classify_config(self.config_text))

    @property
    def config_label(self) -> str:
        return self.config_file or f"{self.name}: show running-config"

    @property
    def ipsec_sa_label(self) -> str:
        return self.ipsec_sa_file or f"{self.name}: show crypto ipsec sa"

    @property
    def qfp_label(self) -> str:
        return self.qfp_file or f"{self.name}: QFP drop counters"

    @property
    def nhrp_label(self) -> str:
        return self.nhrp_file or f"{self.name}: show ip nhrp"


@dataclass(frozen=True)
class DiagnosisInputs:
    flow: Flow
    receiver: RouterSide
    sender: RouterSide
    occurrences: int  # RECVD_PKT_INV_SPI lines seen for this flow (rate-limited to 1/min by IOS)
    occurrence_times: tuple[datetime, ...] = ()
    log_file: str | None = None
    log_lines: tuple[EvidenceRef, ...] = ()  # the matching syslog lines, to cite
    nat_t: bool | None = None  # UDP 4500 encapsulation in use on this tunnel
    armed_before_repeat: bool | None = None  # debugs were running before the repeat (116005)
    rekey_near_event: bool = False  # an IPsec rekey happened close to the first message
    # the receiver's address as the sender knows it, when that is not destaddr: under NAT-T
    # the receiver logs its inside address, the sender only knows the public one
    sender_peer: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    @property
    def peer_of_sender(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The address the sender's tunnel, SAs and commands name the receiver by."""
        return self.sender_peer or self.flow.dst


# --------------------------------------------------------------------------------------------
# Small helpers


def _hex(spi: int) -> str:
    return f"0x{spi:08X}"


def _addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def tunnels_toward(
    profile: CryptoProfile, peer: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> tuple[tuple[TunnelConfig, ...], str]:
    """The router's tunnels that can carry traffic with `peer`, and how they were chosen."""
    named = tuple(t for t in profile.tunnels if peer in {_addr(p) for p in (*t.peers, *t.observed_peers)})
    if named:
        return named, f"tunnel(s) configured for peer {peer}"
    dynamic = tuple(t for t in profile.tunnels if not t.peers)
    if dynamic:
        return dynamic, f"no tunnel names peer {peer}; only the dynamic tunnel(s) can carry it"
    return profile.tunnels, f"no tunnel names peer {peer} (NAT or a hostname peer?); judging all tunnels"


def side_tunnels(side: RouterSide, peer: ipaddress.IPv4Address | ipaddress.IPv6Address
                 ) -> tuple[tuple[TunnelConfig, ...], str, tuple[EvidenceRef, ...]]:
    """The tunnels of `side` that carry traffic with `peer`, how they were chosen, and the
    lines that decided it. On DMVPN the answer is per flow (collector/nhrp.py): the one mGRE
    tunnel, typed by the NHRP mapping of this peer (static or dynamic), whatever the rest of
    the interface holds."""
    profile = side.profile
    if profile is None or not profile.tunnels:
        return (), "no IPsec tunnel known", ()
    mapping = (flow_mapping(profile, peer, side.nhrp_entries, over_gre=side.flow_over_gre)
               if side.flow_over_gre is not False else None)
    if mapping is None:
        tunnels, how = tunnels_toward(profile, peer)
        if side.flow_over_gre is False and any(t.kind in MGRE_KINDS for t in tunnels):
            tunnels = tuple(t for t in tunnels if t.kind not in MGRE_KINDS) or tunnels
            how += "; the flow's SAs do not carry GRE, so it is not on a DMVPN tunnel"
        other_ike = {"IKEv1": "IKEv2", "IKEv2": "IKEv1"}.get(side.peer_ike or "")
        if other_ike and len(tunnels) > 1 and any(t.ike_version == other_ike for t in tunnels):
            kept = tuple(t for t in tunnels if t.ike_version != other_ike)
            if kept:
                tunnels = kept
                how += f"; the other end speaks {side.peer_ike}, so the {other_ike} tunnel(s) are left out"
        return tunnels, how, ()
    refs = tuple(EvidenceRef(side.nhrp_label, n, text) for n, text in mapping.nhrp_lines)
    refs += _config_refs(side, mapping.config_evidence)
    return (mapping.tunnel,), f"DMVPN peer {peer} on {mapping.tunnel.name}: {mapping.how}", refs


def _config_refs(side: RouterSide, evidence: Iterable[Evidence | None], limit: int = 12) -> tuple[EvidenceRef, ...]:
    seen: dict[int, Evidence] = {}
    for e in evidence:
        if e is not None:
            seen.setdefault(e.line, e)
    return tuple(EvidenceRef(side.config_label, e.line, e.text) for _, e in sorted(seen.items())[:limit])


def _tunnel_list(tunnels: Iterable[TunnelConfig]) -> str:
    return "; ".join(f"{t.name} ({t.kind.value}, {t.ike_version})" for t in tunnels)


def _family(side: RouterSide) -> str | None:
    family = (side.platform_family or "").lower()
    version = (side.software_version or "").lower()
    if "asr1" in family or "asr1" in version:
        return "asr1000"
    if "xe" in family or "ios xe" in version or "ios-xe" in version or "x86_64_linux_iosd" in version:
        return "ios-xe"
    if "ios" in family:
        return "ios"
    return None


def _is_xe(side: RouterSide) -> bool:
    return _family(side) in ("asr1000", "ios-xe")


_XN_TRAIN = re.compile(r"12\.2\(33\)XN([A-Z])(\d*)")
_XE_DOTTED = re.compile(r"(?<![\d(])(\d{1,2})\.(\d{1,2})\.(\d{1,2})(?![\d(])")


def xe_release_before_2_3_2(version: str) -> bool | None:
    """True/False when `version` is recognisably an IOS XE release (dotted `02.03.01`, or the
    12.2(33)XN train where XNC2 = XE 2.3.2); None when it cannot tell."""
    if m := _XN_TRAIN.search(version):
        letter, number = m.group(1), int(m.group(2) or 0)
        return (letter, number) < ("C", 2)
    if m := _XE_DOTTED.search(version):
        return tuple(int(g) for g in m.groups()) < (2, 3, 2)
    return None


# --------------------------------------------------------------------------------------------
# Occurrence pattern (115801: one message near rekey is a transient; repeats mean out of sync)


def check_occurrences(inputs: DiagnosisInputs) -> list[Finding]:
    flow, n = inputs.flow, inputs.occurrences
    refs = inputs.log_lines[:5]
    what = f"{flow.src} -> {flow.dst}, SPI {flow.spi_hex}, prot {flow.prot}"
    if n >= 2:
        times = sorted(inputs.occurrence_times)
        span = f" between {times[0].isoformat()} and {times[-1].isoformat()}" if len(times) >= 2 else ""
        return [Finding(
            id="flow-repeating",
            severity=Severity.HIGH,
            title=f"Invalid SPI repeats for the same flow ({n} messages): SAs out of sync",
            detail=(f"%CRYPTO-4-RECVD_PKT_INV_SPI was logged {n} times for {what}{span}. IOS rate-limits "
                    "this message to one per minute, so the real drop count is higher (see QFP or "
                    "`#pkts invalid sa` counters). The same flow and SPI repeating means the peers' SAs are "
                    "out of sync: the traffic is black-holed until the SA expires on the sender or DPD acts "
                    "(Cisco 115801)."),
            evidence=refs,
            recommendation=("Compare the sender's current outbound SPI with the receiver's inbound SAs "
                            "(`show crypto ipsec sa peer X` on both ends) and find out why they drifted with "
                            "ISAKMP/IPsec debugs on both ends."),
            router=flow.router,
        )]
    if n == 1 and inputs.rekey_near_event:
        return [Finding(
            id="transient-at-rekey",
            severity=Severity.INFO,
            title="Single invalid-SPI message at rekey time: transient, no action needed",
            detail=(f"One message for {what}, close to an IPsec rekey. Cisco 115801: a single message for a "
                    "flow is normally a transient while one peer starts using the new SA before the other is "
                    "ready; it affects only a few packets."),
            evidence=refs,
            recommendation="No action. Investigate only if the same flow and SPI is logged again.",
            router=flow.router,
        )]
    if n == 1:
        return [Finding(
            id="single-occurrence",
            severity=Severity.LOW,
            title="Single invalid-SPI message so far",
            detail=(f"One message for {what}, with no rekey seen near it. One message alone does not show that "
                    "the SAs are out of sync; a repeat of the same flow and SPI would."),
            evidence=refs,
            recommendation="Keep watching the flow; have peer-conditional debugs armed on both ends before a repeat.",
            router=flow.router,
        )]
    return []


# --------------------------------------------------------------------------------------------
# SPI tables


def check_sa_sync(inputs: DiagnosisInputs) -> list[Finding]:
    flow, rx, tx = inputs.flow, inputs.receiver, inputs.sender
    spi = flow.spi
    out: list[Finding] = []
    tx_out = (tx.outbound_spis or frozenset()) - {0} if tx.outbound_spis is not None else None
    rx_in = rx.inbound_spis

    def spi_ref(side: RouterSide, label: str, spis: Iterable[int]) -> EvidenceRef:
        shown = ", ".join(_hex(s) for s in sorted(spis)) or "none"
        return EvidenceRef(side.ipsec_sa_label, None, f"{label}: {shown}")

    if tx_out is not None and rx_in is not None:
        refs = (spi_ref(tx, f"{tx.name} current outbound spi", tx_out),
                spi_ref(rx, f"{rx.name} inbound esp sas", rx_in))
        missing = sorted(tx_out - rx_in)
        if missing:
            key = spi if spi in missing else missing[0]
            logged = (" It is the SPI in the syslog message." if key == spi else
                      f" (The logged SPI {_hex(spi)} is no longer the sender's current outbound SPI.)")
            out.append(Finding(
                id="sa-out-of-sync",
                severity=Severity.HIGH,
                title=f"SAs out of sync, confirmed: {tx.name} encrypts with SPI {_hex(key)}, unknown to {rx.name}",
                detail=(f"{tx.name}'s current outbound SPI(s) {', '.join(_hex(s) for s in missing)} are missing "
                        f"from {rx.name}'s inbound SAs.{logged} Packets on that SA are dropped by {rx.name} "
                        "until the sender's SA expires or DPD/recovery tears it down."),
                evidence=refs,
                recommendation=(f"To restore traffic now, clear the stale SA on {tx.name} (e.g. `clear crypto sa "
                                f"peer {inputs.peer_of_sender}`) — only with operator approval. Keep the capture for the root "
                                "cause."),
                router=tx.name,
            ))
        elif not tx_out:
            out.append(Finding(
                id="sa-in-sync",
                severity=Severity.INFO,
                title=f"No stale SA left: {tx.name} has no outbound SA towards {rx.name} now",
                detail=(f"{tx.name}'s current outbound SPI is 0x0 (no phase 2 SA for the peer), so it no longer "
                        f"encrypts with {_hex(spi)}; the next packet triggers a new negotiation."),
                evidence=refs,
                router=tx.name,
            ))
        else:
            still = "" if spi in tx_out else f" {tx.name} no longer uses the logged SPI {_hex(spi)}."
            out.append(Finding(
                id="sa-in-sync",
                severity=Severity.INFO,
                title="SAs look in sync now",
                detail=(f"Every current outbound SPI of {tx.name} is among {rx.name}'s inbound SAs.{still} "
                        "The out-of-sync state has cleared (rekey, expiry, DPD or recovery) or was transient."),
                evidence=refs,
                router=rx.name,
            ))
    elif rx_in is not None:
        ref = (spi_ref(rx, f"{rx.name} inbound esp sas", rx_in),)
        if spi not in rx_in:
            out.append(Finding(
                id="sa-sync-unconfirmed",
                severity=Severity.MEDIUM,
                title=f"{rx.name} has no inbound SA with the logged SPI {_hex(spi)}",
                detail=(f"{rx.name}'s inbound SAs do not include {_hex(spi)}, consistent with out-of-sync SAs; "
                        f"{tx.name}'s outbound SPIs were not captured, so it is not confirmed that it still uses it."),
                evidence=ref,
                recommendation=f"Capture `show crypto ipsec sa peer {inputs.peer_of_sender}` on {tx.name}.",
                router=rx.name,
            ))
    elif tx_out is not None and spi in tx_out:
        out.append(Finding(
            id="sa-sync-unconfirmed",
            severity=Severity.MEDIUM,
            title=f"{tx.name} still encrypts with the logged SPI {_hex(spi)}",
            detail=(f"{_hex(spi)} is {tx.name}'s current outbound SPI; {rx.name}'s inbound SAs were not captured, "
                    "so the mismatch is likely but not confirmed."),
            evidence=(spi_ref(tx, f"{tx.name} current outbound spi", tx_out),),
            recommendation=f"Capture `show crypto ipsec sa peer {flow.src}` on {rx.name}.",
            router=tx.name,
        ))

    # The other direction: the receiver's outbound SAs against the sender's inbound ones.
    if rx.outbound_spis is not None and tx.inbound_spis is not None:
        reverse = sorted((rx.outbound_spis - {0}) - tx.inbound_spis)
        if reverse:
            out.append(Finding(
                id="sa-out-of-sync-reverse",
                severity=Severity.HIGH,
                title=f"Reverse direction out of sync too: {rx.name} encrypts with SPI {_hex(reverse[0])}, "
                      f"unknown to {tx.name}",
                detail=(f"{rx.name}'s current outbound SPI(s) {', '.join(_hex(s) for s in reverse)} are missing "
                        f"from {tx.name}'s inbound SAs, so traffic towards {tx.name} is dropped as well."),
                evidence=(spi_ref(rx, f"{rx.name} current outbound spi", rx.outbound_spis - {0}),
                          spi_ref(tx, f"{tx.name} inbound esp sas", tx.inbound_spis)),
                router=rx.name,
            ))
    return out


# --------------------------------------------------------------------------------------------
# Invalid SPI recovery (Cisco 115801's table, via classify.recovery_for)

_RECOVERY_ONLY = (
    "It only recovers from the out-of-sync state (the router opens an IKE SA to the sender to deliver "
    "the INVALID SPI notify); it does not address what made the SAs drift. For the root cause, capture "
    "ISAKMP and IPsec debugs on both tunnel ends. The feature is off by default because starting IKE on "
    "invalid SPIs is a DoS risk; IOS has a built-in limiter."
)


def check_recovery(inputs: DiagnosisInputs) -> list[Finding]:
    rx = inputs.receiver
    profile = rx.profile
    if profile is None or not profile.tunnels:
        return []
    tunnels, how, decided = side_tunnels(rx, inputs.flow.src)
    applies = [t for t in tunnels if t.recovery is Recovery.YES]
    cannot = [t for t in tunnels if t.recovery is not Recovery.YES]
    command = profile.invalid_spi_recovery
    out: list[Finding] = []
    reasons = "; ".join(f"{t.name}: {t.recovery_reason}" for t in cannot)
    # DMVPN: the verdict is this flow's (its peer's NHRP mapping), not the interface's
    scope = "this tunnel"
    if decided or any(t.kind in (TunnelKind.MGRE_STATIC_NHRP, TunnelKind.MGRE_DYNAMIC_NHRP) for t in tunnels):
        kinds = {t.kind for t in tunnels}
        scope = ("this flow (static NHRP mapping)" if kinds == {TunnelKind.MGRE_STATIC_NHRP}
                 else "this flow (dynamic NHRP mapping)")
    if command is None and applies:
        out.append(Finding(
            id="recovery-missing",
            severity=Severity.MEDIUM,
            title=(f"crypto isakmp invalid-spi-recovery is not configured on {rx.name}"
                   + (f"; it would apply to {scope}" if scope != "this tunnel" else "")),
            detail=(f"{how}: {_tunnel_list(applies)}. For these tunnel types Cisco 115801 says invalid SPI "
                    "recovery works: without it, a router that receives an unknown SPI and has no IKE SA with the "
                    "sender just drops the packets and cannot tell the sender."
                    + (f" Not covered: {reasons}." if cannot else "")),
            evidence=decided + _config_refs(rx, (e for t in applies for e in t.evidence)),
            recommendation=f"Add `crypto isakmp invalid-spi-recovery` (global configuration) on {rx.name}. "
                           + _RECOVERY_ONLY,
            router=rx.name,
        ))
    elif command is None and cannot:
        out.append(Finding(
            id="recovery-not-applicable",
            severity=Severity.INFO,
            title=f"Invalid SPI recovery would not help for {scope}",
            detail=f"{how}. {reasons}.",
            evidence=decided + _config_refs(rx, (e for t in cannot for e in t.evidence)),
            recommendation=("Rely on DPD on the sender to shorten the black hole; find the root cause with "
                            "debugs on both ends."),
            router=rx.name,
        ))
    if command is not None and cannot:
        out.append(Finding(
            id="recovery-cannot-help",
            severity=Severity.LOW,
            title=f"crypto isakmp invalid-spi-recovery is configured but cannot help {scope}",
            detail=(f"{how}. {reasons}. The command is present, but for this configuration type it does not "
                    "recover the SAs (Cisco 115801's table)."),
            evidence=decided + _config_refs(rx, [command, *(e for t in cannot for e in t.evidence)]),
            recommendation=("Do not count on it here: configure DPD on the sender and address the root cause "
                            "with debugs on both ends."),
            router=rx.name,
        ))
    if command is not None and applies:
        out.append(Finding(
            id="recovery-configured",
            severity=Severity.INFO,
            title=f"crypto isakmp invalid-spi-recovery is configured and applies to {scope}",
            detail=(f"{how}: {_tunnel_list(applies)}. The router should open an IKE SA to the sender and "
                    "notify it when it has none. " + _RECOVERY_ONLY),
            evidence=decided + _config_refs(rx, [command]),
            router=rx.name,
        ))
    return out


# --------------------------------------------------------------------------------------------
# DPD


def check_dpd(inputs: DiagnosisInputs) -> list[Finding]:
    out: list[Finding] = []
    for side, peer, role in ((inputs.sender, inputs.peer_of_sender, "sender"),
                             (inputs.receiver, inputs.flow.src, "receiver")):
        profile = side.profile
        if profile is None or not profile.tunnels:
            continue
        tunnels, how, _ = side_tunnels(side, peer)
        lacking = [t for t in tunnels if not t.dpd]
        if not lacking:
            continue
        versions = {t.ike_version for t in lacking}
        fixes = []
        if versions & {"IKEv1", "unknown"}:
            fixes.append("IKEv1: `crypto isakmp keepalive 10 3 periodic` (global), or ` keepalive 10 retry 3` "
                         "in the ISAKMP profile")
        if versions & {"IKEv2", "unknown"}:
            fixes.append("IKEv2: `crypto ikev2 dpd 10 3 on-demand` (global), or ` dpd 10 3 on-demand` in the "
                         "IKEv2 profile")
        gre = [t.gre_keepalive for t in lacking if t.gre_keepalive is not None]
        disabled = [e for t in lacking for e in t.dpd_evidence]
        notes = ""
        if gre:
            notes += (" The ` keepalive` under the GRE tunnel works at GRE level; it is not IKE DPD and does not "
                      "tear down stale IPsec SAs.")
        if disabled:
            notes += " The ISAKMP profile turns keepalives off (` no keepalive`)."
        why = ("As the sender it keeps encrypting with the stale SA; DPD lets it notice that the peer no longer "
               "answers and tear the SAs down, which ends the black hole." if role == "sender" else
               "DPD here protects the reverse direction (traffic this router sends).")
        out.append(Finding(
            id="dpd-missing",
            severity=Severity.MEDIUM if role == "sender" else Severity.LOW,
            title=f"No IKE DPD/keepalive on {side.name} ({role}) for {_tunnel_list(lacking)}",
            detail=(f"{how}. Cisco 115801: with out-of-sync SAs traffic stays black-holed until the SA expires on "
                    f"the sending device or DPD is enabled. {why}{notes}"),
            evidence=_config_refs(side, [*(e for t in lacking for e in t.evidence), *gre, *disabled]),
            recommendation="Enable DPD — " + "; ".join(fixes) + ".",
            router=side.name,
        ))
    return out


# --------------------------------------------------------------------------------------------
# Debug evidence

_NO_ISAKMP_SA = re.compile(
    r"ignoring request to send delete notify \(no ISAKMP sa\)"
    r"(?:\s+src\s+(?P<src>[0-9A-Fa-f:.]+)\s+dst\s+(?P<dst>[0-9A-Fa-f:.]+))?"
    r"(?:\s+for SPI\s+0x(?P<spi>[0-9A-Fa-f]+))?"
)


def check_no_ike_sa_for_notify(inputs: DiagnosisInputs) -> list[Finding]:
    flow, rx = inputs.flow, inputs.receiver
    related: list[EvidenceRef] = []
    other: list[EvidenceRef] = []
    for side in (inputs.receiver, inputs.sender):
        for ref in side.debug_lines:
            m = _NO_ISAKMP_SA.search(ref.text)
            if not m:
                continue
            spi = int(m.group("spi"), 16) if m.group("spi") else None
            dst = _addr(m.group("dst")) if m.group("dst") else None
            if spi == flow.spi or (spi is None and dst == flow.src) or (side is rx and spi is None and dst is None):
                related.append(ref)
            else:
                other.append(ref)
    if related:
        tunnels = side_tunnels(rx, flow.src)[0]
        recovery = rx.profile.invalid_spi_recovery if rx.profile else None
        if any(t.recovery is Recovery.YES for t in tunnels) and recovery is None:
            advice = ("Enable `crypto isakmp invalid-spi-recovery` on the receiver: it exists for exactly this case "
                      "(unknown SPI, no IKE SA) and makes the router open an IKE SA to deliver the notify.")
        elif any(t.recovery is Recovery.YES for t in tunnels):
            advice = ("Invalid SPI recovery is configured: after this line the router should start a new IKE "
                      "negotiation with the sender — check the debug for it and why it failed (reachability, "
                      "IKE policy, the recovery rate limiter).")
        elif tunnels:
            what = ("this flow (its peer is a dynamic NHRP mapping)"
                    if any(t.kind is TunnelKind.MGRE_DYNAMIC_NHRP for t in tunnels) else "this tunnel type")
            advice = (f"Invalid SPI recovery cannot help {what}; enable DPD on the sender so it detects "
                      "the dead SA, and find the root cause with debugs on both ends.")
        else:
            advice = "Enable DPD on the sender; find the root cause with debugs on both ends."
        return [Finding(
            id="no-ike-sa-for-notify",
            severity=Severity.HIGH,
            title="No IKE SA to tell the sender: recovery could not happen",
            detail=(f"The debug shows `ignoring request to send delete notify (no ISAKMP sa)` for this flow: "
                    f"{rx.name} had no IKE SA with {flow.src}, so it could not send the notify that makes the "
                    f"sender drop SPI {flow.spi_hex}. IOS sends that notify only over an existing IKE SA, so the "
                    "sender kept using the stale SA."),
            evidence=tuple(related[:6]),
            recommendation=advice,
            router=rx.name,
        )]
    if other:
        return [Finding(
            id="no-ike-sa-for-notify-other",
            severity=Severity.LOW,
            title="No IKE SA to carry a delete notify (another SA)",
            detail=("The debug shows `ignoring request to send delete notify (no ISAKMP sa)` for an SPI or peer "
                    f"other than this flow's ({flow.spi_hex}, {flow.src})."),
            evidence=tuple(other[:6]),
        )]
    return []


# --------------------------------------------------------------------------------------------
# QFP counters (IOS-XE / ASR1000)

INVALID_SPI_COUNTERS = (
    "IN_US_V4_PKT_SA_NOT_FOUND_SPI",  # ipsec datapath drops, type 4
    "IN_US_V6_PKT_SA_NOT_FOUND_SPI",  # type 12
    "IN_TRANS_V4_IPSEC_PKT_NOT_FOUND_SPI",  # type 7
    "IpsecInput",  # global QFP drop stats: where 115801 says invalid-SPI drops land
)


def qfp_growth(before: Mapping[str, int] | None, after: Mapping[str, int] | None) -> dict[str, int | None]:
    """Counter name -> growth (None when there is no baseline). Drop commands print only non-zero
    rows, so a counter missing from `before` was 0; a counter that went down was cleared, and
    is left out."""
    growth: dict[str, int | None] = {}
    if after is None:
        return growth
    for name in INVALID_SPI_COUNTERS:
        if name not in after:
            continue
        if before is None:
            growth[name] = None
            continue
        delta = after[name] - before.get(name, 0)
        if delta >= 0:
            growth[name] = delta
    return growth


def check_qfp_drops(inputs: DiagnosisInputs) -> list[Finding]:
    out: list[Finding] = []
    for side, role in ((inputs.receiver, "receiver"), (inputs.sender, "sender")):
        growth = qfp_growth(side.qfp_before, side.qfp_after)
        after = side.qfp_after or {}
        grew = {k: v for k, v in growth.items() if v}
        unbased = {k: after[k] for k, v in growth.items() if v is None and after[k] > 0}
        if grew:
            refs = tuple(EvidenceRef(side.qfp_label, None,
                                     f"{k}: {(side.qfp_before or {}).get(k, 0)} -> {after[k]} (+{v})")
                         for k, v in grew.items())
            counts = ", ".join(f"{k} +{v}" for k, v in grew.items())
            if role == "sender":
                out.append(Finding(
                    id="qfp-invalid-spi-drops",
                    severity=Severity.HIGH,
                    title=f"{side.name} (the sender) also drops packets on unknown SPIs",
                    detail=(f"QFP counters grew on {side.name}: {counts}. Packets from {inputs.receiver.name} "
                            "are being dropped too: the reverse direction is out of sync as well."),
                    evidence=refs,
                    router=side.name,
                ))
            elif inputs.occurrences > 0:
                out.append(Finding(
                    id="qfp-invalid-spi-drops",
                    severity=Severity.MEDIUM,
                    title=f"{side.name} keeps dropping packets on unknown SPIs ({counts})",
                    detail=(f"QFP invalid-SPI drop counters grew on {side.name} ({counts}) while "
                            f"{inputs.occurrences} RECVD_PKT_INV_SPI message(s) were logged. The message is "
                            "rate-limited to one per minute; the counters show the real loss."),
                    evidence=refs,
                    router=side.name,
                ))
            else:
                out.append(Finding(
                    id="qfp-drops-unlogged",
                    severity=Severity.HIGH,
                    title=f"{side.name} drops packets on unknown SPIs but logged no RECVD_PKT_INV_SPI",
                    detail=(f"QFP invalid-SPI drop counters grew on {side.name} ({counts}) with no syslog "
                            "message for the flow. The image may not log the message (ASR1000 before IOS XE "
                            "2.3.2; with NAT-T before the CSCsq59183 fix), or logging is rate-limited or filtered."),
                    evidence=refs,
                    recommendation=("Watch the QFP counters rather than the log on this router; check "
                                    "`show logging` for rate-limited/dropped messages."),
                    router=side.name,
                ))
        elif unbased:
            out.append(Finding(
                id="qfp-invalid-spi-drops",
                severity=Severity.LOW,
                title=f"{side.name} has invalid-SPI drops in its QFP counters (no baseline)",
                detail=("Counters are non-zero but there is no earlier reading, so it is unknown whether they "
                        "are still growing: " + ", ".join(f"{k} = {v}" for k, v in unbased.items()) + "."),
                evidence=tuple(EvidenceRef(side.qfp_label, None, f"{k}: {v}") for k, v in unbased.items()),
                router=side.name,
            ))
    return out


# --------------------------------------------------------------------------------------------
# Known-bug hints (115801's list; only their titles are public, so only "matches the pattern of")

_BUG_NOTE = "Only the bug title is public; confirm in Cisco's bug search against the running release."


def check_spi_ff(inputs: DiagnosisInputs) -> list[Finding]:
    spi = inputs.flow.spi
    if spi >> 24 != 0xFF:
        return []
    rx_in = inputs.receiver.inbound_spis
    if rx_in is not None and spi in rx_in:
        extra, severity = (f" {inputs.receiver.name} does list {_hex(spi)} among its inbound SAs, yet drops it as "
                           "invalid — which is what the bug describes.", Severity.MEDIUM)
    elif rx_in is not None:
        extra, severity = (f" {inputs.receiver.name} does not list it among its inbound SAs, which also fits an "
                           "ordinary out-of-sync case.", Severity.LOW)
    else:
        extra, severity = "", Severity.LOW
    return [Finding(
        id="bug-hint-cscvp16730",
        severity=severity,
        title=f"SPI {_hex(spi)} begins with 0xFF: matches the pattern of CSCvp16730",
        detail=("CSCvp16730: inbound ESP packets whose SPI starts with 0xFF are dropped with an invalid SPI "
                f"error.{extra} {_BUG_NOTE}"),
        evidence=inputs.log_lines[:1],
        router=inputs.receiver.name,
    )]


def check_nat_t_logging(inputs: DiagnosisInputs) -> list[Finding]:
    if not inputs.nat_t or inputs.occurrences > 0:
        return []
    rx = inputs.receiver
    dropping = any(qfp_growth(rx.qfp_before, rx.qfp_after).values())
    stale = (inputs.sender.outbound_spis is not None and rx.inbound_spis is not None
             and bool((inputs.sender.outbound_spis - {0}) - rx.inbound_spis))
    if not (dropping or stale):
        return []
    return [Finding(
        id="bug-hint-cscsq59183",
        severity=Severity.LOW,
        title="NAT-T tunnel dropping on unknown SPIs without a log message: matches the pattern of CSCsq59183",
        detail=("The tunnel uses NAT-T (UDP 4500) and the evidence shows invalid-SPI drops, but no "
                "RECVD_PKT_INV_SPI was logged. With NAT-T, IPsec did not report this message until CSCsq59183 "
                f"was fixed (Cisco 115801). {_BUG_NOTE}"),
        recommendation="Do not rely on the syslog message on this router; watch the drop counters.",
        router=rx.name,
    )]


def check_asr_logging(inputs: DiagnosisInputs) -> list[Finding]:
    out = []
    for side in (inputs.receiver, inputs.sender):
        if _family(side) != "asr1000" or not side.software_version:
            continue
        if xe_release_before_2_3_2(side.software_version):
            out.append(Finding(
                id="hint-asr-before-xe-2-3-2",
                severity=Severity.LOW,
                title=f"{side.name} runs an ASR1000 release before IOS XE 2.3.2: it does not log RECVD_PKT_INV_SPI",
                detail=("On ASR1000 the %CRYPTO-4-RECVD_PKT_INV_SPI message was not implemented before IOS XE "
                        "2.3.2 (12.2(33)XNC2) (Cisco 115801). The drops still land in the QFP counters "
                        "(IpsecInput, IN_US_V4_PKT_SA_NOT_FOUND_SPI)."),
                evidence=(EvidenceRef(f"{side.name}: show version", None, side.software_version),),
                recommendation="Watch the QFP drop counters on this router instead of the log.",
                router=side.name,
            ))
    return out


def check_rekey_bugs(inputs: DiagnosisInputs) -> list[Finding]:
    if not inputs.rekey_near_event or inputs.occurrences < 2:
        return []
    families = {_family(inputs.receiver), _family(inputs.sender)}
    bugs = ["CSCsl68327 (packet loss during rekey)"]
    asr = ["CSCtr14840 (ASR: packets dropped during phase 2 rekey under certain conditions)",
           "CSCty30063 (ASR uses the new SPI before quick mode finishes)"]
    if "asr1000" in families:
        bugs += asr
    elif None in families:
        bugs += [b + " — ASR1000 only; platform not known" for b in asr]
    return [Finding(
        id="bug-hint-rekey-loss",
        severity=Severity.LOW,
        title="Invalid SPI began at a rekey and repeated: matches the pattern of rekey-loss bugs",
        detail=("Cisco 115801: a message at rekey is normally a transient, but bugs have turned it into a real "
                "problem. This incident started near a rekey and repeated, which matches the pattern of: "
                + "; ".join(bugs) + f". {_BUG_NOTE}"),
        evidence=inputs.log_lines[:2],
        recommendation="Check the debugs around the rekey on both ends (which side installed the new SA first).",
        router=inputs.flow.router,
    )]


_SA_DEST = re.compile(r"sa_dest=\s*([0-9A-Fa-f:.]+)")
_SA_SPI = re.compile(r"sa_spi=\s*0x([0-9A-Fa-f]+)")
_INSTALLED = re.compile(r"installed IPSEC SA \(SPI:\s*0x([0-9A-Fa-f]+)\)")
_ISAKMP_DEBUG = re.compile(r"\bISAKMP\b")


def receiver_created_spi(lines: Iterable[EvidenceRef], spi: int, own: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[EvidenceRef]:
    """Debug lines where the receiver creates or installs an inbound SA with `spi`
    (`IPSEC(create_sa)` block with sa_dest = its own address, or `Successfully installed IPSEC SA`)."""
    hits: list[EvidenceRef] = []
    dest = None
    for ref in lines:
        if m := _SA_DEST.search(ref.text):
            dest = _addr(m.group(1))
        if (m := _SA_SPI.search(ref.text)) and int(m.group(1), 16) == spi and dest in (None, own):
            hits.append(ref)
        elif (m := _INSTALLED.search(ref.text)) and int(m.group(1), 16) == spi:
            hits.append(ref)
    return hits


def check_new_spi_deleted(inputs: DiagnosisInputs) -> list[Finding]:
    rx, flow = inputs.receiver, inputs.flow
    if not (_is_xe(rx) and inputs.rekey_near_event):
        return []
    tunnels = side_tunnels(rx, flow.src)[0]
    isakmp = any(t.ike_version == "IKEv1" for t in tunnels) or (
        not tunnels and any(_ISAKMP_DEBUG.search(r.text) for r in rx.debug_lines))
    if not isakmp:
        return []
    created = receiver_created_spi(rx.debug_lines, flow.spi, flow.dst)
    if not created:
        return []
    return [Finding(
        id="bug-hint-cscvn31824",
        severity=Severity.MEDIUM,
        title=f"Receiver's own new SPI {flow.spi_hex} reported invalid after a rekey: matches the pattern of CSCvn31824",
        detail=(f"{rx.name} (IOS-XE, ISAKMP) created/installed the inbound SA {flow.spi_hex} during a rekey, and "
                "then logged packets on that very SPI as invalid. CSCvn31824: IOS-XE ISAKMP deletes the new SPI "
                "when a packet on the new SPI arrives before installation completes. " + _BUG_NOTE),
        evidence=tuple([*created[:4], *inputs.log_lines[:1]]),
        recommendation="Compare the debug timestamps of the SA install and the first invalid-SPI message.",
        router=rx.name,
    )]


_INVALID_SYNTAX = re.compile(r"INVALID_SYNTAX")
_INVALID_SPI_NOTIFY = re.compile(r"INVALID_SPI")
_SPI_SIZE_0 = re.compile(r"spi\s*size\s*[:=]?\s*0\b", re.IGNORECASE)


def check_ikev2_invalid_syntax(inputs: DiagnosisInputs) -> list[Finding]:
    out = []
    for side, peer in ((inputs.receiver, inputs.flow.src), (inputs.sender, inputs.peer_of_sender)):
        tunnels = side_tunnels(side, peer)[0]
        ikev2 = any(t.ike_version == "IKEv2" for t in tunnels) or any("IKEv2" in r.text for r in side.debug_lines)
        if not ikev2:
            continue
        syntax = [r for r in side.debug_lines if _INVALID_SYNTAX.search(r.text)]
        if not syntax:
            continue
        related = [r for r in side.debug_lines if _INVALID_SPI_NOTIFY.search(r.text) or _SPI_SIZE_0.search(r.text)]
        seen = (" An INVALID_SPI notify / SPI size 0 also appears in the debug." if related else
                " No INVALID_SPI notify is visible in the capture, so the match is weak.")
        out.append(Finding(
            id="bug-hint-cscvd40554",
            severity=Severity.LOW,
            title=f"IKEv2 INVALID_SYNTAX on {side.name}: matches the pattern of CSCvd40554",
            detail=("CSCvd40554: IOS cannot parse an IKEv2 INVALID_SPI notify with SPI size 0 and answers "
                    f"INVALID_SYNTAX.{seen} {_BUG_NOTE}"),
            evidence=tuple(sorted([*syntax[:3], *related[:3]], key=lambda r: (r.file, r.line or 0))),
            router=side.name,
        ))
    return out


# --------------------------------------------------------------------------------------------
# Capture quality (116005)


def check_capture_timing(inputs: DiagnosisInputs) -> list[Finding]:
    out: list[Finding] = []
    if inputs.armed_before_repeat is False:
        out.append(Finding(
            id="capture-aftermath-only",
            severity=Severity.MEDIUM,
            title="Debugs were armed after the repeat: the capture shows the aftermath, not the cause",
            detail=("Cisco 116005: what matters is what happened before the message fired. These debugs were "
                    "switched on only after the flow repeated, so they record the recovery/renegotiation, not "
                    "how the peers lost sync."),
            recommendation=("Keep peer-conditional ISAKMP/IPsec debugs armed on both ends from the first "
                            "occurrence of a flow, and collect on the repeat."),
        ))
    missing = [s.name for s in (inputs.receiver, inputs.sender) if s.debug_file is None]
    if missing:
        out.append(Finding(
            id="debug-not-both-ends",
            severity=Severity.LOW,
            title=f"No debug capture from {' and '.join(missing)}",
            detail=("Cisco 115801: to understand the root cause, ISAKMP and IPsec debugs are needed on both "
                    "tunnel ends; this bundle lacks them from " + " and ".join(missing) + "."),
            recommendation="Arm `debug crypto condition peer ipv4 <peer>` plus ISAKMP/IPsec debugs on both ends.",
        ))
    return out


# --------------------------------------------------------------------------------------------

CHECKS: tuple[Callable[[DiagnosisInputs], list[Finding]], ...] = (
    check_occurrences,
    check_sa_sync,
    check_no_ike_sa_for_notify,
    check_recovery,
    check_dpd,
    check_qfp_drops,
    check_spi_ff,
    check_nat_t_logging,
    check_asr_logging,
    check_rekey_bugs,
    check_new_spi_deleted,
    check_ikev2_invalid_syntax,
    check_capture_timing,
)


def run_checks(inputs: DiagnosisInputs) -> list[Finding]:
    """All checks, worst first (stable within a severity, in check order)."""
    findings = [f for check in CHECKS for f in check(inputs)]
    return sorted(findings, key=lambda f: -f.severity.rank)
