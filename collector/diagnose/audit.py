"""Fleet audit: which tunnels could use `crypto isakmp invalid-spi-recovery`, and do they?

A read-only pass: `show running-config`, `show crypto session`, `show version` and
`show ip nhrp` on each router (collected by collector/audit.py through `collect()`), each tunnel classified
(collector/cryptoconfig.py, Cisco 115801's table), then one row per router and tunnel and a
summary such as "12 of 40 tunnels could use invalid-spi-recovery and do not". A DMVPN
(mGRE) interface is listed per mapping (collector/nhrp.py): one row for its statically
mapped peers (the hub, or the other hub of a dual-hub pair: recovery applies) and one for
the peers it learns from NHRP (spokes registering, phase-3 shortcuts: it does not). Rendered as a text table, JSON, or a self-contained
HTML page (no external assets, no scripts, every text escaped).

Everything here is a pure function of collected outputs: nothing talks to a router.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector.command_results import CollectionRun, CommandResult, HostOutcome
from collector.cryptoconfig import CryptoProfile, Recovery, TunnelKind, classify_config, refine_with_session
from collector.diagnose.incident import read_version
from collector.diagnose.report import RECOVERY_LABEL
from collector.nhrp import NhrpEntry, parse_nhrp, per_mapping

AUDIT_SCHEMA = "collector.audit/1"

CONFIG_COMMAND = "show running-config"
SESSION_COMMAND = "show crypto session"
VERSION_COMMAND = "show version"
NHRP_COMMAND = "show ip nhrp"  # empty on a router without NHRP
AUDIT_COMMANDS = (CONFIG_COMMAND, SESSION_COMMAND, VERSION_COMMAND, NHRP_COMMAND)  # read-only, nothing else is sent

# A command result is usable when it ran; "parse" only means no template (running-config has none).
_USABLE_KINDS = (None, "parse")


class Verdict:
    """Per tunnel: what the operator should make of invalid-spi-recovery here."""

    MISSING = "could-use"  # the table says yes, the command is absent
    CONFIGURED = "configured"  # the table says yes, the command is present
    NO_EFFECT = "configured-no-effect"  # present, but the table says no / N/A for this tunnel
    NOT_APPLICABLE = "not-applicable"  # the table says no / N/A, and it is absent
    UNKNOWN = "unknown-ikev2"  # IKEv2 tunnel, configured or not: ISAKMP command, effect not confirmed


VERDICT_TEXT = {
    Verdict.MISSING: "could use it, not configured",
    Verdict.CONFIGURED: "configured, applies",
    Verdict.NO_EFFECT: "configured, cannot help here",
    Verdict.NOT_APPLICABLE: "does not apply",
    Verdict.UNKNOWN: "IKEv2: effect not confirmed",
}


@dataclass(frozen=True, slots=True)
class TunnelAudit:
    router: str
    name: str  # interface, "map NAME SEQ" or EzVPN client name
    kind: TunnelKind
    ike_version: str
    peers: tuple[str, ...]  # configured
    observed_peers: tuple[str, ...]  # from show crypto session
    interfaces: tuple[str, ...]
    recovery: Recovery  # Cisco 115801's table (IKEv2: unknown)
    recovery_reason: str
    recovery_configured: bool  # `crypto isakmp invalid-spi-recovery` on this router
    dpd: bool

    @property
    def verdict(self) -> str:
        if self.recovery is Recovery.YES:
            return Verdict.CONFIGURED if self.recovery_configured else Verdict.MISSING
        if self.recovery is Recovery.UNKNOWN_IKEV2:
            return Verdict.UNKNOWN
        return Verdict.NO_EFFECT if self.recovery_configured else Verdict.NOT_APPLICABLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "router": self.router, "tunnel": self.name, "kind": self.kind.value, "ike_version": self.ike_version,
            "peers": list(self.peers), "observed_peers": list(self.observed_peers),
            "interfaces": list(self.interfaces), "recovery": self.recovery.value,
            "recovery_label": RECOVERY_LABEL[self.recovery], "recovery_reason": self.recovery_reason,
            "recovery_configured": self.recovery_configured, "dpd": self.dpd, "verdict": self.verdict,
        }


@dataclass(frozen=True)
class RouterAudit:
    host: str
    platform: str
    read: bool  # the running-config was read: the router is audited
    error: str | None = None  # why not (or a partial failure: session/version not read)
    config_hostname: str | None = None
    software_version: str | None = None
    platform_family: str | None = None
    recovery_configured: bool | None = None
    tunnels: tuple[TunnelAudit, ...] = ()
    notes: tuple[str, ...] = ()  # classifier notes, commands that failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host, "platform": self.platform, "read": self.read, "error": self.error,
            "config_hostname": self.config_hostname, "software_version": self.software_version,
            "platform_family": self.platform_family, "recovery_configured": self.recovery_configured,
            "tunnels": [t.to_dict() for t in self.tunnels], "notes": list(self.notes),
        }


@dataclass(frozen=True)
class AuditSummary:
    routers: int
    routers_read: int
    routers_failed: tuple[str, ...]
    tunnels: int
    recovery_applies: int  # table says yes
    recovery_missing: int  # ... and not configured: "could use it and do not"
    recovery_configured: int  # ... and configured
    recovery_no: int
    recovery_not_applicable: int
    recovery_unknown_ikev2: int
    configured_no_effect: int  # configured where the table says it cannot help
    without_dpd: int
    by_kind: Mapping[str, int] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        return (f"{self.recovery_missing} of {self.tunnels} tunnels could use invalid-spi-recovery and do not"
                + (f" ({len(self.routers_failed)} of {self.routers} routers not read)" if self.routers_failed else ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "headline": self.headline, "routers": self.routers, "routers_read": self.routers_read,
            "routers_failed": list(self.routers_failed), "tunnels": self.tunnels,
            "recovery_applies": self.recovery_applies, "recovery_missing": self.recovery_missing,
            "recovery_configured": self.recovery_configured, "recovery_no": self.recovery_no,
            "recovery_not_applicable": self.recovery_not_applicable,
            "recovery_unknown_ikev2": self.recovery_unknown_ikev2,
            "configured_no_effect": self.configured_no_effect, "without_dpd": self.without_dpd,
            "by_kind": dict(self.by_kind),
        }


@dataclass(frozen=True)
class FleetAudit:
    routers: tuple[RouterAudit, ...]
    started: datetime
    ended: datetime
    inventory: str | None = None  # where the hosts came from, for the report header

    @property
    def tunnels(self) -> tuple[TunnelAudit, ...]:
        return tuple(t for r in self.routers for t in r.tunnels)

    @property
    def failed(self) -> tuple[RouterAudit, ...]:
        return tuple(r for r in self.routers if not r.read)

    @property
    def summary(self) -> AuditSummary:
        return summarise(self.routers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": AUDIT_SCHEMA,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat(),
            "inventory": self.inventory,
            "commands": list(AUDIT_COMMANDS),
            "summary": self.summary.to_dict(),
            "routers": [r.to_dict() for r in self.routers],
        }


# --------------------------------------------------------------------------------------------
# Pure: outcome -> audit


def _result(outcome: HostOutcome, command: str) -> CommandResult | None:
    return next((r for r in outcome.results if r.command == command), None)


def _usable(result: CommandResult | None) -> bool:
    return result is not None and result.text is not None and result.error_kind in _USABLE_KINDS


def tunnels_of(router: str, profile: CryptoProfile,
               nhrp: tuple[NhrpEntry, ...] | None = None) -> tuple[TunnelAudit, ...]:
    """One row per tunnel; an mGRE tunnel gives one row per NHRP mapping kind it holds."""
    configured = profile.invalid_spi_recovery is not None
    return tuple(
        TunnelAudit(router=router, name=t.name, kind=t.kind, ike_version=t.ike_version, peers=t.peers,
                    observed_peers=t.observed_peers, interfaces=t.interfaces, recovery=t.recovery,
                    recovery_reason=t.recovery_reason, recovery_configured=configured, dpd=t.dpd)
        for tunnel in profile.tunnels for t in per_mapping(tunnel, nhrp)
    )


def audit_outcome(outcome: HostOutcome, platform: str = "") -> RouterAudit:
    """One router's audit from its collected outputs (never raises on device text)."""
    config = _result(outcome, CONFIG_COMMAND)
    if not _usable(config):
        reason = outcome.error or (config.error if config is not None else None) or "show running-config not read"
        return RouterAudit(outcome.host, platform, read=False, error=reason)
    assert config is not None and config.text is not None
    notes: list[str] = []
    profile = classify_config(config.text)
    session = _result(outcome, SESSION_COMMAND)
    if _usable(session):
        assert session is not None and session.text is not None
        profile = refine_with_session(profile, session.text)
    else:
        notes.append(f"{SESSION_COMMAND} not read ({session.error if session else 'not run'}): "
                     "IKE versions and peers come from the config only")
    version_result = _result(outcome, VERSION_COMMAND)
    version = family = None
    if _usable(version_result):
        assert version_result is not None and version_result.text is not None
        version, family = read_version(version_result.text, version_result.parsed)
    else:
        notes.append(f"{VERSION_COMMAND} not read ({version_result.error if version_result else 'not run'})")
    nhrp_result = _result(outcome, NHRP_COMMAND)
    nhrp = None
    if _usable(nhrp_result) and not (nhrp_result.text or "").lstrip().startswith("%"):
        nhrp = parse_nhrp(nhrp_result.text or "")
    elif any(t.kind in (TunnelKind.MGRE_STATIC_NHRP, TunnelKind.MGRE_DYNAMIC_NHRP) for t in profile.tunnels):
        notes.append(f"{NHRP_COMMAND} not read ({nhrp_result.error if nhrp_result else 'not run'}): "
                     "DMVPN peers learned from NHRP come from show crypto session only")
    notes.extend(profile.notes)
    return RouterAudit(
        host=outcome.host,
        platform=platform,
        read=True,
        error=outcome.error,  # e.g. the session dropped after the config was read
        config_hostname=profile.hostname,
        software_version=version,
        platform_family=family,
        recovery_configured=profile.invalid_spi_recovery is not None,
        tunnels=tunnels_of(outcome.host, profile, nhrp),
        notes=tuple(notes),
    )


