"""Helpers for the scale-out tests: a lab process per site, worker processes."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
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


SITE_ROUTERS = {"east": "hub*", "west": "spoke*"}  # the same split as `site_of`


def _free_range(count: int) -> int:
    """A base port with `count` free ports from it and a free control port just below."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(10_000, 32_000 - count)
        try:
            for port in range(base - 1, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


class LabProcess:
    """`collector lab up --serve PATTERN` as its own process: one site's routers. Every lab
    process models the whole seeded topology (a tunnel's traffic needs both of its ends in
    one model) but serves SSH and syslog only for its own site's routers."""

    def __init__(self, site: str, folder: Path, *, routers: int = 6, scenarios: tuple[str, ...] = ("desync",),
                 time_scale: float = 0.0, seed: int = 0, syslog_to: str | None = None):
        self.site = site
        self.state = folder / f"lab-{site}"
        self.args = [sys.executable, "-m", "collector", "lab", "up", "--routers", str(routers),
                     "--time-scale", repr(time_scale), "--seed", str(seed), "--state-dir", str(self.state),
                     "--serve", SITE_ROUTERS[site], *(a for s in scenarios for a in ("--scenario", s)),
                     *(("--syslog-to", syslog_to) if syslog_to else ())]
        self.process: subprocess.Popen | None = None
        self.control = None

    def start(self, timeout: float = 90.0) -> "LabProcess":
        from collector.lab.settings import control_for, read_control_file

        self.state.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # a port taken between the probe and the bind: another range
            args = [*self.args, "--base-port", str(_free_range(10))]
            with (self.state / "lab-process.log").open("ab") as log:
                self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                info = read_control_file(self.state)
                if info is not None and info.get("pid") == self.process.pid:
                    self.control = control_for(self.state)
                    return self
                time.sleep(0.05)
            if self.process.poll() is None:
                self.stop()
                break
        raise AssertionError(f"lab process for {self.site} did not start: "
                             + (self.state / "lab-process.log").read_text(errors="replace")[-2000:])

    def stop(self) -> None:
        if self.control is not None:
            self.control.close()
        terminate(self.process)


class SiteLabs:
    """The lab processes of every site, and one inventory with each host's `site`."""

    def __init__(self, labs: dict[str, LabProcess], inventory: Path):
        self.labs = labs
        self.inventory_path = inventory
        data = yaml.safe_load(inventory.read_text())
        self._hosts = data["hosts"]
        self._defaults = data["defaults"]

    def lab_of(self, router: str) -> LabProcess:
        return self.labs[self._hosts[router]["site"]]

    def connect_params(self, router: str) -> dict:
        """netmiko's ConnectHandler arguments for `router`, on its own site's lab process."""
        host = {**self._defaults, **self._hosts[router]}
        return {"device_type": host["platform"], "host": host["hostname"], "port": host["port"],
                "username": host["username"], "password": host["password"], "secret": host["secret"]}

    def step(self, seconds: float) -> None:
        """Every site's lab clock forward by the same lab time."""
        for lab in self.labs.values():
            lab.control.step(seconds)


@contextmanager
def site_labs(folder: Path, *, syslog: dict[str, str] | None = None, **lab_options):
    """A lab process per site (east: hubs, west: spokes) and the merged inventory; with
    `syslog` (site -> HOST:PORT) each site's routers send their syslog there."""
    labs: dict[str, LabProcess] = {}
    try:
        for site in SITE_ROUTERS:
            labs[site] = LabProcess(site, folder, syslog_to=(syslog or {}).get(site), **lab_options).start()
        base = yaml.safe_load((labs["east"].state / "inventory.yaml").read_text())
        base["hosts"] = {}
        for site, lab in labs.items():
            data = yaml.safe_load((lab.state / "inventory.yaml").read_text())
            base["groups"].update(data["groups"])
            for name, host in data["hosts"].items():
                assert site_of(name) == site, (name, site)  # each process serves only its own site
                base["hosts"][name] = {**host, "site": site}
        base["groups"]["lab"].pop("site", None)
        inventory = folder / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(base, sort_keys=False))
        yield SiteLabs(labs, inventory)
    finally:
        for lab in labs.values():
            lab.stop()


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
        terminate(self.process)

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


def terminate(process: subprocess.Popen | None) -> None:
    """SIGTERM a child still running, SIGKILL after 20 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
