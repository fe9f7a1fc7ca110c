"""Issue "The agent on real routers": the starts operators make, on the realistic default lab.

The lab here is the harshest one (long hostnames, timestamp styles, 10 MB busy buffers,
operator debugs, NAT-T receivers, scanners): every check reads the routers over SSH and
the bundle from disk, and compares what the bundle says with what happened.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from netmiko import ConnectHandler

from collector.demo import demo_playbook
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from tests.e2e.test_agent_lab import bundles, router_leftovers, run_agent_until_bundles
from tests.e2e.test_agent_modes import cli

pytestmark = pytest.mark.e2e


def the_tunnel(lab, scenario: str):
    return next(t for t in lab.fleet.pairs() if t.scenario == scenario)


def timeline(bundle: Path) -> list[dict]:
    return [json.loads(line) for line in (bundle / "timeline.jsonl").read_text().splitlines()]


def check_under_way_bundle(bundle: Path, receiver: str, *, lines_before: int) -> dict:
    """What a bundle of a flow found already repeating must hold, checked against itself."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    report = (bundle / "report.md").read_text()
    assert manifest["armed_before_repeat"] is False
    assert "after the repeat (they show the aftermath only)" in report and "before the repeat (they can" not in report
    # the receiver's own debug lines, logged after arming
    assert manifest["debug_lines_after_arming"][receiver] >= 1, manifest["incomplete_reasons"]
    assert not report.startswith("**INCOMPLETE: no debug line")
    # the log as read just before arming, kept as a file, and its lines in the timeline
    pre_arm = {r["router"] for r in manifest["pre_arm_reads"]}
    assert receiver in pre_arm and (bundle / receiver / "00_pre-arm_show_logging.txt").is_file()
    rows = timeline(bundle)
    triggers = [r for r in rows if r["source"] == "trigger"]
    assert len(triggers) == len(manifest["trigger_lines"]) >= lines_before + 1
    assert sum("pre-arm read" in r["seen_in"] for r in triggers) >= lines_before
    assert any(r["source"] == "capture" and r["router"] == receiver and r["mnemonic"] is None for r in rows)
    return manifest


def test_a_flow_already_repeating_when_the_daemon_starts(tmp_path):
    with running_lab(routers=6, scenarios=["desync-under-way"], time_scale=10, state_dir=tmp_path / "lab", realism="all") as lab:
        tunnel = the_tunnel(lab, "desync-under-way")
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path, seconds=120)
        found = bundles(tmp_path / "bundles")
        assert found, messages
        check_under_way_bundle(found[0], tunnel.receiver, lines_before=3)
        assert router_leftovers(lab, tunnel.receiver) == [] and router_leftovers(lab, tunnel.sender) == []


def test_a_flow_already_repeating_across_two_cron_runs_five_lab_minutes_apart(tmp_path):
    with running_lab(routers=6, scenarios=["desync-under-way"], time_scale=10, state_dir=tmp_path / "lab", realism="all") as lab:
        tunnel = the_tunnel(lab, "desync-under-way")
        env = {"COLLECTOR_STATE": str(tmp_path / "tool-state"), "PATH": "/usr/bin:/bin"}
        args = ("watch", "--once", "-i", str(lab.inventory_path), "--state", str(tmp_path / "state"),
                "--out", str(tmp_path / "bundles"))
        first = cli(*args, cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stderr
        assert bundles(tmp_path / "bundles") == []  # armed on the old lines; nothing captured yet
        listed = json.loads(cli("incidents", "--state", str(tmp_path / "state"), "--json", cwd=tmp_path,
                                env=env).stdout)
        armed = [r for r in listed if r["state"] == "armed"]
        assert len(armed) == 1 and armed[0]["armed_late"] and armed[0]["armed_at"]
        time.sleep(30)  # five lab minutes: the flow logs again (one line a lab minute)
        second = cli(*args, cwd=tmp_path, env=env)
        assert second.returncode == 0, second.stderr
        found = bundles(tmp_path / "bundles")
        assert len(found) == 1, second.stderr
        check_under_way_bundle(found[0], tunnel.receiver, lines_before=3)
        assert router_leftovers(lab, tunnel.receiver) == [] and router_leftovers(lab, tunnel.sender) == []


def test_a_dry_run_then_a_real_run_arms_and_captures_normally(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], time_scale=10, state_dir=tmp_path / "lab", realism="all") as lab:
        env = {"COLLECTOR_STATE": str(tmp_path / "tool-state"), "PATH": "/usr/bin:/bin"}
        time.sleep(4)  # the desync logs its first line at 30 lab seconds
        dry = cli("watch", "--once", "--dry-run", "-i", str(lab.inventory_path), "--state", str(tmp_path / "state"),
                  "--out", str(tmp_path / "bundles"), cwd=tmp_path, env=env)
        assert dry.returncode == 0, dry.stderr
        assert "dry run: nothing was changed" in dry.stderr
        assert not (tmp_path / "state" / "state.db").exists() or json.loads(cli(
            "incidents", "--state", str(tmp_path / "state"), "--json", cwd=tmp_path, env=env).stdout) == []
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path, seconds=100)
        found = bundles(tmp_path / "bundles")
        assert found, messages
        manifest = json.loads((found[0] / "manifest.json").read_text())
        assert manifest["armed_at"] and manifest["debug_lines_after_arming"]


