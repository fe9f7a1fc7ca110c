"""The agent's other paths end to end: rekey transient, cron runs, syslog, SIGKILL + dead-man."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from collector.demo import demo_playbook
from collector.errors import StateStoreError
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from collector.resources import playbooks_dir
from collector.state import StateStore
from collector.watch import WatchOptions, run_daemon

from test_agent_lab import bundles, router_leftovers

pytestmark = pytest.mark.e2e


def fast_playbook(tmp_path: Path, **replace: str) -> Path:
    """The shipped playbook with a 1 s poll (the lab clock runs 10x faster)."""
    text = (playbooks_dir() / "invalid-spi.yaml").read_text().replace("interval: 60s", "interval: 1s")
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "playbook.yaml"
    path.write_text(text)
    return path


def cli(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, **kw)


def wait_for(predicate, seconds: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _store_once_created(path):
    """The daemon's state store, opened once the daemon has created it: opened while the
    daemon still writes its schema, it is (rightly) refused as locked."""
    opened = []

    def open_it() -> bool:
        try:
            opened.append(StateStore(path))
        except StateStoreError:
            return False
        return True

    assert wait_for(open_it, 30)
    return opened[0]


def test_rekey_transient_is_disarmed_at_window_end_and_not_captured(tmp_path):
    book = demo_playbook()
    book = book.model_copy(update={"within": timedelta(seconds=8), "window": timedelta(seconds=8)})
    with running_lab(routers=6, scenarios=["rekey-transient"], time_scale=10, state_dir=tmp_path / "lab") as lab:
        inventory = load_inventory(lab.inventory_path)
        options = WatchOptions(state_dir=tmp_path / "state", bundle_root=tmp_path / "bundles", workers=8,
                               max_seconds=60)
        stop = threading.Event()
        messages: list[str] = []
        thread = threading.Thread(target=run_daemon, args=(inventory, book, options, messages.append, stop))
        thread.start()
        store = _store_once_created(tmp_path / "state" / "state.db")

        def transient():
            return any(i.state == "transient" for i in store.incidents())

        try:
            assert wait_for(transient, 45), (messages, [(i.state, i.reason) for i in store.incidents()])
        finally:
            stop.set()
            thread.join(timeout=60)
        incident = next(i for i in store.incidents() if i.state == "transient")
        assert "rekey transient" in incident.reason
        assert not bundles(tmp_path / "bundles")
        assert store.armed_routers() == []
        for router in incident.routers:
            assert router_leftovers(lab, router) == []
        store.close()


def test_once_twice_keeps_cursors_and_flows_across_runs(tmp_path):
    playbook = fast_playbook(tmp_path)
    # A lab minute of 15 s: one cron pass (a few seconds, even on a loaded machine) sees
    # the flow's first line alone, and a later pass its repeat.
    with running_lab(routers=6, scenarios=["desync"], time_scale=4, state_dir=tmp_path / "lab") as lab:
        args = ("watch", "--once", "-i", str(lab.inventory_path), "--playbook", str(playbook),
                "--state", str(tmp_path / "state"), "--out", str(tmp_path / "bundles"))
        runs = []
        # cron: one pass at a time until the flow's first line has been seen and armed
        while len(runs) < 30:
            runs.append(cli(*args, cwd=tmp_path))
            assert runs[-1].returncode == 0, runs[-1].stderr
            with StateStore(tmp_path / "state" / "state.db") as store:
                if store.incidents(states=["armed"]):
                    break
            time.sleep(0.5)
        with StateStore(tmp_path / "state" / "state.db") as store:
            armed = store.incidents(states=["armed"])
            assert len(armed) == 1
            assert len(store.armed_routers()) == 2  # both ends armed by that run, still armed after it
            cursor_before = store.log_cursor(armed[0].routers[0])
            assert cursor_before is not None
        # later runs see the repeat of the same flow and capture it
        while not bundles(tmp_path / "bundles") and len(runs) < 80:
            time.sleep(1)
            runs.append(cli(*args, cwd=tmp_path))
            assert runs[-1].returncode == 0, runs[-1].stderr
        found = bundles(tmp_path / "bundles")
        assert found, runs[-1].stderr
        manifest = json.loads((found[0] / "manifest.json").read_text())
        assert manifest["armed_before_repeat"] is True
        with StateStore(tmp_path / "state" / "state.db") as store:
            assert store.armed_routers() == []
            incident = store.incident(manifest["incident"])
            assert incident.state == "captured"
            # the first and the repeated line, each recorded once across all the runs
            events = [e for e in store.events(key=incident.key) if e.source == "poll"]
            assert len({e.event_id for e in events}) == len(events) >= 2


def test_syslog_line_triggers_and_a_spoofed_one_arms_nothing(tmp_path):
    book = demo_playbook()
    sources = book.sources.model_copy(update={
        "poll": book.sources.poll.model_copy(update={"interval": timedelta(hours=1)}),
        "qfp": book.sources.qfp.model_copy(update={"enabled": False})})
    book = book.model_copy(update={"sources": sources})
    port = _free_udp_port()
    with running_lab(routers=6, scenarios=["desync"], time_scale=10, state_dir=tmp_path / "lab",
                     syslog_to=("127.0.0.1", port)) as lab:
        inventory = load_inventory(lab.inventory_path)
        options = WatchOptions(state_dir=tmp_path / "state", bundle_root=tmp_path / "bundles", workers=8,
                               max_seconds=90, syslog=("127.0.0.1", port))
        stop = threading.Event()
        messages: list[str] = []
        thread = threading.Thread(target=run_daemon, args=(inventory, book, options, messages.append, stop))
        thread.start()
        try:
            assert wait_for(lambda: any("syslog receiver" in m for m in messages), 20)
            # A forged line for hub2 from an address that is not in the inventory.
            spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            spoof.bind(("127.0.0.99", 0))
            forged = ("<164>99: *Nov 27 10:00:00.000: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has "
                      "invalid spi for destaddr=198.51.100.2, prot=50, spi=0x11111111(286331153), srcaddr=192.0.2.4")
            for _ in range(3):
                spoof.sendto(forged.encode(), ("127.0.0.1", port))
            spoof.close()
            assert wait_for(lambda: bundles(tmp_path / "bundles"), 80), messages
        finally:
            stop.set()
            thread.join(timeout=60)
        with StateStore(tmp_path / "state" / "state.db") as store:
            keys = [i.key for i in store.incidents()]
            assert keys and not any("0x11111111" in k.lower() or "286331153" in k for k in keys)
            sources = {e.source for e in store.events()}
            assert "syslog" in sources


def test_sigkill_while_armed_dead_man_disarms_and_restart_reconciles(tmp_path):
    playbook = fast_playbook(tmp_path, **{"within: 10m": "within: 20m", "window: 10m": "window: 20m"})
    with running_lab(routers=6, scenarios=["desync"], time_scale=10, state_dir=tmp_path / "lab") as lab:
        args = ["-i", str(lab.inventory_path), "--playbook", str(playbook), "--state", str(tmp_path / "state"),
                "--out", str(tmp_path / "bundles")]
        agent = subprocess.Popen([sys.executable, "-m", "collector", "watch", *args], cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        db = tmp_path / "state" / "state.db"

        def both_armed():
            if not db.exists():
                return False
            with StateStore(db) as store:
                steps = store.armed_steps()
                routers = {s.router for s in steps}
                return len(routers) == 2 and all(s.status == "applied" for s in steps)

        try:
            assert wait_for(both_armed, 60), "agent never armed both ends"
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=30)
        with StateStore(db) as store:
            armed = store.armed_routers()
        assert len(armed) == 2
        assert all(router_leftovers(lab, r) for r in armed), "routers should still be armed after SIGKILL"

        # The agent is gone; the on-box dead-man applet fires when its countdown ends.
        lab.control.step(25 * 60)
        assert wait_for(lambda: all(router_leftovers(lab, r) == [] for r in armed), 20)

        # A restarted daemon reconciles from its state and says what it cleaned.
        restart = cli("watch", *args, "--max-seconds", "2", cwd=tmp_path)
        assert restart.returncode == 0, restart.stderr
        for router in armed:
            assert f"start-up reconcile: {router}:" in restart.stderr
        with StateStore(db) as store:
            assert store.armed_routers() == []


def _free_udp_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_asr_silent_drops_are_reported_from_qfp_counters_without_a_log_line(tmp_path):
    book = demo_playbook()
    sources = book.sources.model_copy(update={
        "qfp": book.sources.qfp.model_copy(update={"interval": timedelta(seconds=1)})})
    book = book.model_copy(update={"sources": sources})
    with running_lab(routers=6, scenarios=["asr-silent"], time_scale=10, state_dir=tmp_path / "lab") as lab:
        silent = next(p for p in lab.control.pairs() if p["scenario"] == "asr-silent")
        receiver = silent["receiver"]
        options = WatchOptions(state_dir=tmp_path / "state", bundle_root=tmp_path / "bundles", workers=8,
                               max_seconds=60)
        stop = threading.Event()
        messages: list[str] = []
        thread = threading.Thread(target=run_daemon, args=(load_inventory(lab.inventory_path), book, options,
                                                           messages.append, stop))
        thread.start()
        try:
            assert wait_for(lambda: any(m.startswith(f"{receiver}: invalid-SPI drops in QFP counters") for m in messages), 45), messages
        finally:
            stop.set()
            thread.join(timeout=60)
        with StateStore(tmp_path / "state" / "state.db") as store:
            qfp = [e for e in store.events(router=receiver) if e.source == "qfp"]
            assert qfp and "IN_US_V4_PKT_SA_NOT_FOUND_SPI +" in qfp[0].raw
            assert not [e for e in store.events(router=receiver) if e.source == "poll"]  # nothing logged
            assert store.incidents() == []  # nothing to arm on: no flow without a log line
