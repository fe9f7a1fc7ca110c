"""watch --dry-run, a peer outside the inventory, `collector disarm` and `collector incidents`."""

from __future__ import annotations

import json

import pytest
import yaml
from netmiko import ConnectHandler

from collector.demo import demo_playbook
from collector.inventory import load_inventory
from collector.lab.runner import running_lab

from test_agent_lab import bundles, router_leftovers, run_agent_until_bundles
from test_agent_modes import cli, fast_playbook

pytestmark = pytest.mark.e2e


def test_dry_run_prints_both_plans_and_changes_nothing(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], time_scale=1, state_dir=tmp_path / "lab") as lab:
        lab.control.step(35)  # past the desync: the receiver has logged the flow's first line
        proc = cli("watch", "--once", "--dry-run", "-i", str(lab.inventory_path),
                   "--playbook", str(fast_playbook(tmp_path)), "--state", str(tmp_path / "state"),
                   "--out", str(tmp_path / "bundles"), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        text = proc.stderr
        assert "dry run: nothing was changed" in text
        for router, peer in (("hub1", "192.0.2.3"), ("spoke1", "198.51.100.1")):
            assert f"== {router} " in text
            assert f"debug crypto condition peer ipv4 {peer}" in text
            assert f"no debug crypto condition peer ipv4 {peer}" in text
        hub1 = text[text.index("== hub1 "):]
        assert hub1.index("do:   debug crypto condition peer ipv4 192.0.2.3") < hub1.index("do:   debug crypto ipsec")
        for router in ("hub1", "spoke1"):
            assert router_leftovers(lab, router) == []
        assert not bundles(tmp_path / "bundles")


def test_peer_outside_inventory_captures_the_local_side_and_says_so(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], time_scale=10, state_dir=tmp_path / "lab") as lab:
        data = yaml.safe_load(lab.inventory_path.read_text())
        del data["hosts"]["spoke1"]  # the sender of the desync flow
        # hub1 answers any peer (dynamic map, wildcard key), so a spoke outside the
        # inventory is an unknown source to it: armed only with the playbook's switch
        book = demo_playbook()
        book = book.model_copy(update={"guards": book.guards.model_copy(update={"arm_unknown_sources": True})})
        partial = tmp_path / "partial.yaml"
        partial.write_text(yaml.safe_dump(data))
        messages = run_agent_until_bundles(load_inventory(partial), book, tmp_path, seconds=80)
        assert bundles(tmp_path / "bundles"), messages
        bundle = bundles(tmp_path / "bundles")[0]
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert [r["name"] for r in manifest["routers"]] == ["hub1"]
        assert manifest["sender_in_inventory"] is False
        # spoke1 is an unknown source to hub1, or, when hub1's peers were read while their
        # session was still up (the realistic hub1's first read finds scanner lines in its
        # history before the desync begins), a peer outside the inventory: both say so
        assert any("only the receiving end" in note and ("srcaddr 192.0.2.3 is not a router of the inventory" in note
                                                        or "192.0.2.3 is a configured peer of hub1 outside" in note)
                   for note in manifest["notes"]), manifest["notes"]
        assert router_leftovers(lab, "hub1") == []

        listed = cli("incidents", "--state", str(tmp_path / "state"), "--json", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        captured = [r for r in rows if r["state"] == "captured"]
        assert len(captured) == 1 and captured[0]["bundle"] == str(bundle)
        assert captured[0]["routers"] == ["hub1"]
        # the realistic lab's scanners (single packets, random SPIs) opened nothing, even with
        # the switch on: they are counted as unknown sources, not incidents
        assert [r for r in rows if r["incident"]] == captured, rows
        assert any(r["state"] == "unknown-source" and r["src"] != "192.0.2.3" for r in rows), rows


def test_disarm_command_sweeps_a_router_left_armed(tmp_path):
    with running_lab(routers=6, state_dir=tmp_path / "lab") as lab:
        with ConnectHandler(**lab.connect_params("hub2")) as conn:
            conn.enable()
            conn.send_command("debug crypto ipsec")  # an operator's (the realistic hub2 has it on already)
            before = router_leftovers(lab, "hub2")  # the operator's debug and condition (realism operator-debug)
            # a run whose state was lost left hub2 armed: its dead-man applet holds the undo
            for command in ("debug crypto condition peer ipv4 192.0.2.4", "debug crypto isakmp"):
                conn.send_command(command)
            conn.send_config_set(["event manager applet COLLECTOR_DEADMAN_OLD1",
                                  " event timer countdown time 86400",
                                  ' action 001 cli command "enable"',
                                  ' action 002 cli command "no debug crypto isakmp"',
                                  ' action 003 cli command "no debug crypto condition peer ipv4 192.0.2.4"',
                                  ' action 004 cli command "configure terminal"',
                                  ' action 005 cli command "no event manager applet COLLECTOR_DEADMAN_OLD1"',
                                  ' action 006 cli command "end"'])
        operator_peers = next(r for r in lab.fleet.plan.routers if r.name == "hub2").operator_conditions
        assert operator_peers and "Crypto IPSEC debugging is on" in before
        assert router_leftovers(lab, "hub2") != before
        proc = cli("disarm", "-i", str(lab.inventory_path), "--hosts", "hub2", "--state", str(tmp_path / "state"),
                   cwd=tmp_path)
        # No store: the applet's own undo is replayed and the applet goes; the debug and the
        # condition no applet names are someone else's: left on, named, and not a failure.
        assert proc.returncode == 0, proc.stdout + proc.stderr
        others = ", ".join(["debug ipsec"] + [f"condition peer {p}" for p in operator_peers])
        assert proc.stdout == ("hub2: clean: applets COLLECTOR_DEADMAN_OLD1; restored: no debug crypto isakmp; "
                               "no debug crypto condition peer ipv4 192.0.2.4; no event manager applet "
                               "COLLECTOR_DEADMAN_OLD1; left on (no applet or record of the tool names them): "
                               f"{others}\n"), proc.stdout
        assert router_leftovers(lab, "hub2") == before

        nothing = cli("disarm", "-i", str(lab.inventory_path), "--state", str(tmp_path / "state"), cwd=tmp_path)
        assert nothing.returncode == 2 and "--hosts" in nothing.stderr


def test_sender_found_from_discovered_interface_addresses(tmp_path):
    with running_lab(routers=6, scenarios=["desync"], time_scale=10, state_dir=tmp_path / "lab") as lab:
        data = yaml.safe_load(lab.inventory_path.read_text())
        for entry in data["hosts"].values():
            entry.pop("addresses", None)  # nothing says which router owns which address
        bare = tmp_path / "bare.yaml"
        bare.write_text(yaml.safe_dump(data))
        messages = run_agent_until_bundles(load_inventory(bare), demo_playbook(), tmp_path, seconds=80)
        assert bundles(tmp_path / "bundles"), messages
        manifest = json.loads((bundles(tmp_path / "bundles")[0] / "manifest.json").read_text())
        assert {r["role"]: r["name"] for r in manifest["routers"]} == {"receiver": "hub1", "sender": "spoke1"}
