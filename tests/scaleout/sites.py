"""Helpers for the scale-out tests: an inventory split into sites, worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def site_of(name: str) -> str:
    """Hubs in one data centre, spokes in another: every hub-spoke tunnel crosses sites."""
    return "east" if name.startswith("hub") else "west"


def split_inventory(lab_inventory: Path, target: Path) -> Path:
    data = yaml.safe_load(lab_inventory.read_text())
    data["groups"]["lab"].pop("site", None)
    for name, host in data["hosts"].items():
        host["site"] = site_of(name)
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


class WorkerProcess:
    """`collector worker --site NAME` as a separate process (the way a jump host runs it)."""

    def __init__(self, site: str, broker: str, inventory: Path, folder: Path, *, visibility: float = 4.0,
                 extra: tuple[str, ...] = ()):
        self.site = site
        self.state = folder / f"site-{site}"
        self.log = folder / f"worker-{site}.log"
        self.tool_state = folder / f"tool-{site}"
        self.tool_state.mkdir(parents=True, exist_ok=True)
        self.args = [sys.executable, "-m", "collector", "worker", "--site", site, "--broker", broker,
                     "-i", str(inventory), "--state", str(self.state), "--concurrency", "8", *extra]
        self.env = {**os.environ, "COLLECTOR_STATE": str(self.tool_state),
                    "COLLECTOR_VISIBILITY_TIMEOUT": str(visibility)}
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        handle = self.log.open("ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                        cwd=REPO)
        handle.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no acknowledgement."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_for_workers(broker: str, sites: list[str], timeout: float = 60.0) -> None:
    """Until a worker consumes each site's queue (a `ping` task answered through it)."""
    from collector.scaleout.remote import SiteClient

    client = SiteClient(broker, timeout=2)
    deadline = time.monotonic() + timeout
    try:
        for site in sites:
            while True:
                if client.ping(site, timeout=2):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"no worker answers on site {site}")
    finally:
        client.close()
