"""The trigger agent end to end: lab routers over real SSH, the real scheduler and playbook."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from netmiko import ConnectHandler

from collector.demo import demo_playbook
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from collector.watch import WatchOptions, run_daemon

pytestmark = pytest.mark.e2e


def bundles(root: Path) -> list[Path]:
    # sealed bundles only: a bundle being written is a hidden `.NAME.*.partial` folder
    return sorted(p for p in root.glob("*_invalid-spi_*") if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []


def run_agent_until_bundles(inventory, book, tmp_path: Path, count: int = 1, seconds: float = 100) -> list[str]:
    """Run the daemon on the lab until `count` sealed bundles exist (or time runs out);
    returns what it reported. Bundles go to tmp_path/bundles, state to tmp_path/state."""
    out = tmp_path / "bundles"
    options = WatchOptions(state_dir=tmp_path / "state", bundle_root=out, workers=8, max_seconds=seconds + 20)
    stop = threading.Event()
    messages: list[str] = []
    thread = threading.Thread(target=run_daemon, args=(inventory, book, options, messages.append, stop))
    thread.start()
    deadline = time.monotonic() + seconds
    try:
        while len(bundles(out)) < count and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=60)
    return messages


def router_leftovers(lab, router: str) -> list[str]:
    """What a router still has armed, read over SSH like an engineer would."""
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        debugging = conn.send_command("show debugging")
        conditions = conn.send_command("show crypto debug-condition")
        applets = conn.send_command("show running-config | section event manager")
    left = [line.strip() for line in debugging.splitlines() if "debugging is on" in line]
    left += [line.strip() for line in conditions.splitlines() if line.strip()[:1].isdigit()]
    left += [line.strip() for line in applets.splitlines() if "COLLECTOR_DEADMAN" in line]
    return left


def debugs_before(lab) -> dict[str, dict]:
    """Every router's debugs, conditions and applets as the lab holds them, read in-process
    (instant: an SSH read of every router would let a flow start repeating before the
    agent's first poll). The realistic lab has an operator's debug and conditions on some
    (topology `operator-debug`), which must be exactly as they were afterwards ("none of
    ours, the operator's unchanged")."""
    return {name: debug_state(lab, name) for name in lab.ports}


def debug_state(lab, router: str) -> dict:
    state = lab.control.state(router)
    return {"debug": state["debug"], "applets": state["applets"]}


def test_desync_arms_both_ends_first_captures_on_repeat_and_disarms(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], time_scale=5, state_dir=tmp_path / "lab") as lab:
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path)
        found = bundles(tmp_path / "bundles")
        assert found, messages
        bundle = found[0]
        manifest = json.loads((bundle / "manifest.json").read_text())
        receiver = manifest["flow"]["receiver"]
        roles = {r["role"]: r["name"] for r in manifest["routers"]}
        assert roles["receiver"] == receiver and "sender" in roles, manifest["routers"]
        assert manifest["armed_before_repeat"] is True
        assert manifest["complete"] is True, manifest["incomplete_reasons"]
        assert len(manifest["trigger_lines"]) >= 2
        assert all("RECVD_PKT_INV_SPI" in line for line in manifest["trigger_lines"])
        assert Path(str(bundle) + ".tar.gz").is_file()

        # The timeline holds debug lines from both routers, from before the repeat.
        timeline = [json.loads(line) for line in (bundle / "timeline.jsonl").read_text().splitlines()]
        repeat_at = [row["agent_time"] for row in timeline
                     if row["router"] == receiver and "RECVD_PKT_INV_SPI" in row["line"]][-1]
        for role in ("receiver", "sender"):
            debug = [row for row in timeline if row["role"] == role and row["mnemonic"] is None
                     and row["agent_time"] and row["agent_time"] < repeat_at]
            assert debug, f"no debug lines from the {role} before the repeat"

        # Both ends disarmed: no debug, no condition, no dead-man applet, logging restored.
        for router in roles.values():
            assert router_leftovers(lab, router) == []
        for action in manifest["router_changes"]:
            assert action["status"].startswith("undone"), action


def test_two_flows_on_one_hub_are_both_armed_and_the_hub_ends_clean(tmp_path):
    with running_lab(routers=12, scenarios=["desync:3"], time_scale=5, state_dir=tmp_path / "lab") as lab:
        before = debugs_before(lab)
        assert any(v["debug"]["flags"] for v in before.values())  # the operator's, kept in place below
        flows = [p for p in lab.control.pairs() if p["scenario"] == "desync"]
        receivers = [p["receiver"] for p in flows]
        shared = next(r for r in receivers if receivers.count(r) > 1)  # two spokes' flows end on one hub
        book = demo_playbook()
        # the realistic lab has an operator's debug on one hub: this test is about sharing a
        # hub, so arm beside it (test_real_routers checks that such debugs survive)
        book = book.model_copy(update={"guards": book.guards.model_copy(
            update={"max_armed_routers": 10, "refuse_if_foreign_debugs": False})})
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), book, tmp_path, count=len(flows))
        manifests = [json.loads((b / "manifest.json").read_text()) for b in bundles(tmp_path / "bundles")]
        on_shared = [m for m in manifests if m["flow"]["receiver"] == shared]
        assert len(on_shared) == 2, messages
        for manifest in on_shared:
            assert manifest["armed_before_repeat"] is True
            assert manifest["complete"] is True, manifest["incomplete_reasons"]
        # the hub was handed from the first incident to the second, and disarmed by the last
        verdicts = [m["disarm_verification"][shared] for m in on_shared]
        assert any(v.startswith("clean: none of the tool's debugs") for v in verdicts), verdicts  # DisarmResult.summary()
        for router in {r["name"] for m in manifests for r in m["routers"]}:
            assert debug_state(lab, router) == before[router], router
            assert not [x for x in router_leftovers(lab, router) if "COLLECTOR" in x], router
