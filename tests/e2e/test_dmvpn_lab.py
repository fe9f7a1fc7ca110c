"""DMVPN per flow, end to end (issue 11 item 7): on one lab, a desync over a spoke's static
NHRP mapping (its hub sends) and one over a phase-3 spoke-to-spoke shortcut (a dynamic
mapping) give two different invalid-spi-recovery verdicts, each backed by the NHRP entry
the bundle holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.demo import DEMOS, demo_playbook, run_demo
from collector.diagnose.incident import diagnose_bundle
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from collector.lab.topology import MGRE_DYNAMIC, MGRE_STATIC, build_plan, tunnel_info
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


def _lab_truth(by_name, pair) -> dict:
    """What the lab itself holds for a flow: the NHRP mapping type at each end (from the
    tunnel's build plan, not from any router output), whether the receiver has
    `crypto isakmp invalid-spi-recovery`, and whether the lab resyncs the flow with it."""
    end_type = {pair.a: pair.a_type, pair.b: pair.b_type}
    name = {MGRE_STATIC: "static", MGRE_DYNAMIC: "dynamic"}
    configured = by_name[pair.receiver].invalid_spi_recovery
    mapping = name[end_type[pair.receiver]]
    expected = {("static", False): "recovery-missing", ("static", True): "recovery-configured",
                ("dynamic", False): "recovery-not-applicable", ("dynamic", True): "recovery-cannot-help"}
    return {"receiver": pair.receiver, "srcaddr": pair.sender_addr, "mapping": mapping,
            "sender": pair.sender, "receiver_addr": pair.a_addr if pair.receiver == pair.a else pair.b_addr,
            "sender_mapping": name[end_type[pair.sender]], "configured": configured,
            "lab_recovers": pair.recovery, "finding": expected[(mapping, configured)]}


def _check_against_lab(bundle: Path, truth: dict) -> dict:
    """The report's per-flow NHRP decision agrees with the lab's ground truth, at both ends,
    and each sentence about it is backed by the line of the bundle's own NHRP capture."""
    report = json.loads((bundle / "report.json").read_text())
    assert (report["flow"]["receiver"], report["flow"]["srcaddr"]) == (truth["receiver"], truth["srcaddr"])
    rx, tx = report["receiver"], report["sender"]
    assert rx["invalid_spi_recovery_configured"] is truth["configured"]
    (tunnel,) = rx["tunnels_toward_peer"]
    assert tunnel["kind"] == f"mgre-{truth['mapping']}-nhrp", tunnel
    # the flow's view of Tunnel0 names its own peer where the config maps it, never another
    assert tunnel["peers"] == ([truth["srcaddr"]] if truth["mapping"] == "static" else []), tunnel
    # 115801: recovery works over a static mapping only; the lab resyncs only when it also is on
    assert (tunnel["recovery"] == "yes") is (truth["mapping"] == "static")
    assert bool(truth["lab_recovers"]) is (truth["mapping"] == "static" and truth["configured"])
    assert f"is {truth['mapping']} (" in rx["tunnel_selection"], rx["tunnel_selection"]
    assert f"(a {truth['mapping']} NHRP mapping)" in rx["tunnel_selection"]
    # the sender's side is decided on its own NHRP cache, for the receiver's address
    assert tx["name"] == truth["sender"]
    assert f"(a {truth['sender_mapping']} NHRP mapping)" in tx["tunnel_selection"], tx["tunnel_selection"]
    finding = _recovery_finding(report)
    assert finding["id"] == truth["finding"], (finding["id"], truth)
    assert f"this flow ({truth['mapping']} NHRP mapping)" in finding["title"], finding["title"]
    cited = [e for e in finding["evidence"] if "show_ip_nhrp" in e["file"]]
    assert cited, finding["evidence"]
    for e in cited:  # each cited line is that line of the bundle's file
        lines = (bundle / e["file"]).read_text().splitlines()
        assert lines[e["line"] - 1].strip() == e["text"]
    texts = [e["text"] for e in cited]
    assert any(t.startswith(f"Type: {truth['mapping']}, Flags:") for t in texts), texts
    assert f"NBMA address: {truth['srcaddr']}" in texts, texts
    # report.md says the same, in its configuration section
    md = (bundle / "report.md").read_text()
    assert f"- {truth['receiver']}: {rx['tunnel_selection']}" in md
    return finding


def test_static_and_dynamic_nhrp_flows_get_their_own_verdicts(tmp_path: Path) -> None:
    with running_lab(routers=12, scenarios=SCENARIOS, seed=SEED, time_scale=10, state_dir=tmp_path / "lab") as lab:
        pairs = {p.scenario: p for p in lab.fleet.pairs() if p.scenario in SCENARIOS}
        static, dynamic = pairs["desync-dmvpn-static"], pairs["desync-dmvpn-dynamic"]
        assert (static.kind, static.receiver, dynamic.kind) == ("dmvpn", "spoke2", "dmvpn-shortcut")
        assert static.persistent and dynamic.persistent
        truths = [_lab_truth(lab.fleet.plan.by_name, static), _lab_truth(lab.fleet.plan.by_name, dynamic)]
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
    for truth in truths:
        _check_against_lab(by_receiver[(truth["receiver"], truth["srcaddr"])], truth)


def test_two_flows_on_one_tunnel_interface_get_the_verdicts_of_their_own_mappings(tmp_path: Path) -> None:
    """Six routers, seed 1: spoke2's Tunnel0 receives from its hub (hub2, a static map) and
    from spoke3 over a phase-3 shortcut (a dynamic entry). Same router, same interface, same
    recovery setting: the two incidents must still get different verdicts, each the one the
    lab's own plan says."""
    scenarios = ["desync-dmvpn-static", "desync-dmvpn-dynamic"]
    with running_lab(routers=6, scenarios=scenarios, seed=1, time_scale=10, state_dir=tmp_path / "lab") as lab:
        pairs = {p.scenario: p for p in lab.fleet.pairs() if p.scenario in scenarios}
        static, dynamic = pairs["desync-dmvpn-static"], pairs["desync-dmvpn-dynamic"]
        assert static.receiver == dynamic.receiver and static.persistent and dynamic.persistent
        truths = [_lab_truth(lab.fleet.plan.by_name, static), _lab_truth(lab.fleet.plan.by_name, dynamic)]
        assert [t["mapping"] for t in truths] == ["static", "dynamic"]
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path,
                                           count=2, seconds=150)
    found = {}
    for bundle in bundles(tmp_path / "bundles"):
        flow = json.loads((bundle / "manifest.json").read_text())["flow"]
        found[(flow["receiver"], flow["srcaddr"])] = bundle
    verdicts = set()
    for truth in truths:
        key = (truth["receiver"], truth["srcaddr"])
        assert key in found, (list(found), [m for m in messages if "scanner" not in m][-20:])
        finding = _check_against_lab(found[key], truth)
        verdicts.add(finding["id"])
        # the offline re-diagnosis of the sealed bundle agrees
        _, again = diagnose_bundle(found[key])
        assert _recovery_finding(again) == finding
    assert len(verdicts) == 2


