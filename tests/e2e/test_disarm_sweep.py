"""`collector disarm --all` without a usable state store, on the lab over real SSH: routers
armed by hand the way the agent arms them (logging changed, conditional crypto debugs, a
dead-man applet holding the restore commands) are put back from the applet alone.

The realistic lab's hub2 carries an operator's `debug crypto ipsec` and a condition
(topology `operator-debug`): the sweep must leave them exactly as they were and list them
as named by nothing of the tool's, without calling the router unclean for them."""

from __future__ import annotations

import os

import pytest
from netmiko import ConnectHandler

from collector.lab.runner import running_lab
from collector.respond.deadman import build_applet
from collector.respond.debugstate import parse_debug_state
from collector.respond.facts import parse_logging_settings

from test_agent_lab import router_leftovers
from test_agent_modes import cli

pytestmark = pytest.mark.e2e


def _logging(lab, router: str):
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        return parse_logging_settings(conn.send_command("show logging"))


def _arm_like_the_agent(lab, router: str, peer: str, name: str) -> tuple[str, ...]:
    """What the agent does: record logging, install the applet with the undo, then change;
    a debug or condition already on is someone else's, neither switched on nor undone.
    Returns the debugs it switched on."""
    before = _logging(lab, router)
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        on = parse_debug_state(conn.send_command("show debugging"), conn.send_command("show crypto debug-condition"))
    debugs = tuple(d for d in ("isakmp", "ipsec") if d not in on.debugs)
    assert peer not in on.peer_conditions
    restore = [f"logging buffered {before.buffered_size} {before.buffered_level}" if before.buffered_level
               else "no logging buffered"]
    if before.console_level:
        restore.append(f"logging console {before.console_level}")
    applet = build_applet(name, 86400, [
        ("exec", tuple(f"no debug crypto {d}" for d in reversed(debugs)) + (f"no debug crypto condition peer ipv4 {peer}",)),
        ("config", tuple(restore)),
    ])
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        conn.send_config_set(list(applet.config_lines))
        conn.send_config_set(["logging buffered 1000000 debugging", "no logging console"])
        for command in (f"debug crypto condition peer ipv4 {peer}",) + tuple(f"debug crypto {d}" for d in debugs):
            conn.send_command(command)
    return debugs


def _not_ours(lab, router: str) -> str:
    """The sweep's words for the operator's debug and condition the realistic lab put on `router`."""
    spec = next(r for r in lab.fleet.plan.routers if r.name == router)
    names = [f"debug {d}" for d in spec.operator_debugs] + [f"condition peer {p}" for p in spec.operator_conditions]
    return "left on (no applet or record of the tool names them): " + ", ".join(names)


@pytest.mark.parametrize("store", ["missing", "corrupt"])
def test_disarm_all_without_a_store_restores_routers_from_their_applets(tmp_path, store):
    with running_lab(routers=4, state_dir=tmp_path / "lab") as lab:
        original = {r: _logging(lab, r) for r in ("hub2", "spoke1")}
        before = {r: router_leftovers(lab, r) for r in lab.ports}
        assert "Crypto IPSEC debugging is on" in before["hub2"]  # the operator's
        assert _arm_like_the_agent(lab, "hub2", "192.0.2.4", "COLLECTOR_DEADMAN_HAND1") == ("isakmp",)
        assert _arm_like_the_agent(lab, "spoke1", "198.51.100.1", "COLLECTOR_DEADMAN_HAND2") == ("isakmp", "ipsec")
        assert _logging(lab, "hub2") != original["hub2"] and router_leftovers(lab, "hub2") != before["hub2"]
        state = tmp_path / "state"
        if store == "corrupt":
            state.mkdir()
            (state / "state.db").write_bytes(b"\x00garbage" * 3000)
            garbage = (state / "state.db").read_bytes()

        proc = cli("disarm", "--all", "-i", str(lab.inventory_path), "--state", str(state), cwd=tmp_path)

        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "restoring from the routers' own applets" in proc.stderr
        lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
        assert lines["hub2"].startswith("clean: applets COLLECTOR_DEADMAN_HAND1; restored: no debug crypto isakmp; "
                                        "no debug crypto condition peer ipv4 192.0.2.4; logging buffered")
        assert "no event manager applet COLLECTOR_DEADMAN_HAND1" in lines["hub2"]
        assert lines["hub2"].endswith(_not_ours(lab, "hub2"))
        assert lines["spoke1"].startswith("clean: applets COLLECTOR_DEADMAN_HAND2; restored: no debug crypto ipsec; "
                                          "no debug crypto isakmp; no debug crypto condition peer ipv4 198.51.100.1")
        assert lines["spoke1"].endswith("no crypto debug, no debug condition")
        assert lines["hub1"] == "clean: no COLLECTOR_DEADMAN_* applet; no crypto debug, no debug condition"
        for router in lab.ports:
            assert router_leftovers(lab, router) == before[router], router  # none of ours, the operator's as it was
        for router in ("hub2", "spoke1"):
            assert _logging(lab, router) == original[router]
        if store == "missing":
            assert not state.exists()  # the sweep never creates a state store
        else:
            assert (state / "state.db").read_bytes() == garbage
            assert sorted(os.listdir(state)) == ["state.db"]


