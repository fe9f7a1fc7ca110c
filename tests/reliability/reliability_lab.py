"""Shared helpers of the reliability suite: drive the lab step by step, run the agent,
look at routers and at the state store the way an engineer would.

The lab runs at time scale 1 and the tests move its clock by hand: a `desync` tunnel
logs its first invalid-SPI line at lab second ~30 and repeats every lab minute, so
`first_line(lab)` and `repeat_line(lab)` make the agent arm and capture exactly when a
test wants it, with a fault set in between.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from netmiko import ConnectHandler

from collector.demo import demo_playbook
from collector.inventory import load_inventory
from collector.playbook import Playbook
from collector.resources import playbooks_dir
from collector.core.states import IncidentState
from collector.state import StateStore
from collector.watch import WatchOptions, run_daemon

REPO = Path(__file__).resolve().parents[2]
CLEAR_FAULTS = dict(refuse_connections=False, changed_host_key=False, slow_seconds=0.0, drop_after_bytes=None,
                    vty_limit=5, high_cpu=False, wrong_password=False)


def wait_for(predicate: Callable[[], object], seconds: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def desync_ends(lab) -> tuple[str, str]:
    """(receiver, sender) of the lab's single desync tunnel."""
    pairs = [p for p in lab.control.pairs() if p["scenario"] == "desync"]
    assert len(pairs) == 1, pairs
    return pairs[0]["receiver"], pairs[0]["sender"]


def first_line(lab) -> None:
    """Move the lab clock to just after the desync's first invalid-SPI line."""
    lab.control.step(31)


def repeat_line(lab) -> None:
    """One lab minute later: the same flow logs again."""
    lab.control.step(60)


def router_leftovers(lab, router: str) -> list[str]:
    """What a router still has armed (debugs, conditions, dead-man applet), read over SSH."""
    lab.control.fault(router, **CLEAR_FAULTS)
    # A router whose vty lines were full listens again a moment after they are freed.
    assert wait_for(lambda: lab.listener_stats(router).listening, 10)
    with ConnectHandler(**lab.connect_params(router)) as conn:
        conn.enable()
        debugging = conn.send_command("show debugging")
        conditions = conn.send_command("show crypto debug-condition")
        applets = conn.send_command("show running-config | section event manager")
    left = [line.strip() for line in debugging.splitlines() if "debugging is on" in line]
    left += [line.strip() for line in conditions.splitlines() if line.strip()[:1].isdigit()]
    left += [line.strip() for line in applets.splitlines() if "COLLECTOR_DEADMAN" in line]
    return left


# -- the state store, read from outside the agent -------------------------------------------


def store_at(state_dir: Path) -> StateStore:
    return StateStore(state_dir / "state.db")


def armed_by_router(state_dir: Path) -> dict[str, list[str]]:
    """router -> statuses of its steps not yet undone.

    The file exists from the moment the agent starts creating it; a read that meets the
    agent's first transaction waits for it inside the store (`Database._wal_mode`, the
    busy timeout), so no retry is needed here."""
    db = state_dir / "state.db"
    if not db.exists():
        return {}
    with StateStore(db) as store:
        out: dict[str, list[str]] = {}
        for step in store.armed_steps():
            out.setdefault(step.router, []).append(step.status)
        return out


def both_armed(state_dir: Path) -> bool:
    """Both ends' steps applied and the agent's arming finished (its log mark taken).

    Steps are recorded applied before the agent reads each end's log position; a line
    logged in between counts as logged before arming, so a test that makes the flow
    repeat on "steps applied" alone races the agent."""
    steps = armed_by_router(state_dir)
    if len(steps) != 2 or not all(s == "applied" for statuses in steps.values() for s in statuses):
        return False
    with StateStore(state_dir / "state.db") as store:
        return any(i.armed_at is not None for i in store.incidents(states=[IncidentState.ARMED]))


def incident_states(state_dir: Path) -> list[tuple[str, str]]:
    db = state_dir / "state.db"
    if not db.exists():
        return []
    with StateStore(db) as store:
        return [(i.state, i.reason) for i in store.incidents()]


def bundles(root: Path) -> list[Path]:
    """Bundles presented as finished: final names only (a `.partial` folder is hidden)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*_invalid-spi_*") if p.is_dir() and not p.name.startswith("."))


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


# -- the agent in this process ----------------------------------------------------------------


@dataclass
class AgentThread:
    """`run_daemon` in a thread; `error` holds anything it raised (it must stay None)."""

    messages: list[str] = field(default_factory=list)
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def report(self, message: str) -> None:
        self.messages.append(message)


@contextmanager
def agent_running(lab, tmp_path: Path, book: Playbook | None = None, *, workers: int = 8,
                  syslog: tuple[str, int] | None = None) -> Iterator[AgentThread]:
    inventory = load_inventory(lab.inventory_path)
    options = WatchOptions(state_dir=tmp_path / "state", bundle_root=tmp_path / "bundles", workers=workers,
                           max_seconds=240, syslog=syslog)
    run = AgentThread()

    def target() -> None:
        try:
            run_daemon(inventory, book or demo_playbook(), options, run.report, run.stop)
        except BaseException as exc:  # the test asserts there was none
            run.error = exc

    run.thread = threading.Thread(target=target, name="agent-under-test", daemon=True)
    run.thread.start()
    try:
        yield run
    finally:
        run.stop.set()
        run.thread.join(timeout=120)
    assert not run.thread.is_alive(), "the agent did not stop"


# -- the agent as a separate process (crash tests, process listing, memory) --------------------


def fast_playbook(tmp_path: Path, **replace: str) -> Path:
    """The shipped playbook with a 1 s log poll; `replace` rewrites parts of its text."""
    text = (playbooks_dir() / "invalid-spi.yaml").read_text().replace("interval: 60s", "interval: 1s")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "playbook.yaml"
    path.write_text(text)
    return path


def watch_args(lab, tmp_path: Path, playbook: Path) -> list[str]:
    return ["-i", str(lab.inventory_path), "--playbook", str(playbook), "--state", str(tmp_path / "state"),
            "--out", str(tmp_path / "bundles")]


def start_watch(args: list[str], cwd: Path, log: Path, *extra: str) -> subprocess.Popen:
    """`collector watch` as its own process; stdout and stderr go to `log`."""
    handle = log.open("a")
    try:
        return subprocess.Popen([sys.executable, "-m", "collector", *extra, "watch", *args], cwd=cwd,
                                stdout=handle, stderr=subprocess.STDOUT, env=_child_env())
    finally:
        handle.close()


def run_cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_child_env())


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")