def test_the_default_six_router_lab_has_a_shortcut_flow_with_its_dynamic_verdict(tmp_path: Path) -> None:
    """`collector lab up`'s default size: one spoke joins the DMVPN cloud beside its own
    tunnel, so a phase-3 shortcut exists (dynamic at both ends, its sender behind NAT)."""
    with running_lab(routers=6, scenarios=["desync-dmvpn-dynamic"], time_scale=10, state_dir=tmp_path / "lab") as lab:
        (flow,) = [p for p in lab.fleet.pairs() if p.scenario == "desync-dmvpn-dynamic"]
        assert flow.kind == "dmvpn-shortcut" and flow.persistent and flow.nat_t
        truth = _lab_truth(lab.fleet.plan.by_name, flow)
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
    _check_against_lab(found[0], truth)


def test_the_dmvpn_demo_shows_both_verdicts(tmp_path: Path) -> None:
    """`collector demo --scenario dmvpn`: two bundles, one per flow, each with the verdict of
    its own mapping as the demo lab's plan has it (the same plan the demo builds)."""
    scenarios, seed, wanted = DEMOS["dmvpn"]
    plan = build_plan(6, list(scenarios), seed=seed)
    truths = {(t["receiver"], t["srcaddr"]): t for t in
              (_lab_truth(plan.by_name, tunnel_info(x, plan.by_name)) for x in plan.tunnels if x.scenario in scenarios)}
    said: list[str] = []
    written = run_demo(tmp_path / "bundles", 150, said.append, demo="dmvpn")
    assert len(written) == wanted == 2, said[-20:]
    verdicts = set()
    for bundle in written:
        flow = json.loads((bundle / "manifest.json").read_text())["flow"]
        verdicts.add(_check_against_lab(bundle, truths[(flow["receiver"], flow["srcaddr"])])["id"])
    assert verdicts == {"recovery-missing", "recovery-not-applicable"}
