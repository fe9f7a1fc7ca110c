"""Benchmark 8: the anchors side by side, each as a whole process, as a user runs them.

One lab (its own process, 127.0.0.1 only) and, alternated in every round (the order
rotates from round to round), three commands each started as a process of its own:

  collector  `collector collect -i INV -c ... --workers 20 --json --out DIR`: parsed (own
             templates, then ntc-templates), the bundle written and sealed, one JSON line per
             router and command on stdout (to a file). As shipped: from 20 routers on a
             2-core machine the routers are shared between two forked processes, 10
             workers each (collector/collect_processes.py); `--collector-processes 1` keeps
             it to one; the tool `collector-1p` is collect with `--processes 1` beside it
  nornir     Nornir 3 + nornir-netmiko (bench/_anchor_nornir.py): ThreadedRunner(20),
             `netmiko_send_command(enable=True, use_textfsm=True)`, JSON lines on stdout
  scrapli    scrapli on its own (bench/_anchor_scrapli.py), the current PyPI release
             (2026.10, libscrapli), system-ssh transport with strict host-key checking off,
             20 threads, raw text (no parsing, no bundle), JSON lines on stdout

Wall time is from spawning the process to its exit (start-up, imports and the interpreter's
exit included); CPU is the process's and its reaped children's (`os.wait4`: scrapli's ssh
clients count). Lab CPU is read from /proc apart. collector starts from a known_hosts that
holds the lab's keys (steady state); netmiko accepts new keys (AutoAddPolicy), scrapli's ssh
is told not to check them.

Targets at 200 routers x 3 commands, 20 workers: collector's wall time at most 0.35 of
Nornir + netmiko's and below scrapli's, every collector result complete and parsed.

    .venv/bin/python bench/anchors.py [--sizes 200] [--rounds 3] [--workers 20]
        [--tools collector,nornir,scrapli] [--scrapli-transport bin] [--json FILE]

`--sizes 50,200,500,1000` runs the same rounds at each fleet size (one lab of the largest
size; each size uses its first N routers) for the plot in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _common import (REPO, LabCpu, LabProcess, OtherLoad, isolate_state, known_hosts_path, median, print_machine,
                     quiet_logs, raise_fd_limit, save_json, seed_known_hosts, verdict)
from fleet_collect import COMMANDS, nornir_inventory

TARGET_SIZE = 200
TARGET_VS_NORNIR = 0.35
BENCH = Path(__file__).resolve().parent


def sub_inventory(lab: LabProcess, size: int, folder: Path) -> Path:
    """The lab's inventory cut to its first `size` routers (same defaults and groups)."""
    data = yaml.safe_load(lab.inventory_path.read_text())
    names = list(data["hosts"])[:size]
    data["hosts"] = {name: data["hosts"][name] for name in names}
    path = folder / f"inventory-{size}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


ONE_PROCESS = "collector-1p"  # `--tools collector,collector-1p`: collect as shipped against one process


def command_line(tool: str, inventory: Path, nornir_folder: Path, out: Path, args) -> list[str]:
    commands = [part for c in COMMANDS for part in ("-c", c)]
    if tool in ("collector", ONE_PROCESS):
        processes = 1 if tool == ONE_PROCESS else args.collector_processes
        return [str(Path(sys.executable).parent / "collector"), "collect", "-i", str(inventory), *commands,
                "--workers", str(args.workers), "--json", "--out", str(out), "--processes", str(processes)]
    if tool == "nornir":
        return [sys.executable, str(BENCH / "_anchor_nornir.py"), str(nornir_folder), "--workers", str(args.workers),
                *commands]
    return [sys.executable, str(BENCH / "_anchor_scrapli.py"), str(inventory), "--workers", str(args.workers),
            "--transport", args.scrapli_transport, *commands]


def run_process(argv: list[str], stdout: Path, stderr: Path) -> tuple[float, float, int]:
    """Wall seconds from spawn to exit, CPU of the process and its reaped children, exit code."""
    with stdout.open("wb") as out, stderr.open("wb") as err:
        t0 = time.perf_counter()
        # this checkout's collector, whatever the venv's editable install points at
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=REPO, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def check_rows(path: Path, size: int) -> dict:
    """Count complete (text, no error) and parsed results in a tool's JSON lines."""
    rows = complete = parsed = 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("command") is None:
            continue
        rows += 1
        has_text = bool(row.get("raw")) or bool(row.get("parsed"))
        complete += has_text and not row.get("error")
        parsed += bool(row.get("parsed"))
    return {"results": rows, "expected": size * len(COMMANDS), "complete": complete, "parsed": parsed}


def run_tool(tool: str, size: int, inventory: Path, nornir_folder: Path, lab: LabProcess, work: Path, args) -> dict:
    out = work / f"bundles-{tool}-{size}"
    lab_cpu = LabCpu([lab])
    wall, cpu, code = run_process(command_line(tool, inventory, nornir_folder, out, args),
                                  work / f"{tool}.out", work / f"{tool}.err")
    result = {"wall": wall, "cpu": cpu, "lab_cpu": lab_cpu.seconds(), "exit": code,
              **check_rows(work / f"{tool}.out", size)}
    if tool in ("collector", ONE_PROCESS):
        bundles = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
        result["bundle_files"] = sum(1 for b in bundles for p in b.rglob("*") if p.is_file())
        result["bundle_bytes"] = sum(p.stat().st_size for b in bundles for p in b.rglob("*") if p.is_file())
        shutil.rmtree(out, ignore_errors=True)
    if code != 0:
        result["stderr_tail"] = (work / f"{tool}.err").read_text(errors="replace")[-400:]
    return result


