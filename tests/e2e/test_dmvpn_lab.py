"""DMVPN per flow, end to end (issue 11 item 7): on one lab, a desync over a spoke's static
NHRP mapping (its hub sends) and one over a phase-3 spoke-to-spoke shortcut (a dynamic
mapping) give two different invalid-spi-recovery verdicts, each backed by the NHRP entry
the bundle holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.demo import demo_playbook
from collector.diagnose.incident import diagnose_bundle
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from test_agent_lab import bundles, run_agent_until_bundles

pytestmark = pytest.mark.e2e

# 12 routers: spokes 2 and 10 are DMVPN spokes (of hub2 and hub1) with one shortcut between
# them. Seed 16: hub2 -> spoke2 over spoke2's static map, spoke2 -> spoke10 over the shortcut,
# both repeating (no recovery configured on the receivers that would apply, no DPD on the senders).
SCENARIOS = ["desync-dmvpn-static", "desync-dmvpn-dynamic"]
SEED = 16


def _recovery_finding(report: dict) -> dict:
    found = [f for f in report["findings"] if f["id"].startswith("recovery-")]
    assert len(found) == 1, [f["id"] for f in report["findings"]]
    return found[0]


def test_static_and_dynamic_nhrp_flows_get_their_own_verdicts(tmp_path: Path) -> None:
    with running_lab(routers=12, scenarios=SCENARIOS, seed=SEED, time_scale=10, state_dir=tmp_path / "lab") as lab:
        pairs = {p.scenario: p for p in lab.fleet.pairs() if p.scenario in SCENARIOS}
        static, dynamic = pairs["desync-dmvpn-static"], pairs["desync-dmvpn-dynamic"]
        assert (static.kind, static.receiver, dynamic.kind) == ("dmvpn", "spoke2", "dmvpn-shortcut")
        assert static.persistent and dynamic.persistent
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path,
                                           count=2, seconds=150)
    found = bundles(tmp_path / "bundles")
    by_receiver = {}
    for bundle in found:
        manifest = json.loads((bundle / "manifest.json").read_text())
        by_receiver[(manifest["flow"]["receiver"], manifest["flow"]["srcaddr"])] = bundle
    static_key = (static.receiver, static.sender_addr)
    dynamic_key = (dynamic.receiver, dynamic.sender_addr)
    assert static_key in by_receiver and dynamic_key in by_receiver, (list(by_receiver), messages[-20:])

    for key, mapping, ids in ((static_key, "static", {"recovery-missing", "recovery-configured"}),
                              (dynamic_key, "dynamic", {"recovery-not-applicable", "recovery-cannot-help"})):
        bundle = by_receiver[key]
        report = json.loads((bundle / "report.json").read_text())
        finding = _recovery_finding(report)
        assert finding["id"] in ids, finding
        assert f"this flow ({mapping} NHRP mapping)" in finding["title"], finding["title"]
        # the evidence is the receiver's NHRP entry for the sender, as the bundle holds it
        nhrp = [e for e in finding["evidence"] if "show_ip_nhrp" in e["file"]]
        assert any(e["text"] == f"Type: {mapping}, Flags: " + ("used" if mapping == "static" else "router nhop rib")
                   for e in nhrp), finding["evidence"]
        assert any(e["text"] == f"NBMA address: {key[1]}" for e in nhrp), finding["evidence"]
        for e in nhrp:  # each cited line is that line of the bundle's file
            lines = (bundle / e["file"]).read_text().splitlines()
            assert lines[e["line"] - 1].strip() == e["text"]
        text = (bundle / "report.md").read_text()
        assert f"mgre-{mapping}-nhrp" in text
        # `collector report` on the sealed bundle reaches the same verdict from its files alone
        _, again = diagnose_bundle(bundle)
        assert _recovery_finding(again) == finding


def test_the_default_six_router_lab_has_a_shortcut_flow_with_its_dynamic_verdict(tmp_path: Path) -> None:
    """`collector lab up`'s default size: one spoke joins the DMVPN cloud beside its own
    tunnel, so a phase-3 shortcut exists (dynamic at both ends, its sender behind NAT)."""
    with running_lab(routers=6, scenarios=["desync-dmvpn-dynamic"], time_scale=10, state_dir=tmp_path / "lab") as lab:
        (flow,) = [p for p in lab.fleet.pairs() if p.scenario == "desync-dmvpn-dynamic"]
        assert flow.kind == "dmvpn-shortcut" and flow.persistent and flow.nat_t
        # the realistic spoke3 (the receiver) carries an operator's leftover condition: arm beside it
        book = demo_playbook()
        book = book.model_copy(update={"guards": book.guards.model_copy(update={"refuse_if_foreign_debugs": False})})
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), book, tmp_path, seconds=120)
    found = bundles(tmp_path / "bundles")
    assert found, "\n".join(m for m in messages if "scanner" not in m)
    manifest = json.loads((found[0] / "manifest.json").read_text())
    assert (manifest["flow"]["receiver"], manifest["flow"]["srcaddr"]) == (flow.receiver, flow.sender_addr)
    report = json.loads((found[0] / "report.json").read_text())
    finding = _recovery_finding(report)
    assert finding["id"] in {"recovery-not-applicable", "recovery-cannot-help"}, finding
    assert "this flow (dynamic NHRP mapping)" in finding["title"], finding["title"]
