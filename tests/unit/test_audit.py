"""Fleet audit, pure parts: outcomes -> per-tunnel rows, the summary, text/JSON/HTML, CLI errors."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.command_results import CommandResult, HostOutcome
from collector.diagnose.audit import (
    AUDIT_COMMANDS,
    FleetAudit,
    RouterAudit,
    TunnelAudit,
    Verdict,
    audit_outcome,
    render_html,
    render_text,
    summarise,
)
from collector.cryptoconfig import Recovery, TunnelKind
from collector.cli.diagnose import audit_cmd

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
T1 = datetime(2024, 5, 1, 8, 1, tzinfo=timezone.utc)

VERSION_XE = ("Cisco IOS XE Software, Version 16.06.05\nCisco IOS Software [Everest], ISR Software "
              "(X86_64_LINUX_IOSD-UNIVERSALK9-M), Version 16.6.5, RELEASE SOFTWARE (fc3)\n")


def result(host: str, command: str, raw: str | None, error: str | None = None, kind: str | None = None) -> CommandResult:
    return CommandResult(host, command, raw, T0, T0 + timedelta(seconds=0.1), error=error, error_kind=kind)


def outcome(host: str, config: str | None, *, session: str | None = "", version: str | None = VERSION_XE,
            config_error: tuple[str, str] | None = None, error: str | None = None) -> HostOutcome:
    results = []
    if config is not None or config_error is not None:
        err, kind = config_error or ("parse: no template for 'show running-config' on platform 'cisco_ios'", "parse")
        results.append(result(host, "show running-config", config, err, kind))
    if session is not None:
        results.append(result(host, "show crypto session", session))
    if version is not None:
        results.append(result(host, "show version", version))
    return HostOutcome(host, tuple(results), error, "connect-failed" if error else None)


def cfg(name: str) -> str:
    return (CONFIGS / name).read_text()


# Cisco 115801's table, as the seed note prints it, one fixture per configuration type.
SEED_TABLE = [
    ("static_map.cfg", TunnelKind.STATIC_CRYPTO_MAP, "yes"),
    ("dynamic_map.cfg", TunnelKind.DYNAMIC_CRYPTO_MAP, "no"),
    ("gre_p2p.cfg", TunnelKind.GRE_P2P_TUNNEL_PROTECTION, "yes"),
    ("mgre_static_spoke.cfg", TunnelKind.MGRE_STATIC_NHRP, "yes"),
    ("mgre_dynamic_hub.cfg", TunnelKind.MGRE_DYNAMIC_NHRP, "no"),
    ("svti.cfg", TunnelKind.SVTI, "yes"),
    ("ezvpn_client.cfg", TunnelKind.EZVPN_CLIENT, "N/A"),
]


@pytest.mark.parametrize("fixture, kind, label", SEED_TABLE)
def test_each_configuration_type_maps_to_the_seed_table(fixture, kind, label):
    audit = audit_outcome(outcome("r1", cfg(fixture)), "cisco_ios")
    assert audit.read and audit.error is None
    [tunnel] = audit.tunnels
    assert tunnel.kind is kind
    assert tunnel.to_dict()["recovery_label"] == label


def test_not_configured_where_it_applies_is_could_use():
    [tunnel] = audit_outcome(outcome("r1", cfg("static_map.cfg"))).tunnels
    assert (tunnel.recovery_configured, tunnel.verdict) == (False, Verdict.MISSING)


def test_mixed_router_with_recovery_configured():
    audit = audit_outcome(outcome("r1", cfg("mixed_router.cfg")))
    assert audit.recovery_configured is True
    verdicts = {(t.name, t.verdict) for t in audit.tunnels}
    assert ("map WAN-MAP 10", Verdict.CONFIGURED) in verdicts
    assert ("map WAN-MAP 65535", Verdict.NO_EFFECT) in verdicts
    assert ("Tunnel9", Verdict.UNKNOWN) in verdicts  # IKEv2 sVTI: unknown whether configured or not
    assert any("UNUSED" in n for n in audit.notes)  # the classifier's note travels with the router


def test_show_crypto_session_refines_the_ike_version():
    config = ("hostname R1\ncrypto ipsec profile P\n set transform-set TS\ninterface Tunnel0\n"
              " tunnel source GigabitEthernet0/0\n tunnel destination 198.51.100.2\n"
              " tunnel protection ipsec profile P\n")
    session = ("Interface: Tunnel0\nSession status: UP-ACTIVE\nPeer: 198.51.100.2 port 500\n"
               "  IKEv2 SA: local 198.51.100.1/500 remote 198.51.100.2/500 Active\n")
    [alone] = audit_outcome(outcome("r1", config, session="")).tunnels
    [refined] = audit_outcome(outcome("r1", config, session=session)).tunnels
    assert (alone.ike_version, alone.recovery) == ("unknown", Recovery.YES)
    assert (refined.ike_version, refined.recovery, refined.verdict) == ("IKEv2", Recovery.UNKNOWN_IKEV2, Verdict.UNKNOWN)
    assert refined.observed_peers == ("198.51.100.2",)


def test_version_and_family():
    audit = audit_outcome(outcome("r1", cfg("svti.cfg")))
    assert (audit.software_version, audit.platform_family) == ("16.06.05", "IOS-XE")


def test_router_not_read():
    dead = audit_outcome(outcome("r1", None, session=None, version=None, error="connection refused"))
    assert (dead.read, dead.error, dead.tunnels) == (False, "connection refused", ())
    refused = audit_outcome(outcome("r2", "% Invalid input detected at '^' marker.\n",
                                    config_error=("router refused 'show running-config'", "invalid-input")))
    assert not refused.read and "refused" in refused.error


def test_missing_session_and_version_are_notes_not_failures():
    audit = audit_outcome(HostOutcome("r1", (
        result("r1", "show running-config", cfg("svti.cfg"), "parse: no template", "parse"),
        result("r1", "show crypto session", "% Invalid input", "router refused", "invalid-input"),
    )))
    assert audit.read and audit.tunnels
    assert any("show crypto session not read" in n for n in audit.notes)
    assert any("show version not read" in n for n in audit.notes)


def test_audit_commands_are_read_only():
    assert all(c.split()[0] == "show" for c in AUDIT_COMMANDS)


# --------------------------------------------------------------------------------------------
# Summary and rendering


def fleet() -> FleetAudit:
    routers = [audit_outcome(outcome(f"r{i}", cfg(name)), "cisco_ios") for i, (name, _, _) in enumerate(SEED_TABLE)]
    routers.append(audit_outcome(outcome("r-mixed", cfg("mixed_router.cfg"))))
    routers.append(audit_outcome(outcome("r-dead", None, session=None, version=None, error="auth failed")))
    return FleetAudit(tuple(routers), T0, T1, "inventory.yaml")


def test_summary_counts_and_headline():
    s = fleet().summary
    # seed fixtures: static, gre, mgre-static, svti apply and lack the command; mixed: 3 apply, configured
    assert (s.tunnels, s.recovery_applies, s.recovery_missing, s.recovery_configured) == (12, 7, 4, 3)
    assert (s.recovery_no, s.recovery_not_applicable, s.recovery_unknown_ikev2) == (3, 1, 1)
    assert s.configured_no_effect == 1
    assert s.routers_failed == ("r-dead",) and (s.routers, s.routers_read) == (9, 8)
    assert s.headline == "4 of 12 tunnels could use invalid-spi-recovery and do not (1 of 9 routers not read)"
    assert s.by_kind["static-crypto-map"] == 3


def test_summary_of_nothing():
    s = summarise([])
    assert s.headline == "0 of 0 tunnels could use invalid-spi-recovery and do not"


def test_text_table_has_one_row_per_tunnel_and_the_summary():
    audit = fleet()
    text = render_text(audit)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["router", "tunnel", "type"]
    assert sum(1 for line in lines if line.startswith(("r0 ", "r1 ", "r2 ", "r3 ", "r4 ", "r5 ", "r6 ", "r-mixed"))) == 12
    assert "4 of 12 tunnels could use invalid-spi-recovery and do not" in text
    assert "not read: r-dead: auth failed" in text


def test_json_is_plain_data():
    data = fleet().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["schema"] == "collector.audit/1"
    assert data["summary"]["recovery_missing"] == 4
    r0 = data["routers"][0]
    assert r0["tunnels"][0]["kind"] == "static-crypto-map" and r0["tunnels"][0]["verdict"] == "could-use"


def hostile_audit() -> FleetAudit:
    evil = "<script>alert(1)</script>\x1b[31m"
    tunnel = TunnelAudit(router=evil, name=f'map "{evil}" 10', kind=TunnelKind.STATIC_CRYPTO_MAP,
                         ike_version="IKEv1", peers=("10.0.0.1",), observed_peers=(), interfaces=("Gi0/0",),
                         recovery=Recovery.YES, recovery_reason=f"reason {evil}", recovery_configured=False, dpd=True)
    router = RouterAudit(host=evil, platform="cisco_ios", read=True, tunnels=(tunnel,), notes=(f"note {evil}",))
    return FleetAudit((router,), T0, T1, "inv.yaml")


def test_html_is_self_contained_and_escapes_device_text():
    page = render_html(hostile_audit())
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;" in page  # quotes escaped too (attribute values)
    assert not re.search(r"(?i)\b(src|href)\s*=|https?://|@import|url\(", page)
    assert "default-src 'none'" in page
    assert "1 of 1 tunnels could use invalid-spi-recovery and do not" in page


def test_text_has_no_control_characters():
    text = render_text(hostile_audit())
    assert "\x1b" not in text


# --------------------------------------------------------------------------------------------
# CLI: user errors are one line, exit 2 (no router is contacted)


INVENTORY = """hosts:
  r1: {hostname: 127.0.0.1, port: 1, platform: cisco_ios, username: u, password: p, groups: [g]}
groups:
  g: {}
"""


@pytest.mark.parametrize("args, message", [
    (["-i", "{tmp}/missing.yaml"], "missing.yaml"),
    (["-i", "{inv}", "--hosts", "nope"], "unknown host: nope"),
    (["-i", "{inv}", "--group", "nope"], "unknown group: nope"),
    (["-i", "{inv}", "--out", "{tmp}"], "is a directory"),
])
def test_audit_user_errors(tmp_path, args, message):
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(INVENTORY)
    argv = [a.format(tmp=tmp_path, inv=inventory) for a in args]
    result = CliRunner().invoke(audit_cmd, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
