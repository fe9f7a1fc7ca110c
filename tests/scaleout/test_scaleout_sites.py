"""Two sites end to end: a real Redis server, two lab processes (`collector lab up
--serve`, one per site: hubs in `east`, spokes in `west`), two `collector worker`
processes (one per site, each reaching only its own site's lab over SSH) and the
correlator (`watch --broker`)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from collector.demo import demo_playbook
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from collector.scaleout.remote import SiteClient
from collector.watch import WatchOptions, run_daemon
from tests.e2e.test_agent_lab import bundles, router_leftovers
from tests.scaleout.sites import WorkerProcess, site_labs, site_of, split_inventory, wait_for_workers

pytestmark = pytest.mark.e2e


def ledger(state: Path) -> list[tuple[str, str, int, str]]:
    """(incident, router, step, status) of a worker's step ledger, read without locking it."""
    conn = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT incident_id, router, step_index, status FROM armed_steps "
                            "ORDER BY incident_id, router, step_index").fetchall()
    finally:
        conn.close()


def cursors(state: Path) -> set[str]:
    """Routers whose log a worker has read (its log cursors)."""
    if not (state / "state.db").exists():
        return set()
    conn = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT router FROM log_cursors")}
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()


class LabClock:
    """Runs the frozen clocks of every site's lab at 10 x from when it is started, in step:
    the flow begins only once every process is up and has read the routers' logs (a slow
    machine must not turn the flow's first line into an old one)."""

    def __init__(self, labs):
        self.labs = labs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.labs.step(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def two_sites(tmp_path, redis_url):
    """A lab process per site (clocks frozen) with a desynchronised hub-spoke tunnel between
    the sites, a worker process per site; yields (the labs, inventory path, workers by site)."""
    with site_labs(tmp_path, routers=6, scenarios=("desync",), time_scale=0) as lab:
        inventory = lab.inventory_path
        workers = {site: WorkerProcess(site, redis_url, inventory, tmp_path).start() for site in ("east", "west")}
        try:
            wait_for_workers(redis_url, list(workers))
            yield lab, inventory, workers
        finally:
            for worker in workers.values():
                worker.stop()


def test_desync_across_two_sites_is_armed_captured_and_disarmed_through_each_sites_worker(
        tmp_path, redis_url, two_sites):
    lab, inventory, workers = two_sites
    out = tmp_path / "bundles"
    options = WatchOptions(state_dir=tmp_path / "state", bundle_root=out, workers=8, max_seconds=120,
                           broker=redis_url)
    stop = threading.Event()
    messages: list[str] = []
    thread = threading.Thread(target=run_daemon, args=(load_inventory(inventory), demo_playbook(), options,
                                                       messages.append, stop))
    thread.start()
    clock = LabClock(lab)
    deadline = time.monotonic() + 100
    try:
        while sum(len(cursors(w.state)) for w in workers.values()) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)  # the correlator's start-up poll, through both sites
        clock.start()
        while not bundles(out) and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.5)
    finally:
        clock.stop()
        stop.set()
        thread.join(timeout=60)
    found = bundles(out)
    assert len(found) == 1, (messages, workers["east"].output()[-2000:], workers["west"].output()[-2000:])
    manifest = json.loads((found[0] / "manifest.json").read_text())
    roles = {r["role"]: r["name"] for r in manifest["routers"]}
    assert set(roles) == {"receiver", "sender"}
    assert {site_of(roles["receiver"]), site_of(roles["sender"])} == {"east", "west"}  # one end per site
    # ... each end on its own site's lab process, the only one that serves it
    ends = {lab.lab_of(roles["receiver"]).process.pid, lab.lab_of(roles["sender"]).process.pid}
    assert len(ends) == 2
    assert manifest["complete"] is True, manifest["incomplete_reasons"]
    assert manifest["armed_before_repeat"] is True
    assert all(r["error"] is None for r in manifest["routers"])
    # the manifest says which site's worker captured each end
    assert {r["name"]: r["site"] for r in manifest["routers"]} == {n: site_of(n) for n in roles.values()}
    assert all(r["site_worker"].startswith(f"{r['site']}@") for r in manifest["routers"])

    # `collector incidents` says which site did each step, as text and as JSON
    from click.testing import CliRunner

    from collector.cli import cli
    listed = CliRunner().invoke(cli, ["incidents", "--state", str(tmp_path / "state"), "--json"])
    assert listed.exit_code == 0, listed.output
    [incident] = [i for i in json.loads(listed.output) if i["incident"] == manifest["incident"]]
    steps = {(w["router"], w["action"]): w for w in incident["work"]}
    assert set(steps) == {(n, a) for n in roles.values() for a in ("arm", "capture", "disarm")}, steps
    for (router, _action), work in steps.items():
        assert work["site"] == site_of(router) and work["worker"].startswith(f"{site_of(router)}@"), work
        assert work["ok"] is True, work
    text = CliRunner().invoke(cli, ["incidents", "--state", str(tmp_path / "state")]).output
    for router in roles.values():
        assert f"{router} arm: site {site_of(router)} ({site_of(router)}@" in text, text

    # Each end was armed and disarmed by its own site's worker: its steps are in that
    # worker's ledger only, all undone; and nothing is left on either router.
    for worker in workers.values():
        worker.stop()
    for site, worker in workers.items():
        steps = ledger(worker.state)
        end = roles["receiver"] if site_of(roles["receiver"]) == site else roles["sender"]
        assert steps and {router for _i, router, _n, _s in steps} == {end}
        assert {status for *_rest, status in steps} == {"undone"}, steps
    for router in roles.values():
        assert router_leftovers(lab, router) == []


