"""`collector audit` and the incident report end to end: real SSH to the lab's routers.

The lab model is the oracle: it knows each tunnel end's configuration type, IKE version and
whether the router has `crypto isakmp invalid-spi-recovery`, and carries its own copy of
Cisco 115801's table (collector.lab.topology.RECOVERY_APPLIES).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import datetime, timezone
from ipaddress import ip_address
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.collect import collect_host
from collector.detect.events import Flow
from collector.detect.logline import parse_invalid_spi
from collector.cryptoconfig import TunnelKind
from collector.cli.diagnose import audit_cmd, report_cmd
from collector.diagnose.report_files import default_report_paths
from collector.diagnose.incident import diagnose_capture
from collector.hostkeys import KnownHosts
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from collector.lab.topology import RECOVERY_APPLIES
from collector.parsing import default_registry
from collector.evidence import CaptureResult, RouterCapture, write_incident_bundle
from collector.clocks import clock_offset
from collector.sessions import SessionPool

pytestmark = pytest.mark.e2e

# The lab's names for configuration types -> the classifier's. The EzVPN server side is a
# dynamic crypto map (it answers clients that connect), which is how the lab configures it.
LAB_KIND = {
    "static-crypto-map": TunnelKind.STATIC_CRYPTO_MAP,
    "dynamic-crypto-map": TunnelKind.DYNAMIC_CRYPTO_MAP,
    "gre-p2p": TunnelKind.GRE_P2P_TUNNEL_PROTECTION,
    "mgre-static-nhrp": TunnelKind.MGRE_STATIC_NHRP,
    "mgre-dynamic-nhrp": TunnelKind.MGRE_DYNAMIC_NHRP,
    "svti": TunnelKind.SVTI,
    "dvti": TunnelKind.DYNAMIC_VTI,
    "ezvpn-client": TunnelKind.EZVPN_CLIENT,
    "ezvpn-server": TunnelKind.DYNAMIC_CRYPTO_MAP,
}


def expected_label(config_type: str, ike_version: int) -> str:
    applies = RECOVERY_APPLIES[config_type]
    if applies is None:
        return "N/A"
    if ike_version == 2:
        return "unknown (IKEv2)"
    return "yes" if applies else "no"


def tunnel_for(router: dict, peer: str, kind: str) -> dict:
    """The audited tunnel of `router` that carries traffic with `peer`: a configured peer
    first, else one where show crypto session or the NHRP cache saw it. A dual-hub pair
    names each other twice (their GRE link and the static NHRP map of their DMVPN
    interface): then the row of the expected kind."""
    named = [t for t in router["tunnels"] if peer in t["peers"]]
    if len(named) > 1:
        named = [t for t in named if t["kind"] == kind]
    seen = [t for t in router["tunnels"] if not t["peers"] and peer in t["observed_peers"]]
    found = named or seen
    assert len(found) == 1, (router["host"], peer, router["tunnels"])
    return found[0]


@pytest.fixture(scope="module")
def lab10(tmp_path_factory):
    # 10 routers: 2 hubs and 8 spokes, one spoke per tunnel slot, so every configuration type
    # of the seed's table is present (plus dynamic VTI and the EzVPN server).
    with running_lab(routers=10, state_dir=tmp_path_factory.mktemp("lab10")) as lab:
        yield lab


def test_audit_classifies_every_lab_tunnel(lab10, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(audit_cmd, ["-i", str(lab10.inventory_path), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    routers = {r["host"]: r for r in data["routers"]}
    assert set(routers) == set(lab10.fleet.routers)
    assert all(r["read"] and r["error"] is None for r in routers.values())

    pairs = lab10.call(lab10.fleet.pairs)
    # The lab writes `crypto isakmp invalid-spi-recovery` in its ISAKMP section, which an
    # IKEv2-only router does not have: configured = the model's flag and some IKEv1 tunnel.
    ikev1_routers = {n for p in pairs if p.ike_version == 1 for n in (p.a, p.b)}
    seen_types = set()
    for pair in pairs:
        for name, config_type, peer in ((pair.a, pair.a_type, pair.b_addr), (pair.b, pair.b_type, pair.a_addr)):
            tunnel = tunnel_for(routers[name], peer, LAB_KIND[config_type].value)
            assert tunnel["kind"] == LAB_KIND[config_type].value, (pair.id, name, tunnel)
            assert tunnel["ike_version"] == f"IKEv{pair.ike_version}", (pair.id, name, tunnel)
            assert tunnel["recovery_label"] == expected_label(config_type, pair.ike_version), (pair.id, name)
            configured = name in ikev1_routers and lab10.call(
                lambda n=name: lab10.fleet.routers[n].spec.invalid_spi_recovery)
            assert tunnel["recovery_configured"] is configured, (pair.id, name)
            seen_types.add(config_type)
    assert seen_types == set(LAB_KIND)

    # DMVPN per mapping: hub2's Tunnel0 maps hub1 statically (dual hub) and learns spoke2
    hub2 = [(t["tunnel"], t["kind"], t["peers"], t["recovery_label"]) for t in routers["hub2"]["tunnels"]
            if t["tunnel"] == "Tunnel0"]
    hub1_ip, spoke2_ip = (lab10.call(lambda n=n: lab10.fleet.routers[n].spec.public_ip) for n in ("hub1", "spoke2"))
    assert hub2 == [("Tunnel0", "mgre-static-nhrp", [hub1_ip], "yes"), ("Tunnel0", "mgre-dynamic-nhrp", [], "no")]
    learned = next(t for t in routers["hub2"]["tunnels"] if t["kind"] == "mgre-dynamic-nhrp")
    assert spoke2_ip in learned["observed_peers"]

    tunnels = [t for r in routers.values() for t in r["tunnels"]]
    missing = sum(t["recovery_label"] == "yes" and not t["recovery_configured"] for t in tunnels)
    summary = data["summary"]
    assert summary["recovery_missing"] == missing and summary["tunnels"] == len(tunnels)
    assert summary["headline"] == f"{missing} of {len(tunnels)} tunnels could use invalid-spi-recovery and do not"

    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and summary["headline"] in page
    assert not re.search(r"(?i)\b(src|href)\s*=|https?://", page)


def test_audit_over_two_processes_says_what_one_says(lab10, tmp_path):
    # As a process of its own (this test process runs the lab's threads, so it never forks)
    import os
    import subprocess
    import sys

    audits = {}
    for processes in ("2", "1"):
        proc = subprocess.run([sys.executable, "-m", "collector", "audit", "-i", str(lab10.inventory_path), "--json",
                               "--processes", processes], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env={**os.environ})
        assert proc.returncode == 0, proc.stderr
        audits[processes] = json.loads(proc.stdout)
    assert len(audits["2"]["routers"]) == 10 and all(r["read"] for r in audits["2"]["routers"])
    assert audits["2"]["routers"] == audits["1"]["routers"]
    assert audits["2"]["summary"] == audits["1"]["summary"]


def test_audit_names_the_router_it_could_not_read(lab10, tmp_path):
    victim = "spoke3"
    lab10.control.fault(victim, refuse_connections=True)
    try:
        result = CliRunner().invoke(audit_cmd, ["-i", str(lab10.inventory_path), "--group", "spokes"])
    finally:
        lab10.control.fault(victim, refuse_connections=False)
    assert result.exit_code == 1, result.output
    assert f"not read: {victim}:" in result.stdout
    assert "1 of 8 routers not read" in result.stdout
    assert "spoke1" in result.stdout and "hub1" not in result.stdout


# --------------------------------------------------------------------------------------------
# A desync incident captured over SSH, diagnosed into the bundle, and re-diagnosed offline


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _arm(pool, host, peer: str) -> list[str]:
    commands = [f"debug crypto condition peer ipv4 {peer}", "debug crypto isakmp", "debug crypto ipsec"]
    with pool.session(host) as session:
        session.configure(["logging buffered 1000000 debugging"])
        for command in commands:
            session.run(command)
    return commands


def _disarm(pool, host) -> None:
    with pool.session(host) as session:
        session.run("undebug all", check=False)
        session.run("debug crypto condition reset", check=False)


def _capture(pool, host, role: str, peer: str) -> RouterCapture:
    commands = ["show clock", "show logging", f"show crypto ipsec sa peer {peer} detail",
                f"show crypto session remote {peer} detail", "show running-config", "show version"]
    started = datetime.now(timezone.utc)
    outcome = collect_host(host, commands, pool=pool, registry=default_registry())
    ended = datetime.now(timezone.utc)
    records = tuple(replace(r, started=started, ended=ended, error=r.error if r.error_kind != "parse" else None)
                    for r in outcome.results)
    offset = clock_offset(records[0].text or "", started, ended, records[4].text)  # zone-aware, as the agent reads it
    return RouterCapture(host.name, role, host.platform, peer, records, offset, outcome.error)


def _incident(lab, pair, tmp_path: Path) -> Path:
    inventory = load_inventory(lab.inventory_path)
    rx, tx = inventory.hosts[pair.receiver], inventory.hosts[pair.sender]
    # the sender knows the receiver by its public address (under NAT-T receiver_addr, the
    # destaddr it logs, is its inside one), as the agent finds it from the sender's SA
    known_as = pair.a_addr if pair.receiver == pair.a else pair.b_addr
    with SessionPool(KnownHosts.default()) as pool:
        actions = []
        for host, peer in ((rx, pair.sender_addr), (tx, known_as)):
            actions += [{"router": host.name, "do": [c], "status": "undone"} for c in _arm(pool, host, peer)]
        armed_at = datetime.now(timezone.utc)
        lab.control.step(200)  # a few lab minutes: the receiver logs the flow once a minute
        captures = (_capture(pool, rx, "receiver", pair.sender_addr), _capture(pool, tx, "sender", known_as))
        for host in (rx, tx):
            _disarm(pool, host)
    events = [e for e in (parse_invalid_spi(line, router=rx.name, source="poll", received_at=armed_at)
                          for line in (captures[0].commands[1].text or "").splitlines()) if e is not None]
    mine = [e for e in events if str(e.flow.src) == pair.sender_addr]
    assert len(mine) >= 2, captures[0].commands[1].text
    flow = Flow(router=rx.name, src=ip_address(pair.sender_addr), dst=ip_address(pair.receiver_addr),
                spi=mine[-1].flow.spi, prot=50)
    result = CaptureResult(incident_id=f"e2e-{pair.id}", flow=flow, trigger_lines=(mine[0].raw,),
                           captures=captures, armed_at=armed_at, captured_at=datetime.now(timezone.utc),
                           armed_before_repeat=True, sender=tx.name, actions=tuple(actions))
    return write_incident_bundle(result, tmp_path / "bundles", secrets=tuple(inventory.secret_values()),
                                 report=diagnose_capture(result))


@pytest.fixture(scope="module")
def desync_lab(tmp_path_factory):
    # seed 1 puts desync on t1 (receiver hub1: dynamic crypto map, recovery cannot help) and
    # t6 (receiver spoke6: IKEv1 sVTI without the command, recovery would help), among others.
    with running_lab(routers=10, scenarios=["desync:3"], seed=1,
                     state_dir=tmp_path_factory.mktemp("desync")) as lab:
        pairs = {p.id: p for p in lab.call(lab.fleet.pairs) if p.scenario == "desync"}
        yield lab, pairs


@pytest.mark.parametrize("pair_id, recovery_applies", [("t6", True), ("t1", False)])
def test_desync_bundle_report(desync_lab, tmp_path, pair_id, recovery_applies):
    lab, pairs = desync_lab
    pair = pairs[pair_id]
    receiver_type = pair.b_type if pair.receiver == pair.b else pair.a_type
    assert RECOVERY_APPLIES[receiver_type] is recovery_applies and pair.ike_version == 1
    configured = lab.call(lambda: lab.fleet.routers[pair.receiver].spec.invalid_spi_recovery)
    if recovery_applies:
        assert not configured  # so the report has something to recommend

    bundle = _incident(lab, pair, tmp_path)
    report = (bundle / "report.md").read_text()
    data = json.loads((bundle / "report.json").read_text())
    spi = data["flow"]["spi"]
    assert data["verdict"]["key"] == "out-of-sync-confirmed"
    assert f"**Verdict: SAs out of sync, confirmed: {pair.sender} encrypts with SPI {spi}, unknown to " \
           f"{pair.receiver}**" in report
    ids = {f["id"] for f in data["findings"]}
    assert "flow-repeating" in ids and "no-ike-sa-for-notify" in ids
    recommend = f"Add `crypto isakmp invalid-spi-recovery` (global configuration) on {pair.receiver}"
    if recovery_applies:
        assert "recovery-missing" in ids and recommend in report
    else:
        # hub1 (seed 1) has the command although a dynamic map cannot use it: said, not recommended
        assert ("recovery-cannot-help" if configured else "recovery-not-applicable") in ids
        assert "recovery-missing" not in ids and recommend not in report
        assert not any("Enable `crypto isakmp invalid-spi-recovery`" in s["text"] for s in data["next_steps"])
    assert "SA tables, side by side" in report and f"**{spi}**" in report

    sealed = _hashes(bundle)
    result = CliRunner().invoke(report_cmd, [str(bundle)])
    assert result.exit_code == 0, result.output
    md_path, json_path = default_report_paths(bundle)
    again = json.loads(json_path.read_text())
    assert again["verdict"] == data["verdict"] and again["findings"] == data["findings"]
    assert md_path.read_text().replace(f"bundle {bundle.name}", "capture") == report
    assert _hashes(bundle) == sealed
