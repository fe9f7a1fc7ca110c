"""Benchmark 3: the watch loop, kept-open sessions vs reconnect-every-poll.

The agent's log poll (`Agent.poll_all`: `show logging` on every router, new invalid-SPI
lines -> events, cursor saved in the SQLite state store) against N lab routers served
by separate lab processes (`collector lab up --detach`; their CPU is read from /proc).
This process is the agent: its CPU is `time.process_time()` (every thread, paramiko's
transport threads included), its memory the RSS from /proc.

For each mode: one warm-up poll (kept-open: every session is opened here), then one
real poll interval: poll, then idle until the interval ends, CPU counted over the whole
interval. Sustained load = agent CPU over the interval / interval length.

Target: a 60 s interval sustains 2,000 routers with the agent under half of one core,
at most 1 MB of agent memory per watched router.

    .venv/bin/python bench/watch_loop.py [--routers 2000] [--labs 1] [--interval 60] [--workers 20]
        [--modes kept,reconnect] [--paramiko-check-timeout S] [--json FILE]

--paramiko-check-timeout is an experiment, not the shipped behaviour: it sets paramiko's
Transport._active_check_timeout (0.1 s by default: every idle session's transport thread
wakes ten times a second) in this process to show what that costs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from _common import (OtherLoad, LabCpu, LabProcess, isolate_state, known_hosts_path, print_machine, quiet_logs, raise_fd_limit,
                     save_json, seed_known_hosts, self_cpu, self_rss, verdict)

TARGET_CORE = 0.5
TARGET_MB_PER_ROUTER = 1.0
TARGET_ROUTERS = 2000
TARGET_INTERVAL = 60.0


def merged_inventory(labs: list[LabProcess], folder: Path) -> Path:
    """One inventory over several labs; names get a lab prefix (every lab has a hub1)."""
    if len(labs) == 1:
        return labs[0].inventory_path
    merged: dict = {"defaults": None, "groups": {}, "hosts": {}}
    for index, lab in enumerate(labs, start=1):
        data = yaml.safe_load(lab.inventory_path.read_text())
        merged["defaults"] = merged["defaults"] or data["defaults"]
        merged["groups"].update(data.get("groups") or {})
        for name, host in data["hosts"].items():
            host = dict(host)
            host["addresses"] = []  # every lab models the same addresses
            merged["hosts"][f"l{index}-{name}"] = host
    path = folder / "inventory.yaml"
    path.write_text(yaml.safe_dump(merged))
    return path


def run_mode(mode: str, inventory, labs: list[LabProcess], args, folder: Path) -> dict:
    from collector.agent import Agent
    from collector.hostkeys import KnownHosts
    from collector.parsing import default_registry
    from collector.playbook import load_playbook
    from collector.resources import playbooks_dir
    from collector.sessions import SessionPool
    from collector.state import StateStore

    hosts = list(inventory.hosts.values())
    n = len(hosts)
    failures: list[str] = []
    store = StateStore(folder / f"{mode}.db")
    pool = SessionPool(KnownHosts.default(), max_sessions=args.workers, keep_open=(mode == "kept"))
    agent = Agent(inventory, load_playbook(playbooks_dir() / "invalid-spi.yaml"), store, sessions=pool,
                  registry=default_registry(), bundle_root=folder / "bundles", workers=args.workers,
                  report=failures.append)
    rss0 = self_rss()
    out: dict = {"mode": mode, "routers": n}

    lab_cpu, c0, t0 = LabCpu(labs), self_cpu(), time.perf_counter()
    agent.poll_all()
    out["warmup"] = {"wall": time.perf_counter() - t0, "cpu": self_cpu() - c0, "lab_cpu": lab_cpu.seconds(),
                     "failures": len(failures)}
    rss_warm = self_rss()
    print(f"  {mode:<9} warm-up poll: wall {out['warmup']['wall']:7.1f} s, agent CPU {out['warmup']['cpu']:7.1f} s, "
          f"lab CPU {out['warmup']['lab_cpu']:6.1f} s, failures {len(failures)}")

    failures.clear()
    lab_cpu, c0, t0 = LabCpu(labs), self_cpu(), time.perf_counter()
    agent.poll_all()
    poll_wall, poll_cpu = time.perf_counter() - t0, self_cpu() - c0
    poll_lab = lab_cpu.seconds()
    rss_peak = max(rss_warm, self_rss())
    idle_left = args.interval - poll_wall
    if idle_left > 0:
        time.sleep(idle_left)
    span = time.perf_counter() - t0
    interval_cpu = self_cpu() - c0
    out.update(
        poll_wall=poll_wall, poll_cpu=poll_cpu, poll_lab_cpu=poll_lab, interval=span, interval_cpu=interval_cpu,
        interval_lab_cpu=lab_cpu.seconds(), failures=len(failures), failure_sample=failures[:3],
        cpu_ms_per_router_poll=poll_cpu / n * 1000, wall_ms_per_router_poll=poll_wall / n * 1000,
        idle_cpu_per_s=(interval_cpu - poll_cpu) / idle_left if idle_left > 0 else None,
        core_fraction=interval_cpu / span, rss_base_mb=rss0 / 2**20, rss_mb=rss_peak / 2**20,
        mb_per_router=(rss_peak - rss0) / n / 2**20,
    )
    idle = f"{out['idle_cpu_per_s']:.3f}" if out["idle_cpu_per_s"] is not None else "n/a (poll longer than interval)"
    print(f"  {mode:<9} steady poll: wall {poll_wall:6.2f} s ({out['wall_ms_per_router_poll']:.2f} ms/router), "
          f"agent CPU {poll_cpu:6.2f} s ({out['cpu_ms_per_router_poll']:.2f} ms/router), lab CPU {poll_lab:5.2f} s, "
          f"failures {len(failures)}")
    print(f"  {mode:<9} over the {span:.0f} s interval: agent CPU {interval_cpu:6.2f} s = {out['core_fraction']:.3f} "
          f"of one core (idle between polls: {idle} core); lab CPU {out['interval_lab_cpu']:.1f} s; "
          f"agent RSS {rss0 / 2**20:.0f} -> {rss_peak / 2**20:.0f} MiB = {out['mb_per_router']:.3f} MiB/router")
    pool.close_all()
    agent.close()
    store.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=TARGET_ROUTERS)
    parser.add_argument("--labs", type=int, default=1, help="lab processes sharing the routers")
    parser.add_argument("--interval", type=float, default=TARGET_INTERVAL)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--modes", default="kept,reconnect")
    parser.add_argument("--cold", action="store_true",
                        help="start from an empty known_hosts (first contact: trust-on-first-use writes)")
    parser.add_argument("--paramiko-check-timeout", type=float, help="experiment; see the module doc")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    load = OtherLoad()
    work = isolate_state()
    quiet_logs()
    fds = raise_fd_limit()
    if args.paramiko_check_timeout is not None:
        import paramiko

        paramiko.Transport._active_check_timeout = args.paramiko_check_timeout
    from collector.inventory import load_inventory

    results: dict = {"benchmark": "watch_loop", "machine": print_machine(), "args": vars(args)}
    per_lab = [args.routers // args.labs + (1 if i < args.routers % args.labs else 0) for i in range(args.labs)]
    labs: list[LabProcess] = []
    try:
        for count in per_lab:
            labs.append(LabProcess(routers=count).start())
        idle = LabCpu(labs)
        time.sleep(5)
        idle_rate = idle.seconds() / 5
        inventory = load_inventory(merged_inventory(labs, Path(tempfile.mkdtemp(dir=work))))
        hosts = list(inventory.hosts.values())
        print(f"lab: {len(hosts)} routers in {len(labs)} process(es) {[lab.pid for lab in labs]}, lab RSS "
              f"{sum(lab.rss() for lab in labs) / 2**20:.0f} MiB, lab CPU while nobody connects {idle_rate:.3f} core; "
              f"fd limit {fds}; interval {args.interval:.0f} s, {args.workers} workers")
        if args.paramiko_check_timeout is not None:
            print(f"EXPERIMENT: paramiko Transport._active_check_timeout = {args.paramiko_check_timeout} s "
                  "(shipped: 0.1 s)")
        if not args.cold:
            seeded = seed_known_hosts(((h.hostname, h.port) for h in hosts), known_hosts_path())
            print(f"known_hosts seeded with {seeded} lab host keys (steady state, not first contact)")
        results["lab_idle_core"] = idle_rate
        results["modes"] = {}
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            results["modes"][mode] = run_mode(mode, inventory, labs, args,
                                              Path(tempfile.mkdtemp(prefix=mode, dir=work)))
    finally:
        for lab in labs:
            lab.stop()

    n = args.routers
    print()
    ok_any = False
    for mode, out in results["modes"].items():
        # Linear extrapolation to the target fleet and interval, said plainly when they differ:
        # poll CPU grows with the routers, idle CPU (kept-open sessions) with the open sessions.
        at_target = out["poll_cpu"] / n * TARGET_ROUTERS / TARGET_INTERVAL \
            + (out["idle_cpu_per_s"] or 0.0) / n * TARGET_ROUTERS
        out["core_fraction_extrapolated"] = at_target
        ok = out["core_fraction"] < TARGET_CORE and out["mb_per_router"] <= TARGET_MB_PER_ROUTER \
            and out["failures"] == 0 and n >= TARGET_ROUTERS and out["poll_wall"] <= out["interval"]
        ok_any |= ok
        out["verdict"] = verdict(ok)
        extra = "" if n == TARGET_ROUTERS and out["interval"] >= TARGET_INTERVAL - 1 else \
            f" (linear extrapolation to {TARGET_ROUTERS} routers/60 s: {at_target:.2f} core)"
        print(f"result {mode:<9}: {n} routers, {out['interval']:.0f} s interval: agent {out['core_fraction']:.3f} of one "
              f"core (target < {TARGET_CORE}), {out['mb_per_router']:.3f} MiB per router (target <= "
              f"{TARGET_MB_PER_ROUTER}), poll {out['poll_wall']:.1f} s, failures {out['failures']}{extra} -> "
              f"{verdict(ok)}")
    results["other_load"] = load.report()
    save_json(args.json, results)
    return 0 if ok_any else 1


if __name__ == "__main__":
    raise SystemExit(main())
