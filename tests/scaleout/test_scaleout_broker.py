"""The broker restarted under a running worker: the worker reconnects and serves its
queue again; nothing else is needed from the operator."""

from __future__ import annotations

import time

import pytest

from collector.scaleout.redis_server import free_port, running_redis
from collector.scaleout.remote import SiteClient
from tests.scaleout.sites import WorkerProcess, wait_for_workers

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