def startup_seconds(repeat: int = 5) -> dict:
    """`collector --version` and bare `python -c pass` as processes, median of `repeat`."""
    def timed(argv: list[str]) -> float:
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(argv, capture_output=True, cwd=REPO, check=True)
            samples.append(time.perf_counter() - t0)
        return median(samples)

    imports = ("import collector.cli, collector.collect, collector.hostkeys, collector.parsing, "
               "collector.sessions, collector.inventory, collector.redact")
    return {"python": timed([sys.executable, "-c", "pass"]),
            "collector_version": timed([str(Path(sys.executable).parent / "collector"), "--version"]),
            "collect_imports": timed([sys.executable, "-c", imports])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=str(TARGET_SIZE), help="comma-separated fleet sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--tools", default="collector,nornir,scrapli")
    parser.add_argument("--scrapli-transport", choices=("bin", "ssh2"), default="bin")
    parser.add_argument("--collector-processes", type=int, default=0,
                        help="collect's --processes (0: as shipped, one per core from 20 routers)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    load = OtherLoad()
    work = isolate_state()
    quiet_logs()
    raise_fd_limit()
    from importlib.metadata import version

    sizes = [int(s) for s in args.sizes.split(",")]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    results: dict = {"benchmark": "anchors", "machine": print_machine(), "args": vars(args),
                     "versions": {p: version(p) for p in ("netmiko", "paramiko", "nornir", "nornir-netmiko", "scrapli")},
                     "load_before": os.getloadavg(), "sizes": {}}
    print(f"versions: {results['versions']}; load average before {os.getloadavg()[0]:.2f}")
    results["startup"] = startup_seconds()
    s = results["startup"]
    print(f"start-up as a process (median of 5): python -c pass {s['python'] * 1000:.0f} ms, "
          f"collector --version {s['collector_version'] * 1000:.0f} ms, collect's imports {s['collect_imports'] * 1000:.0f} ms")
    from collector.inventory import load_inventory

    with LabProcess(routers=max(sizes)) as lab:
        seeded = seed_known_hosts(((h.hostname, h.port) for h in load_inventory(lab.inventory_path).hosts.values()),
                                  known_hosts_path())
        print(f"lab: {max(sizes)} routers in pid {lab.pid}; collector's known_hosts seeded with {seeded} keys; "
              f"{args.workers} workers; {args.rounds} alternated rounds; commands: {', '.join(COMMANDS)}")
        for size in sizes:
            folder = Path(tempfile.mkdtemp(prefix=f"size{size}-", dir=work))
            inventory = sub_inventory(lab, size, folder)
            nornir_folder = nornir_inventory(load_inventory(inventory), folder / "nornir")
            runs: dict[str, list[dict]] = {t: [] for t in tools}
            for rnd in range(args.rounds):
                order = tools[rnd % len(tools):] + tools[:rnd % len(tools)]
                for tool in order:
                    out = run_tool(tool, size, inventory, nornir_folder, lab, folder, args)
                    out["load1"] = os.getloadavg()[0]
                    runs[tool].append(out)
                    print(f"  {size:5d} routers round {rnd + 1} {tool:<12} wall {out['wall']:6.2f} s  CPU {out['cpu']:6.2f} s  "
                          f"lab CPU {out['lab_cpu']:5.2f} s  complete {out['complete']}/{out['expected']}  "
                          f"parsed {out['parsed']}  exit {out['exit']}  load {out['load1']:.1f}"
                          + (f"  bundle {out['bundle_files']} files {out['bundle_bytes'] / 2**20:.1f} MiB"
                             if tool in ("collector", ONE_PROCESS) else "")
                          + (f"\n      stderr: {out['stderr_tail']!r}" if out.get("stderr_tail") else ""))
            walls = {t: median([r["wall"] for r in runs[t]]) for t in tools}
            results["sizes"][str(size)] = {"runs": runs, "median_wall": walls}

    ok = True
    for size_key, entry in results["sizes"].items():
        walls = entry["median_wall"]
        line = ", ".join(f"{t} {w:.2f} s" for t, w in walls.items())
        print(f"\nresult {size_key} routers x {len(COMMANDS)} commands (median wall, whole process): {line}")
        if int(size_key) != TARGET_SIZE or "collector" not in walls:
            continue
        runs = entry["runs"]["collector"]
        complete = all(r["complete"] == r["parsed"] == r["expected"] and r["exit"] == 0 for r in runs)
        checks = {}
        if "nornir" in walls:
            ratio = walls["collector"] / walls["nornir"]
            checks["vs_nornir"] = {"ratio": ratio, "verdict": verdict(ratio <= TARGET_VS_NORNIR)}
            print(f"  collector / Nornir+netmiko = {ratio:.2f} (target <= {TARGET_VS_NORNIR}) -> "
                  f"{verdict(ratio <= TARGET_VS_NORNIR)}")
        if "scrapli" in walls:
            ratio = walls["collector"] / walls["scrapli"]
            checks["vs_scrapli"] = {"ratio": ratio, "verdict": verdict(ratio < 1.0)}
            print(f"  collector / scrapli ({args.scrapli_transport}) = {ratio:.2f} (target < 1, faster) -> "
                  f"{verdict(ratio < 1.0)}")
        print(f"  every collector result complete and parsed, exit 0: {complete} -> {verdict(complete)}")
        checks["complete"] = {"ok": complete, "verdict": verdict(complete)}
        entry["checks"] = checks
        ok = all(c["verdict"] == "MET" for c in checks.values())
    results["verdict"] = verdict(ok)
    results["load_after"] = os.getloadavg()
    results["other_load"] = load.report()
    save_json(args.json, results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
