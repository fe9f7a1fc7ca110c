"""Benchmark 12: the agent's resident memory with 200 routers, many of them with a full
10 MB `logging buffered` (what production routers have), through a whole incident cycle.

The lab is the default realistic fleet of 200 routers with `desync:50`, except that the
four hubs (the receivers of most flows) and evenly chosen spokes, `--full` routers in
all, have a 10 MB buffer filled to 97 % with a busy router's traffic. The agent is
`collector watch` as its own process (20 workers, 1 s log poll, the shipped playbook
otherwise: at most 4 routers armed); its RSS is read from /proc every 0.25 s. The lab
runs in this process (it holds the buffers: several hundred MB), never counted.

Phases: the first poll (every router's whole buffer read once: the `--full` 10 MB ones
by 20 workers at once), idle, arming (the first invalid-SPI line of every flow: up to 4
routers armed, each end's log read whole before arming), capture and bundles (the
repeat: captures, disarms, bundles sealed one after another, each with a 10 MB pre-arm
log and a 10 MB capture on a hub), then SIGTERM (the agent disarms what is still armed).

Target: the agent's RSS stays under 250 MiB in every phase (the limit of
tests/reliability/test_load.py).

    .venv/bin/python bench/agent_memory.py [--routers 200] [--full 20] [--flows 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from _common import REPO, isolate_state, print_machine, proc_rss_bytes, raise_fd_limit, save_json, verdict

TARGET_MIB = 250.0
BUFFER = 10_000_000


def fill_buffers(full: int, routers: int) -> list[int]:
    """Make the lab's hubs and evenly chosen spokes have a full 10 MB buffer; their indexes."""
    from collector.lab import topology

    step = max(1, (routers - 4) // max(1, full - 4))
    chosen = set(range(min(4, full))) | {4 + i * step for i in range(max(0, full - 4))}
    chosen = {k for k in chosen if k < routers}
    original = topology._realistic

    def realistic(spec, count, realism, seed):
        spec = original(spec, count, realism, seed)
        if spec.index in chosen:
            spec = replace(spec, logging=replace(spec.logging, buffered_size=BUFFER, buffered_level="debugging",
                                                 prefill_bytes=int(BUFFER * 0.97)))
        return spec

    topology._realistic = realistic
    return sorted(chosen)


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self._phase = pid, "start"
        self.samples: list[tuple[str, float]] = []
        self.began: dict[str, float] = {"start": time.monotonic()}
        self._halt = threading.Event()

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, name: str) -> None:
        self._phase = name
        self.began[name] = time.monotonic()

    def seconds(self, phase: str) -> float:
        names = list(self.began)
        i = names.index(phase)
        end = self.began[names[i + 1]] if i + 1 < len(names) else time.monotonic()
        return end - self.began[phase]

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.samples.append((self.phase, proc_rss_bytes(self.pid) / 2**20))
            except OSError:
                pass
            self._halt.wait(0.25)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def peak(self, phase: str | None = None) -> float:
        return max((r for p, r in self.samples if phase is None or p == phase), default=0.0)

    def last(self, phase: str) -> float:
        return next((r for p, r in reversed(self.samples) if p == phase), 0.0)


def wait_for(predicate, seconds: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--routers", type=int, default=200)
    ap.add_argument("--full", type=int, default=20, help="routers with a full 10 MB buffer (the hubs first)")
    ap.add_argument("--flows", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args()
    folder = isolate_state()
    raise_fd_limit()
    machine = print_machine()
    full = fill_buffers(args.full, args.routers)

    from collector.lab.runner import running_lab
    from collector.resources import playbooks_dir
    from collector.state import StateStore

    playbook = folder / "playbook.yaml"
    playbook.write_text((playbooks_dir() / "invalid-spi.yaml").read_text().replace("interval: 60s", "interval: 1s"))
    state, bundles, log = folder / "agent-state", folder / "bundles", folder / "agent.log"
    started = time.monotonic()
    with running_lab(routers=args.routers, scenarios=[f"desync:{args.flows}"], state_dir=folder / "lab") as lab:
        names = sorted(lab.routers)
        print(f"lab: {args.routers} routers, {len(full)} with a full 10 MB buffer "
              f"({', '.join(names_of(lab, full))}), desync:{args.flows}; built in {time.monotonic() - started:.0f} s")
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with log.open("w") as out:
            agent = subprocess.Popen([sys.executable, "-m", "collector", "watch", "-i", str(lab.inventory_path),
                                      "--playbook", str(playbook), "--state", str(state), "--out", str(bundles)],
                                     cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env)
        sampler = Sampler(agent.pid)
        sampler.start()
        try:
            def polled_all() -> bool:
                if not (state / "state.db").exists():
                    return False
                with StateStore(state / "state.db") as store:
                    return all(store.log_cursor(name) is not None for name in names)

            sampler.phase = "first poll"
            first_ok = wait_for(polled_all, 300)
            sampler.phase = "idle"
            time.sleep(5)
            sampler.phase = "arming"
            lab.control.step(31)
            time.sleep(20)
            sampler.phase = "capture and bundles"
            lab.control.step(60)
            wait_for(lambda: _bundles(bundles), 180)
            count, quiet_since = len(_bundles(bundles)), time.monotonic()
            while time.monotonic() - quiet_since < 20 and time.monotonic() - started < 900:
                time.sleep(1)
                if len(_bundles(bundles)) != count:
                    count, quiet_since = len(_bundles(bundles)), time.monotonic()
            sampler.phase = "stop (disarm)"
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=180)
        finally:
            if agent.poll() is None:
                agent.kill()
            sampler.stop()
    captured = [p.name.split("_invalid-spi_")[1] for p in _bundles(bundles)]
    peak = sampler.peak()
    print(f"agent exit {agent.returncode}; first poll of every router: {'done' if first_ok else 'NOT done in 300 s'}")
    for phase in ("first poll", "idle", "arming", "capture and bundles", "stop (disarm)"):
        print(f"  {phase:22s} {sampler.seconds(phase):5.0f} s  RSS max {sampler.peak(phase):6.1f} MiB, "
              f"at its end {sampler.last(phase):6.1f} MiB")
    print(f"bundles: {len(captured)} ({', '.join(captured)})")
    ok = first_ok and bool(captured) and peak < TARGET_MIB
    print(f"agent RSS max {peak:.1f} MiB over the whole run; target < {TARGET_MIB:.0f} MiB: {verdict(ok)}")
    save_json(args.json, {"machine": machine, "routers": args.routers, "full_10mb_buffers": len(full),
                          "flows": args.flows, "rss_max_mib": peak, "target_mib": TARGET_MIB,
                          "phases": {p: {"max": sampler.peak(p), "end": sampler.last(p), "seconds": sampler.seconds(p)}
                                     for p in {p for p, _ in sampler.samples}},
                          "bundles": captured, "met": ok})
    return 0 if ok else 1


def names_of(lab, indexes: list[int]) -> list[str]:
    by_index = {r.spec.index: name for name, r in lab.fleet.routers.items() if hasattr(r, "spec")}
    found = [by_index.get(i, f"#{i}") for i in indexes]
    return found if len(found) <= 8 else found[:8] + [f"... {len(found) - 8} more"]


def _bundles(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*_invalid-spi_*") if p.is_dir() and not p.name.startswith("."))


if __name__ == "__main__":
    sys.exit(main())