def test_an_operators_debug_and_condition_survive_an_incident(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], time_scale=10, state_dir=tmp_path / "lab", realism="all") as lab:
        tunnel = the_tunnel(lab, "desync")
        with ConnectHandler(**lab.connect_params(tunnel.receiver)) as conn:
            conn.enable()
            conn.send_command("debug crypto ipsec")
            conn.send_command("debug crypto condition peer ipv4 192.0.2.250")
        book = demo_playbook()
        book = book.model_copy(update={"guards": book.guards.model_copy(update={"refuse_if_foreign_debugs": False})})
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), book, tmp_path, seconds=100)
        assert bundles(tmp_path / "bundles"), messages
        left = router_leftovers(lab, tunnel.receiver)
        assert "Crypto IPSEC debugging is on" in left
        with ConnectHandler(**lab.connect_params(tunnel.receiver)) as conn:
            conn.enable()
            assert "192.0.2.250" in conn.send_command("show crypto debug-condition")


@pytest.mark.parametrize("length", [30, 63])
def test_routers_with_long_hostnames_are_armed_captured_and_disarmed(tmp_path, length):
    with running_lab(routers=6, scenarios=["desync"], time_scale=10, state_dir=tmp_path / "lab", realism="all") as lab:
        tunnel = the_tunnel(lab, "desync")
        for router, prefix in ((tunnel.receiver, "rx"), (tunnel.sender, "tx")):
            name = (f"{prefix}-ams-dc1.wan." + "x" * 80)[:length]
            assert len(name) == length
            lab.control.config(router, [f"hostname {name}"])
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path, seconds=100)
        found = bundles(tmp_path / "bundles")
        assert found, messages
        manifest = json.loads((found[0] / "manifest.json").read_text())
        assert manifest["complete"], manifest["incomplete_reasons"]
        assert router_leftovers(lab, tunnel.receiver) == [] and router_leftovers(lab, tunnel.sender) == []
        collected = cli("collect", "-i", str(lab.inventory_path), "--hosts", tunnel.receiver, "-c", "show clock",
                        "--out", str(tmp_path / "collect"), cwd=tmp_path,
                        env={"COLLECTOR_STATE": str(tmp_path / "tool-state"), "PATH": "/usr/bin:/bin"})
        assert collected.returncode == 0, collected.stderr


def test_a_router_whose_aaa_refuses_the_condition_arms_nothing_and_says_why(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], time_scale=10, state_dir=tmp_path / "lab", realism="all") as lab:
        tunnel = the_tunnel(lab, "desync")
        lab.control.fault(tunnel.receiver, tacacs={"*": {"deny": ["debug crypto condition"]}})
        lab.control.config(tunnel.receiver, ["aaa new-model", "aaa authorization commands 15 default group tacacs+"])
        run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path, seconds=25)
        assert bundles(tmp_path / "bundles") == []
        assert router_leftovers(lab, tunnel.receiver) == [] and router_leftovers(lab, tunnel.sender) == []
        rows = json.loads(cli("incidents", "--state", str(tmp_path / "state"), "--json", cwd=tmp_path).stdout)
        ended = [r for r in rows if r["routers"] and r["routers"][0] == tunnel.receiver and r["incident"]]
        assert ended and all(r["state"] in ("skipped", "failed") for r in ended)
        assert any("Command authorization failed" in r["reason"] for r in ended), ended


def test_a_natted_receiver_the_senders_bundle_holds_its_sa_with_the_logged_spi(tmp_path):
    with running_lab(routers=6, scenarios=["desync-nat-t"], time_scale=10, state_dir=tmp_path / "lab", realism="all") as lab:
        tunnel = the_tunnel(lab, "desync-nat-t")
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path, seconds=100)
        found = bundles(tmp_path / "bundles")
        assert found, messages
        manifest = json.loads((found[0] / "manifest.json").read_text())
        spi = manifest["flow"]["spi"].lower()
        sender = next(r for r in manifest["routers"] if r["role"] == "sender")
        assert sender["name"] == tunnel.sender
        assert sender["peer"] != manifest["flow"]["destaddr"]  # the public address, not the inside one
        # conditioned on it only where this incident changed the sender
        armed = any(a["router"] == sender["name"] for a in manifest["router_changes"])
        assert sender["debug_condition_peer"] == (sender["peer"] if armed else None)
        sa_files = [p for p in (found[0] / tunnel.sender).glob("*show_crypto_ipsec_sa*.txt")]
        assert sa_files and any(spi in p.read_text().lower() for p in sa_files)
        # the report reads and advises the sender by that address too
        report = (found[0] / "report.md").read_text()
        assert f"knows the receiver as {sender['peer']}" in report
        assert "no SA with this peer" not in report


def test_a_scanners_lines_arm_nothing_and_are_listed(tmp_path):
    with running_lab(routers=6, scenarios=["healthy"], time_scale=60, state_dir=tmp_path / "lab", realism="all") as lab:
        # what operators already had on (realism "operator-debug"): left exactly as it was
        before = {name: router_leftovers(lab, name) for name in lab.ports}
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path, seconds=25)
        rows = json.loads(cli("incidents", "--state", str(tmp_path / "state"), "--json", cwd=tmp_path).stdout)
        assert [r for r in rows if r["incident"]] == [], messages
        unknown = [r for r in rows if r["state"] == "unknown-source"]
        assert unknown and all(r["lines"] >= 1 for r in unknown)
        assert any(before.values())  # the check below would not see an operator's debug switched off otherwise
        for name in lab.ports:
            assert router_leftovers(lab, name) == before[name], name
