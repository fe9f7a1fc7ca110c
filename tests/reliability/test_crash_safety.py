"""SIGKILL of `collector watch` at each stage of an incident, then a restart.

The kill moments are found from outside, as an operator would see them: the state store
(steps recorded and applied per router, the incident state) and the bundle folder (a
hidden `.partial` folder while a bundle is being written). Nothing in the product is
there for the tests.

After every kill: the SQLite state store passes an integrity check and still says what
is armed; no bundle that is not finished carries a final name; a restart reconciles
from the store (captures again what was being captured, then disarms), and the routers,
read over SSH, are clean. When the agent cannot reach an armed router, the on-box
dead-man applet disarms it by itself.
"""

from __future__ import annotations

import hashlib
import signal
import sqlite3
from pathlib import Path

import pytest
from reliability_lab import (
    armed_by_router,
    both_armed,
    bundles,
    desync_ends,
    fast_playbook,
    first_line,
    incident_states,
    manifest,
    repeat_line,
    router_leftovers,
    run_cli,
    start_watch,
    store_at,
    wait_for,
    watch_args,
)

from collector.lab.runner import running_lab

pytestmark = pytest.mark.e2e

STAGES = ("one-end-armed", "both-armed", "capturing", "writing-bundle")


def _kill(agent) -> None:
    agent.send_signal(signal.SIGKILL)
    agent.wait(timeout=30)
    assert agent.returncode == -signal.SIGKILL


def _applied(state_dir: Path, router: str, command: str) -> bool:
    db = state_dir / "state.db"
    if not db.exists():
        return False
    with store_at(state_dir) as store:
        return any(s.status == "applied" and command in s.step.do for s in store.armed_steps(router))


def _partial_bundle(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.name.startswith(".") and p.name.endswith(".partial") and p.is_dir()]