def test_worker_killed_while_arming_undoes_its_steps_after_restart_and_applies_none_twice(tmp_path, redis_url):
    faults = {"hub1": {"slow_seconds": 0.4}}  # each command takes a while: time to kill mid-arm
    with running_lab(routers=6, time_scale=10, state_dir=tmp_path / "lab", faults=faults) as lab:
        inventory = split_inventory(lab.inventory_path, tmp_path / "inventory.yaml")
        hub1 = load_inventory(inventory).hosts["hub1"]
        worker = WorkerProcess("east", redis_url, inventory, tmp_path).start()
        client = SiteClient(redis_url, timeout=180)
        try:
            wait_for_workers(redis_url, ["east"])
            answer: list = []
            caller = threading.Thread(target=lambda: answer.append(
                client.call(hub1, "arm", "inc-kill", "hub1", "192.0.2.3", 600.0, None)))
            caller.start()
            deadline = time.monotonic() + 60
            applied: list = []
            while time.monotonic() < deadline:
                if worker.state.joinpath("state.db").exists():
                    applied = [s for s in ledger(worker.state) if s[3] == "applied"]
                    if applied:
                        break
                time.sleep(0.05)
            assert applied, "the arm never applied a step"
            worker.kill()
            at_kill = ledger(worker.state)
            assert any(s[3] in ("applied", "pending") for s in at_kill)

            worker.start()  # the same site's worker comes back; the task is delivered again
            caller.join(timeout=150)
            assert answer, worker.output()[-3000:]
            result = answer[0]
            assert result.armed is False and "interrupted" in result.error, result
            after = ledger(worker.state)
            # the same steps as at the kill, none added (no step applied again), all undone
            assert [s[:3] for s in after] == [s[:3] for s in at_kill]
            assert {s[3] for s in after} == {"undone"}, after
            assert router_leftovers(lab, "hub1") == []
        finally:
            client.close()
            worker.stop()


def test_two_correlators_arming_one_router_at_once_get_one_arm_and_one_refusal(tmp_path, redis_url, two_sites):
    lab, inventory, _workers = two_sites
    spoke2 = load_inventory(inventory).hosts["spoke2"]
    first, second = SiteClient(redis_url, timeout=120), SiteClient(redis_url, timeout=120)
    answers: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def arm(client, incident):
        barrier.wait()
        answers[incident] = client.call(spoke2, "arm", incident, "spoke2", "198.51.100.1", 600.0, None)

    threads = [threading.Thread(target=arm, args=(c, i)) for c, i in ((first, "incA"), (second, "incB"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        armed = [i for i, r in answers.items() if r.armed]
        refused = [r for r in answers.values() if not r.armed]
        assert len(armed) == 1 and len(refused) == 1, answers
        assert refused[0].refused and f"held by incident {armed[0]}" in refused[0].error
        assert router_leftovers(lab, "spoke2")
    finally:
        from collector.core.decide import Release
        from collector.scaleout.codec import to_json
        for incident in answers:
            first.call(spoke2, "release", to_json(Release(incident, "spoke2", None)))
        first.close()
        second.close()
    assert router_leftovers(lab, "spoke2") == []


def bundle_files(bundle: Path) -> dict[str, str]:
    """Every per-host output file of a collection bundle, by path inside it."""
    return {str(p.relative_to(bundle)): p.read_text() for p in sorted(bundle.rglob("*"))
            if p.is_file() and p.parent != bundle}


def test_collect_through_the_sites_gives_the_same_bundle_as_a_local_collect(tmp_path, redis_url, two_sites):
    import subprocess
    import sys

    _lab, inventory, _workers = two_sites
    commands = ["-c", "show running-config", "-c", "show ip interface brief", "-c", "show crypto isakmp sa"]

    def collect(out: Path, *extra: str) -> Path:
        done = subprocess.run([sys.executable, "-m", "collector", "collect", "-i", str(inventory), *commands,
                               "--out", str(out), *extra], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        [bundle] = [p for p in out.iterdir() if p.is_dir() and p.name.endswith("_collect")]
        return bundle

    local = collect(tmp_path / "local")
    remote = collect(tmp_path / "remote", "--broker", redis_url)
    local_files, remote_files = bundle_files(local), bundle_files(remote)
    assert len(local_files) >= 6 * 3  # raw output of 3 commands on 6 routers, at least
    assert remote_files == local_files
    manifest = json.loads((remote / "manifest.json").read_text())
    assert manifest["complete"] is True and len(manifest["hosts"]) == 6


def test_disarm_through_the_sites_undoes_what_a_site_worker_armed(tmp_path, redis_url, two_sites):
    import subprocess
    import sys

    lab, inventory, _workers = two_sites
    hosts = load_inventory(inventory).hosts
    client = SiteClient(redis_url, timeout=120)
    try:
        for name, peer in (("hub1", "192.0.2.3"), ("spoke1", "198.51.100.1")):
            assert client.call(hosts[name], "arm", f"inc-{name}", name, peer, 600.0, None).armed
    finally:
        client.close()
    assert router_leftovers(lab, "hub1") and router_leftovers(lab, "spoke1")
    done = subprocess.run([sys.executable, "-m", "collector", "disarm", "-i", str(inventory), "--all",
                           "--broker", redis_url], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "hub1: clean" in done.stdout and "spoke1: clean" in done.stdout
    for name in ("hub1", "spoke1"):
        assert router_leftovers(lab, name) == []
    import redis

    from collector.scaleout.guards import RouterGuards
    guards = RouterGuards(redis.Redis.from_url(redis_url), cap=4)
    assert guards.holder("hub1") is None and guards.holder("spoke1") is None and guards.armed_count() == 0
