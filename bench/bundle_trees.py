"""Benchmark 9b: one finished 200-router collect written as a bundle by two checkouts, alternated.

`bundle_write.py`'s serial figure (the bundle written alone from a finished run) moves with
the file system's state more than with the code: on this machine's journal-less ext4,
creating the bundle's 1,202 files took 17 ms one day and 40-500 ms another, after other
processes deleted many files (see its fs probe). To tell what a change to the write path
gains, this writes the same finished run with the code of each checkout, in turns, so
both meet the same file system:

  1. one collect of --routers lab routers x 3 commands (this checkout's code), kept as a
     pickle of the `CollectionRun` and the inventory
  2. --rounds rounds; in each, every checkout in turn (the order rotates) writes the
     bundle --writes times in a fresh process (`write_collection_bundle`, PYTHONPATH = the
     checkout); the least of its writes is its figure for the round
  3. per checkout: the median over the rounds, and each one's ratio to the first

The checkouts must share this one's `CollectionRun` shape (the pickle is read by both).

    .venv/bin/python bench/bundle_trees.py OLD_CHECKOUT [NEW_CHECKOUT (default: this one)]
        [--routers 200] [--rounds 7] [--writes 3] [--bundle-root DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, LabProcess, known_hosts_path, median, print_machine, save_json, seed_known_hosts
from bundle_write import fs_probe, prepare, remove_bundles
from fleet_collect import COMMANDS

WRITE = """
import json, pickle, sys, time
from pathlib import Path
from collector.collect import write_collection_bundle
run, inventory = pickle.loads(Path(sys.argv[1]).read_bytes())
walls, cpus = [], []
for n in range(int(sys.argv[3])):
    t0, c0 = time.perf_counter(), time.process_time()
    write_collection_bundle(run, out_root=Path(sys.argv[2]) / str(n), inventory=inventory)
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
print(json.dumps({"wall": min(walls), "cpu": min(cpus), "walls": walls}))
"""


def finished_run(routers: int, workers: int, folder: Path) -> Path:
    from collector.collect import collect
    from collector.hostkeys import KnownHosts
    from collector.inventory import load_inventory
    from collector.parsing import default_registry
    from collector.sessions import SessionPool

    with LabProcess(routers=routers) as lab:
        inventory = load_inventory(lab.inventory_path)
        seed_known_hosts(((h.hostname, h.port) for h in inventory.hosts.values()), known_hosts_path())
        with SessionPool(KnownHosts.default(), max_sessions=workers, keep_open=False) as pool:
            run = collect(list(inventory.hosts.values()), COMMANDS, pool=pool, registry=default_registry(),
                          workers=workers)
    if run.failed:
        raise SystemExit(f"{len(run.failed)} of {routers} routers failed: {run.failed[0].host}: {run.failed[0].reason}")
    path = folder / "run.pickle"
    path.write_bytes(pickle.dumps((run, inventory)))
    return path


def write_with(tree: Path, run: Path, out_root: Path, writes: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", WRITE, str(run), str(out_root), str(writes)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs="+", help="checkouts to compare (the first is the reference)")
    parser.add_argument("--routers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--writes", type=int, default=3)
    parser.add_argument("--bundle-root", help="where bundles go (default: a folder under /tmp)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    trees = [Path(t).resolve() for t in args.trees] + ([REPO] if len(args.trees) == 1 else [])
    if len(set(trees)) != len(trees):  # each checkout's figures are kept under its path
        parser.error("give different checkouts (one alone is compared with this one)")
    load, work, root = prepare(args.bundle_root)
    results: dict = {"benchmark": "bundle_trees", "machine": print_machine(), "args": vars(args),
                     "trees": [str(t) for t in trees], "rounds": []}
    run = finished_run(args.routers, args.workers, work)
    print(f"one collect of {args.routers} routers x {len(COMMANDS)} commands kept; bundles under {root}; "
          f"{args.rounds} rounds of {args.writes} writes per checkout")
    for rnd in range(args.rounds):
        order = trees[rnd % len(trees):] + trees[:rnd % len(trees)]
        entry: dict = {"fs_probe": fs_probe(Path(tempfile.mkdtemp(prefix="bundles-", dir=root)) / "probe")}
        for tree in order:
            entry[str(tree)] = write_with(tree, run, Path(tempfile.mkdtemp(prefix="bundles-", dir=root)), args.writes)
        results["rounds"].append(entry)
        print(f"  round {rnd + 1}: " + "; ".join(
            f"{tree.name} {entry[str(tree)]['wall'] * 1000:.1f} ms ({entry[str(tree)]['cpu'] * 1000:.1f} ms CPU)"
            for tree in trees) + f"; the file system alone: {entry['fs_probe']['wall'] * 1000:.0f} ms")
    first = median([r[str(trees[0])]["wall"] for r in results["rounds"]])
    summary = {}
    for tree in trees:
        wall = median([r[str(tree)]["wall"] for r in results["rounds"]])
        cpu = median([r[str(tree)]["cpu"] for r in results["rounds"]])
        summary[str(tree)] = {"wall": wall, "cpu": cpu, "ratio": wall / first}
        print(f"{tree}: {wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU (medians of the rounds' least): "
              f"{wall / first:.2f} of {trees[0].name}")
    results["summary"] = summary
    remove_bundles(root)
    results["other_load"] = load.report()
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