def _store_is_sound(state_dir: Path) -> None:
    with sqlite3.connect(state_dir / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with store_at(state_dir) as store:  # the agent's own reader opens it too
        assert store.schema_version >= 1
        assert store.events(), "the events seen before the kill are gone"


def _finished_bundles_are_whole(root: Path) -> None:
    """Every folder under a final name has a manifest whose hashes match its files."""
    for bundle in bundles(root):
        data = manifest(bundle)
        for entry in data["files"]:
            body = (bundle / entry["path"]).read_bytes()
            assert hashlib.sha256(body).hexdigest() == entry["sha256"], (bundle, entry["path"])
    for tarball in root.glob("*.tar.gz") if root.is_dir() else []:
        assert Path(str(tarball)[: -len(".tar.gz")]).is_dir()


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_at_each_stage_then_restart_reconciles(tmp_path, stage):
    playbook = fast_playbook(tmp_path, **{"within: 10m": "within: 20m", "window: 10m": "window: 20m"})
    state, out = tmp_path / "state", tmp_path / "bundles"
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        args = watch_args(lab, tmp_path, playbook)
        if stage == "one-end-armed":
            lab.control.fault(sender, slow_seconds=0.4)  # the sender arms seconds after the receiver
        agent = start_watch(args, tmp_path, tmp_path / "agent.log")
        try:
            assert wait_for(lambda: (state / "state.db").exists(), 60)
            first_line(lab)
            if stage == "one-end-armed":
                assert wait_for(lambda: _applied(state, receiver, "debug crypto ipsec"), 60)
                assert not _applied(state, sender, "debug crypto ipsec")
            else:
                assert wait_for(lambda: both_armed(state), 60), (tmp_path / "agent.log").read_text()
                if stage == "capturing":
                    lab.control.fault(sender, slow_seconds=0.4)
                repeat_line(lab)
                if stage == "capturing":
                    assert wait_for(lambda: any(s == "capturing" for s, _ in incident_states(state)), 60)
                elif stage == "writing-bundle":
                    assert wait_for(lambda: _partial_bundle(out), 60, step=0.002), (tmp_path / "agent.log").read_text()
        finally:
            _kill(agent)

        # -- right after the kill ---------------------------------------------------------------
        _store_is_sound(state)
        _finished_bundles_are_whole(out)
        armed = armed_by_router(state)
        if stage == "writing-bundle":
            # The routers were disarmed before the bundle was written; the bundle is unfinished.
            assert armed == {}
            assert _partial_bundle(out) and not bundles(out)
        else:
            assert receiver in armed
            assert router_leftovers(lab, receiver), "the receiver should still be armed after SIGKILL"
        lab.control.fault(sender, slow_seconds=0.0)

        # -- a restart reconciles ------------------------------------------------------------------
        restart = run_cli("watch", *args, "--max-seconds", "2", cwd=tmp_path)
        assert restart.returncode == 0, restart.stderr
        assert "Traceback" not in restart.stderr
        for router in armed:
            if stage != "capturing":  # a salvaged capture disarms through its own incident
                assert f"start-up reconcile: {router}: clean" in restart.stderr, restart.stderr
        _store_is_sound(state)
        _finished_bundles_are_whole(out)
        assert armed_by_router(state) == {}
        assert not [s for s, _ in incident_states(state) if s in ("armed", "capturing")]
        for router in (receiver, sender):
            assert router_leftovers(lab, router) == [], router

        if stage == "capturing":
            # What the killed run was capturing is captured again before the disarm.
            (bundle,) = bundles(out)
            data = manifest(bundle)
            assert any("captured again at the next start" in note for note in data["notes"])
            assert data["trigger_lines"] and all("RECVD_PKT_INV_SPI" in line for line in data["trigger_lines"])
            assert {r["name"] for r in data["routers"]} == {receiver, sender}
            assert all(a["status"].startswith("undone") for a in data["router_changes"])
        if stage == "writing-bundle":
            # The killed run had staged every capture and disarm on disk: the restart seals the
            # whole bundle from them (not the cut-short folder), marked incomplete, and says so.
            assert "sealed at start-up from the capture it had kept (NOT complete)" in restart.stderr, restart.stderr
            assert not _partial_bundle(out)
            (bundle,) = bundles(out)
            data = manifest(bundle)
            assert data["complete"] is False
            assert any("stopped" in reason for reason in data["incomplete_reasons"])
            assert any("sealed it from the capture the stopped run had kept" in note for note in data["notes"])
            assert {r["name"] for r in data["routers"]} == {receiver, sender}
            assert all(r["error"] is None for r in data["routers"])
            assert data["trigger_lines"] and data["debug_lines_after_arming"][receiver] > 0
            assert data["router_changes"] and all(a["status"].startswith("undone") for a in data["router_changes"])
            assert all(v.startswith("clean") for v in data["disarm_verification"].values()), data["disarm_verification"]
            (record,) = [(s, r) for s, r in incident_states(state) if s == "captured"]
            assert "stopped" in record[1]


def test_dead_man_applet_disarms_a_router_the_agent_cannot_reach(tmp_path):
    playbook = fast_playbook(tmp_path, **{"within: 10m": "within: 3m", "window: 10m": "window: 3m"})
    state = tmp_path / "state"
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        args = watch_args(lab, tmp_path, playbook)
        agent = start_watch(args, tmp_path, tmp_path / "agent.log")
        try:
            assert wait_for(lambda: (state / "state.db").exists(), 60)
            first_line(lab)
            assert wait_for(lambda: both_armed(state), 60), (tmp_path / "agent.log").read_text()
        finally:
            _kill(agent)
        # The receiver is now out of reach of the jump host.
        lab.control.fault(receiver, refuse_connections=True)
        restart = run_cli("watch", *args, "--max-seconds", "1", cwd=tmp_path)
        # exit 1: a router could not be read, and the run says which
        assert restart.returncode == 1, restart.stderr
        assert "Traceback" not in restart.stderr
        assert f"collector: {receiver}: could not be read" in restart.stderr, restart.stderr
        assert f"start-up reconcile: {receiver}: disarm incomplete" in restart.stderr, restart.stderr
        assert "dead-man applet will finish it" in restart.stderr
        assert f"start-up reconcile: {sender}: clean" in restart.stderr
        assert list(armed_by_router(state)) == [receiver]  # still owed, and the store knows it

        # Nobody can reach it; its own countdown (window 3m + grace 2m) fires on the box.
        lab.control.step(6 * 60)
        assert wait_for(lambda: lab.control.state(receiver)["faults"]["refuse_connections"], 5)
        lab.control.fault(receiver, refuse_connections=False)
        assert wait_for(lambda: router_leftovers(lab, receiver) == [], 20)

        # Reachable again: the next start settles the store (the undo finds nothing left).
        again = run_cli("watch", *args, "--max-seconds", "1", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert f"start-up reconcile: {receiver}: clean" in again.stderr, again.stderr
        assert armed_by_router(state) == {}
        for router in (receiver, sender):
            assert router_leftovers(lab, router) == []


def test_cron_run_killed_during_capture_is_captured_by_the_next_run(tmp_path):
    playbook = fast_playbook(tmp_path, **{"within: 10m": "within: 20m", "window: 10m": "window: 20m"})
    state, out = tmp_path / "state", tmp_path / "bundles"
    with running_lab(routers=6, scenarios=["desync"], state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        args = ["--once", *watch_args(lab, tmp_path, playbook)]
        first_line(lab)
        armed = run_cli("watch", *args, cwd=tmp_path)  # cron run 1: sees the first line, arms both ends
        assert armed.returncode == 0 and both_armed(state), armed.stderr
        lab.control.fault(sender, slow_seconds=0.4)
        repeat_line(lab)
        agent = start_watch(args, tmp_path, tmp_path / "agent.log")  # cron run 2: the repeat, a slow capture
        try:
            assert wait_for(lambda: any(s == "capturing" for s, _ in incident_states(state)), 60), \
                (tmp_path / "agent.log").read_text()
        finally:
            _kill(agent)
        _store_is_sound(state)
        assert not bundles(out)
        lab.control.fault(sender, slow_seconds=0.0)
        nxt = run_cli("watch", *args, cwd=tmp_path)  # cron run 3
        assert nxt.returncode == 0, nxt.stderr
        assert "stopped during capture, captured again at start-up" in nxt.stderr, nxt.stderr
        (bundle,) = bundles(out)
        assert bundle.name in nxt.stdout
        assert any("captured again" in note for note in manifest(bundle)["notes"])
        assert armed_by_router(state) == {}
        for router in (receiver, sender):
            assert router_leftovers(lab, router) == []