def summarise(routers: Sequence[RouterAudit]) -> AuditSummary:
    tunnels = [t for r in routers for t in r.tunnels]
    verdicts = Counter(t.verdict for t in tunnels)
    recovery = Counter(t.recovery for t in tunnels)
    return AuditSummary(
        routers=len(routers),
        routers_read=sum(r.read for r in routers),
        routers_failed=tuple(r.host for r in routers if not r.read),
        tunnels=len(tunnels),
        recovery_applies=recovery[Recovery.YES],
        recovery_missing=verdicts[Verdict.MISSING],
        recovery_configured=verdicts[Verdict.CONFIGURED],
        recovery_no=recovery[Recovery.NO],
        recovery_not_applicable=recovery[Recovery.NOT_APPLICABLE],
        recovery_unknown_ikev2=recovery[Recovery.UNKNOWN_IKEV2],
        configured_no_effect=verdicts[Verdict.NO_EFFECT],
        without_dpd=sum(not t.dpd for t in tunnels),
        by_kind=dict(sorted(Counter(t.kind.value for t in tunnels).items())),
    )


def audit_run(run: CollectionRun, platforms: Mapping[str, str], inventory: str | None = None) -> FleetAudit:
    """The fleet audit of a collection of `AUDIT_COMMANDS` (`platforms`: router -> platform)."""
    routers = tuple(audit_outcome(o, platforms.get(o.host, "")) for o in run.outcomes)
    return FleetAudit(routers, run.started, run.ended or run.started, inventory)


