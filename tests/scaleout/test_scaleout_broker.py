"""The broker restarted: a running worker reconnects and serves its queue again, and an
incident armed through the site workers is still captured and disarmed; nothing else is
needed from the operator."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from collector.demo import demo_playbook
from collector.inventory import load_inventory
from collector.scaleout.guards import RouterGuards
from collector.scaleout.redis_server import free_port, running_redis
from collector.scaleout.remote import SiteClient, SiteDark
from collector.watch import WatchOptions, run_daemon
from tests.e2e.test_agent_lab import bundles, router_leftovers
from tests.scaleout.sites import WorkerProcess, site_labs, wait_for_workers
from tests.scaleout.test_scaleout_sites import LabClock, cursors, ledger

pytestmark = pytest.mark.e2e

INVENTORY = """\
defaults: {username: lab, password: lab-pw}
hosts:
  hub1: {hostname: 127.0.0.1, port: 9, platform: cisco_ios, site: east}
"""


def test_a_worker_serves_its_queue_again_after_the_broker_restarts(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    port = free_port()
    with running_redis(port) as url:
        worker = WorkerProcess("east", url, inventory, tmp_path).start()
        try:
            wait_for_workers(url, ["east"])
        except BaseException:
            worker.stop()
            raise
    try:
        with running_redis(port) as url:  # the same address, empty: a restart without persistence
            client = SiteClient(url)
            try:
                deadline = time.monotonic() + 90
                while not client.ping("east", timeout=2):
                    assert worker.process.poll() is None, worker.output()[-2000:]
                    assert time.monotonic() < deadline, "the worker did not come back to the restarted broker"
            finally:
                client.close()
    finally:
        worker.stop()


def incidents(state: Path) -> list[tuple[str, str, str | None]]:
    """(incident, state, armed_at) of the correlator's store, read without locking it."""
    if not (state / "state.db").exists():
        return []
    conn = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT incident_id, state, armed_at FROM incidents").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def test_an_incident_armed_through_the_sites_survives_a_broker_restart(tmp_path):
    """Armed through both site workers, then the broker restarts (empty: no persistence): the
    workers take their routers' locks again, and the incident is still captured on the
    flow's repeat, disarmed on both routers and sealed into one complete bundle."""
    port = free_port()
    broker = ExitStack()
    url = broker.enter_context(running_redis(port))
    out = tmp_path / "bundles"
    stop = threading.Event()
    messages: list[str] = []
    with site_labs(tmp_path, routers=6, scenarios=("desync",), time_scale=0) as labs:
        workers = {site: WorkerProcess(site, url, labs.inventory_path, tmp_path).start() for site in ("east", "west")}
        options = WatchOptions(state_dir=tmp_path / "state", bundle_root=out, workers=8, max_seconds=400,
                               broker=url)
        thread = threading.Thread(target=run_daemon, args=(load_inventory(labs.inventory_path), demo_playbook(),
                                                           options, messages.append, stop))
        clock = LabClock(labs)

        def until(condition, seconds: float, what: str) -> None:
            deadline = time.monotonic() + seconds
            while not condition():
                assert thread.is_alive(), (what, messages)
                assert time.monotonic() < deadline, (what, messages, workers["east"].output()[-1500:],
                                                     workers["west"].output()[-1500:])
                time.sleep(0.1)

        try:
            wait_for_workers(url, list(workers))
            thread.start()
            until(lambda: sum(len(cursors(w.state)) for w in workers.values()) >= 6, 120, "start-up poll")
            clock.start()
            until(lambda: incidents(tmp_path / "state"), 120, "the flow's first line")  # arming begins
            clock.stop()  # no repeat (no capture) until the broker has restarted
            until(lambda: any(armed_at for _i, _s, armed_at in incidents(tmp_path / "state")), 120, "armed")
            [(incident, state, _at)] = incidents(tmp_path / "state")
            assert state == "armed"
            held = {router for w in workers.values() for _i, router, _n, status in ledger(w.state)
                    if status == "applied"}
            assert len(held) == 2, held  # both ends armed, one through each site's worker

            # a task running on the east worker when the broker goes away (its answer and its
            # acknowledgement are lost: Celery's Redis transport may stop the worker for it)
            labs.labs["east"].control.fault("hub2", slow_seconds=2)
            hub2 = load_inventory(labs.inventory_path).hosts["hub2"]
            in_flight = SiteClient(url, timeout=30)
            caller = threading.Thread(target=lambda: pytest.raises(SiteDark, in_flight.call, hub2, "poll", "hub2"))
            caller.start()
            time.sleep(1.5)
            broker.close()  # the broker goes away ...
            caller.join(timeout=60)
            in_flight.close()
            time.sleep(2)
            url = broker.enter_context(running_redis(port))  # ... and comes back empty
            guards = RouterGuards(redis.Redis.from_url(url), cap=10)
            # each worker takes its router's lock again, for this incident
            until(lambda: {r for r in held if guards.holder(r) == incident} == held, 60, "locks taken again")
            assert guards.armed_count() == 2
            for worker in workers.values():  # both workers still alive, serving their queues
                assert worker.process.poll() is None, worker.output()[-2000:]
            wait_for_workers(url, list(workers))

            clock = LabClock(labs)
            clock.start()  # the flow repeats: capture, disarm, bundle
            until(lambda: bundles(out), 180, "the bundle")
        finally:
            clock.stop()
            stop.set()
            if thread.ident is not None:
                thread.join(timeout=60)
            for worker in workers.values():
                worker.stop()
            broker.close()
        [bundle] = bundles(out)
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["incident"] == incident
        assert manifest["complete"] is True, manifest["incomplete_reasons"]
        assert {r["name"] for r in manifest["routers"]} == held
        assert all(r["error"] is None for r in manifest["routers"])
        for worker in workers.values():
            assert {status for *_rest, status in ledger(worker.state)} == {"undone"}
        for router in held:
            assert router_leftovers(labs, router) == []
        assert [s for _i, s, _a in incidents(tmp_path / "state")] == ["captured"]