def test_sweep_leaves_a_debug_it_did_not_set_on_and_names_it(tmp_path):
    with running_lab(routers=4, state_dir=tmp_path / "lab") as lab:
        with ConnectHandler(**lab.connect_params("hub1")) as conn:  # someone else's debug, no applet
            conn.enable()
            conn.send_command("debug crypto ipsec")
        before = router_leftovers(lab, "hub1")
        proc = cli("disarm", "--hosts", "hub1", "--from-routers", "-i", str(lab.inventory_path), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout == ("hub1: clean: no COLLECTOR_DEADMAN_* applet; left on (no applet or record of the "
                               "tool names them): debug ipsec\n")
        assert router_leftovers(lab, "hub1") == before == ["Crypto IPSEC debugging is on"]  # left alone


def test_disarm_with_a_usable_store_undoes_the_recorded_steps_then_sweeps_unknown_applets(tmp_path):
    from collector.core.steps import Step
    from collector.state import StateStore

    with running_lab(routers=4, state_dir=tmp_path / "lab") as lab:
        original = _logging(lab, "hub2")
        before = {r: router_leftovers(lab, r) for r in ("hub2", "spoke1")}
        debugs = _arm_like_the_agent(lab, "hub2", "192.0.2.4", "COLLECTOR_DEADMAN_HAND1")
        _arm_like_the_agent(lab, "spoke1", "198.51.100.1", "COLLECTOR_DEADMAN_HAND2")  # not in the store
        with StateStore(tmp_path / "state" / "state.db") as store:
            store.create_incident("hand1", "k", "invalid-spi", routers=["hub2"])
            steps = [
                Step(("logging buffered 1000000 debugging",),
                     (f"logging buffered {original.buffered_size} {original.buffered_level}",), "config", "log"),
                Step(("event manager applet COLLECTOR_DEADMAN_HAND1",),
                     ("no event manager applet COLLECTOR_DEADMAN_HAND1",), "config", "applet"),
                Step(("debug crypto condition peer ipv4 192.0.2.4",),
                     ("no debug crypto condition peer ipv4 192.0.2.4",), "exec", "cond"),
            ] + [Step((f"debug crypto {d}",), (f"no debug crypto {d}",), "exec", d) for d in debugs]
            for index, step in enumerate(steps):
                store.begin_step("hand1", "hub2", index, step)
                store.set_step_status("hand1", "hub2", index, "applied")

        proc = cli("disarm", "--hosts", "hub2,spoke1", "-i", str(lab.inventory_path), "--state",
                   str(tmp_path / "state"), cwd=tmp_path)

        lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
        # hub2's console logging is restored by nobody (the store's steps do not say), so
        # the sweep that follows finds no applet and only checks what it can
        assert lines["hub2"] == ("recorded steps: undone; clean: no COLLECTOR_DEADMAN_* applet; "
                                 + _not_ours(lab, "hub2")), proc.stdout
        assert lines["spoke1"].startswith("recorded steps: nothing armed; clean: applets COLLECTOR_DEADMAN_HAND2")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for router in ("hub2", "spoke1"):
            assert router_leftovers(lab, router) == before[router], router
        with StateStore(tmp_path / "state" / "state.db") as store:
            assert store.armed_routers() == []