# --------------------------------------------------------------------------------------------
# Rendering

_COLUMNS = ("router", "tunnel", "type", "IKE", "peers", "recovery (115801)", "configured", "DPD", "verdict")


def _peers(t: TunnelAudit) -> str:
    if t.peers:
        return ", ".join(t.peers)
    if t.observed_peers:
        return "seen: " + ", ".join(t.observed_peers)
    return "(dynamic)"


def _row(t: TunnelAudit) -> tuple[str, ...]:
    return (t.router, t.name, t.kind.value, t.ike_version, _peers(t), RECOVERY_LABEL[t.recovery],
            "yes" if t.recovery_configured else "no", "yes" if t.dpd else "no", VERDICT_TEXT[t.verdict])


def _printable(text: str) -> str:
    # device text on a terminal: no control characters (a config can hold anything)
    return "".join(c if c.isprintable() else "?" for c in text)


def render_text(audit: FleetAudit) -> str:
    rows = [tuple(_printable(c) for c in _row(t)) for t in audit.tunnels]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(_COLUMNS)]

    def line(cells: Iterable[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(_COLUMNS), line("-" * w for w in widths)]
    out += [line(r) for r in rows]
    if not rows:
        out.append("(no IPsec tunnel found)")
    out.append("")
    out += _summary_lines(audit.summary)
    for r in audit.routers:
        if not r.read:
            out.append(f"not read: {_printable(r.host)}: {_printable(r.error or 'unknown error')}")
        elif r.error:
            out.append(f"partly read: {_printable(r.host)}: {_printable(r.error)}")
        for note in r.notes:
            out.append(f"note: {_printable(r.host)}: {_printable(note)}")
    return "\n".join(out) + "\n"


def _summary_lines(s: AuditSummary) -> list[str]:
    return [
        s.headline + ".",
        f"routers: {s.routers_read} of {s.routers} read; tunnels: {s.tunnels}",
        f"invalid-spi-recovery per Cisco 115801: applies to {s.recovery_applies} "
        f"({s.recovery_configured} configured, {s.recovery_missing} not), does not apply to {s.recovery_no}, "
        f"N/A (EzVPN client) {s.recovery_not_applicable}, unknown (IKEv2) {s.recovery_unknown_ikev2}",
        f"configured where it cannot help: {s.configured_no_effect}; tunnels without IKE DPD: {s.without_dpd}",
    ]


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1b1b1b}
h1{font-size:1.4em}table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr.could-use td{background:#fff1d6}tr.configured-no-effect td{background:#f6e9ff}
tr.configured td.verdict{color:#13652f}td.verdict{font-weight:600}.failed{color:#a30000}
.headline{font-size:1.15em;font-weight:600}.muted{color:#666}code{font-size:.95em}
"""


def render_html(audit: FleetAudit) -> str:
    """A self-contained page: inline CSS, no scripts, no external references; every text escaped."""
    e = lambda text: html.escape(str(text), quote=True)  # noqa: E731 - local shorthand
    s = audit.summary
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # the page loads nothing and runs nothing, even if a value were to slip through
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        "<title>IPsec invalid-SPI recovery audit</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>IPsec invalid-SPI recovery readiness</h1>",
        f'<p class="headline">{e(s.headline)}.</p>',
        f'<p class="muted">{e(audit.started.isoformat())} to {e(audit.ended.isoformat())}'
        + (f"; inventory {e(audit.inventory)}" if audit.inventory else "")
        + f"; commands: {', '.join('<code>' + e(c) + '</code>' for c in AUDIT_COMMANDS)} (read-only).</p>",
        "<ul>" + "".join(f"<li>{e(line)}</li>" for line in _summary_lines(s)[1:]) + "</ul>",
        "<table><thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in _COLUMNS) + "</tr></thead><tbody>",
    ]
    for t in audit.tunnels:
        cells = _row(t)
        tds = "".join(f"<td>{e(c)}</td>" for c in cells[:-1])
        parts.append(f'<tr class="{e(t.verdict)}" title="{e(t.recovery_reason)}">{tds}'
                     f'<td class="verdict">{e(cells[-1])}</td></tr>')
    if not audit.tunnels:
        parts.append(f'<tr><td colspan="{len(_COLUMNS)}">no IPsec tunnel found</td></tr>')
    parts.append("</tbody></table>")
    parts.append("<h2>Routers</h2><table><thead><tr><th>router</th><th>platform</th><th>software</th>"
                 "<th>invalid-spi-recovery</th><th>tunnels</th><th>status</th></tr></thead><tbody>")
    for r in audit.routers:
        status = ("read" if r.read and not r.error else f"partly read: {r.error}" if r.read
                  else f"not read: {r.error}")
        rec = "—" if r.recovery_configured is None else ("configured" if r.recovery_configured else "not configured")
        parts.append(f"<tr><td>{e(r.host)}</td><td>{e(r.platform_family or r.platform)}</td>"
                     f"<td>{e(r.software_version or '—')}</td><td>{e(rec)}</td><td>{len(r.tunnels)}</td>"
                     f'<td class="{"" if r.read else "failed"}">{e(status)}</td></tr>')
    parts.append("</tbody></table>")
    notes = [(r.host, n) for r in audit.routers for n in r.notes]
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(h)}: {e(n)}</li>" for h, n in notes) + "</ul>")
    parts.append('<p class="muted">Recovery column: Cisco 115801\'s table (static crypto map, GRE P2P with '
                 "tunnel protection, mGRE with static NHRP and sVTI: yes; dynamic crypto map, mGRE with dynamic "
                 "NHRP and dynamic VTI: no; EzVPN client: N/A). A DMVPN interface has one row per mapping: its "
                 "statically mapped peers and the peers it learns from NHRP. "
                 "<code>crypto isakmp invalid-spi-recovery</code> is "
                 "an ISAKMP command: its effect on IKEv2 tunnels is not confirmed. It only recovers from the "
                 "out-of-sync state; the root cause needs debugs on both tunnel ends.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
