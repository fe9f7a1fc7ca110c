"""Benchmark 2: one-shot fleet collection, collector vs Nornir 3 + nornir-netmiko.

200 lab routers (one lab process), 3 commands each (`show version`, `show crypto session`,
`show crypto ipsec sa`), parsed, 20 workers on both sides:
  - collector: `collect()` with a fresh SessionPool and the default TemplateRegistry
    (own TextFSM templates first, then ntc-templates)
  - Nornir: ThreadedRunner(num_workers=20), netmiko_send_command(enable=True,
    use_textfsm=True) per command (ntc-templates parses where it has a template:
    here only `show version`), connections closed at the end
The runs alternate (collector, Nornir, collector, Nornir ...); the figure is the median of
the rounds. The collector side uses the SessionPool as `collector collect` does (each
router's session closed by its worker when done); --keep-open is the other mode, for
comparison. Both sides start from a known_hosts that holds the lab's keys (collector) /
AutoAddPolicy (netmiko's default); lab CPU is read from the lab process.

Target: collector wall time at most 0.6 of Nornir's, every result complete.

    .venv/bin/python bench/fleet_collect.py [--routers 200] [--workers 20] [--rounds 2] [--keep-open] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from _common import (OtherLoad, LabCpu, LabProcess, isolate_state, known_hosts_path, median, print_machine, quiet_logs,
                     raise_fd_limit, save_json, seed_known_hosts, self_cpu, verdict)

COMMANDS = ("show version", "show crypto session", "show crypto ipsec sa")
TARGET_RATIO = 0.6


def nornir_inventory(inventory, folder: Path) -> Path:
    """hosts.yaml / groups.yaml / defaults.yaml for Nornir's SimpleInventory, from the lab's."""
    hosts, groups = {}, {}
    for host in inventory.hosts.values():
        hosts[host.name] = {
            "hostname": host.hostname, "port": host.port, "platform": host.platform, "groups": ["lab"],
            "username": host.username, "password": host.password.reveal() if host.password else None,
            "connection_options": {"netmiko": {"extras": {
                "secret": host.secret.reveal() if host.secret else "",
                "fast_cli": True, "allow_agent": False, "use_keys": False}}},
        }
    groups["lab"] = {"data": {"site": "lab"}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (folder / "groups.yaml").write_text(yaml.safe_dump(groups))
    (folder / "defaults.yaml").write_text(yaml.safe_dump({}))
    return folder


def run_collector(hosts, workers: int, keep_open: bool = True) -> dict:
    from collector.collect import collect
    from collector.hostkeys import KnownHosts
    from collector.parsing import default_registry
    from collector.sessions import SessionPool

    registry = default_registry()
    t0, c0 = time.perf_counter(), self_cpu()
    with SessionPool(KnownHosts.default(), max_sessions=workers, keep_open=keep_open) as pool:
        run = collect(hosts, COMMANDS, pool=pool, registry=registry, workers=workers)
    wall, cpu = time.perf_counter() - t0, self_cpu() - c0
    results = [r for o in run.outcomes for r in o.results]
    complete = [r for r in results if r.error is None and r.text and r.parsed]
    problems = [f"{r.host} {r.command}: {r.error or 'no records'}" for r in results if r not in complete]
    return {"wall": wall, "cpu": cpu, "results": len(results), "complete": len(complete),
            "parsed": len(complete), "problems": problems[:5]}


def run_nornir(config_folder: Path, workers: int) -> dict:
    from nornir import InitNornir
    from nornir.core.task import Result, Task
    from nornir_netmiko.tasks import netmiko_send_command

    def three(task: Task) -> Result:
        for command in COMMANDS:
            task.run(netmiko_send_command, command_string=command, enable=True, use_textfsm=True,
                     name=command, read_timeout=60)
        return Result(host=task.host)

    nr = InitNornir(runner={"plugin": "threaded", "options": {"num_workers": workers}},
                    inventory={"plugin": "SimpleInventory", "options": {
                        "host_file": str(config_folder / "hosts.yaml"),
                        "group_file": str(config_folder / "groups.yaml"),
                        "defaults_file": str(config_folder / "defaults.yaml")}},
                    logging={"enabled": False})
    t0, c0 = time.perf_counter(), self_cpu()
    agg = nr.run(task=three)
    nr.close_connections()
    wall, cpu = time.perf_counter() - t0, self_cpu() - c0
    results = complete = parsed = 0
    problems = []
    for name, multi in agg.items():
        per_command = [r for r in multi[1:]]
        results += len(COMMANDS)
        if multi.failed or len(per_command) != len(COMMANDS):
            problems.append(f"{name}: {multi.exception or 'failed'}")
            continue
        for r in per_command:
            if r.failed or not r.result:
                problems.append(f"{name} {r.name}: empty or failed")
                continue
            complete += 1
            parsed += isinstance(r.result, list)
    return {"wall": wall, "cpu": cpu, "results": results, "complete": complete, "parsed": parsed,
            "problems": problems[:5]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument("--keep-open", action="store_true",
                        help="comparison: SessionPool(keep_open=True), all sessions closed one after the other "
                             "at the end (`collector collect` closes each in its worker)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    load = OtherLoad()
    work = isolate_state()
    quiet_logs()
    raise_fd_limit()
    from collector.inventory import load_inventory

    results: dict = {"benchmark": "fleet_collect", "machine": print_machine(), "routers": args.routers,
                     "workers": args.workers, "commands": list(COMMANDS), "target_ratio": TARGET_RATIO}
    with LabProcess(routers=args.routers) as lab:
        inventory = load_inventory(lab.inventory_path)
        hosts = list(inventory.hosts.values())
        print(f"lab: {len(hosts)} routers in pid {lab.pid} (RSS {lab.rss() / 2**20:.0f} MiB); "
              f"{args.workers} workers each side; commands: {', '.join(COMMANDS)}")
        if args.keep_open:
            print("COMPARISON: collector side with SessionPool(keep_open=True) (shipped `collector collect` "
                  "closes each router's session in its worker)")
        seeded = seed_known_hosts(((h.hostname, h.port) for h in hosts), known_hosts_path())
        print(f"known_hosts seeded with {seeded} lab host keys (steady state, not first contact)")
        folder = nornir_inventory(inventory, Path(tempfile.mkdtemp(prefix="nornir-", dir=work)))
        runs: dict[str, list[dict]] = {"collector": [], "nornir": []}
        for rnd in range(1, args.rounds + 1):
            for side in ("collector", "nornir"):
                lab_cpu = LabCpu([lab])
                out = run_collector(hosts, args.workers, args.keep_open) if side == "collector" \
                    else run_nornir(folder, args.workers)
                out["lab_cpu"] = lab_cpu.seconds()
                runs[side].append(out)
                print(f"  round {rnd} {side:<9} wall {out['wall']:6.2f} s  agent CPU {out['cpu']:6.2f} s  "
                      f"lab CPU {out['lab_cpu']:6.2f} s  complete {out['complete']}/{out['results']}  "
                      f"parsed {out['parsed']}/{out['results']}"
                      + (f"  problems: {out['problems']}" if out["problems"] else ""))
    ours = median([r["wall"] for r in runs["collector"]])
    theirs = median([r["wall"] for r in runs["nornir"]])
    complete = all(r["complete"] == r["results"] == len(hosts) * len(COMMANDS) for r in runs["collector"])
    ratio = ours / theirs
    ok = ratio <= TARGET_RATIO and complete
    print(f"\nresult: collector {ours:.2f} s vs Nornir {theirs:.2f} s for {len(hosts)} routers x {len(COMMANDS)} "
          f"commands: ratio {ratio:.2f} (target <= {TARGET_RATIO}); collector results complete and parsed: "
          f"{complete} -> {verdict(ok)}")
    print(f"        per router: collector {ours / len(hosts) * 1000:.1f} ms, Nornir {theirs / len(hosts) * 1000:.1f} ms "
          f"of wall time with {args.workers} workers")
    results.update(runs=runs, collector_wall=ours, nornir_wall=theirs, ratio=ratio, complete=complete,
                   verdict=verdict(ok))
    results["other_load"] = load.report()
    save_json(args.json, results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
