"""Benchmark 9: what writing the bundle costs in a 200-router collect, and where the rest goes.

One lab (own process). Each round, alternated (the order rotates from round to round):
  process     the whole command, `collector collect --json` (start-up and exit included):
              the denominator of every share
  ab_bundle / the whole command again, through bench/_collect_bundle_ab.py, with its bundle
  ab_none     and with a bundle that writes nothing (the --json lines then redact for
              themselves): their difference is what the bundle adds to the command's wall
              time, the figure held against the target
  in_process  the steps of `collector collect --json` as cli/collect.py runs them, timed apart:
              `collect()` (sessions closed by their workers) with each router's bundle
              files written as it finishes (`CollectionBundle.add`, in the worker thread
              that read it: redaction, files, hashes), then the sealing (results.json,
              manifest, one flush, the rename), then the --json lines (redacted) to a file
  no_bundle   the same collection in-process without any bundle
  process_tmpfs  the whole command with its bundle on a tmpfs (--tmpfs, default /dev/shm):
              `process` minus this is what the disk costs the command, the measure of
              issue 15's "about 10 % today" (7.0 s, and 6.2 s with the bundle on tmpfs)
After each in-process round (and its --json lines) the same bundle is written again from
the finished run with nothing else running (`write_collection_bundle`, the least of 3
writes): all the bundle's work done serially, printed with its share of the command (what
the share would be if none of it overlapped the network waits).
  fs_probe    at the start of each round: 201 folders and 1,202 files of 2.6 KB created
              with nothing else (the file system's own cost at that moment). Bundles are
              kept until the end: on an ext4 without a journal (this machine) a new inode
              skips every inode freed in the last 30 s, so deleting a bundle makes the next
              one dearer.
`os.fsync` is wrapped during the in-process bundle write to count the calls and their time.
`--bundle-root` on a tmpfs (/dev/shm) shows what the disk itself costs.

Target: writing the bundle takes at most 5 % of the whole command's wall time: the bundle's
whole work done serially (the least of 3 writes) over the `process` wall time, median of the
rounds (the measure of the earlier figures in docs/performance.md, the result line). A second
verdict holds the issue's own measure to the same 5 %: `process` minus `process_tmpfs`. The
whole-process A/B (wall and CPU) is printed beside it: it is what the bundle adds net (its
redactions serve the --json lines too), but on a shared 2-core machine its rounds spread by
half a second of CPU and a second of wall, more than the 0.1 s it is after.

    .venv/bin/python bench/bundle_write.py [--routers 200] [--rounds 5] [--workers 20]
        [--bundle-root DIR] [--tmpfs DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import (OtherLoad, LabProcess, isolate_state, known_hosts_path, median, print_machine, quiet_logs,
                     raise_fd_limit, save_json, seed_known_hosts, self_cpu, verdict)
from anchors import run_process
from fleet_collect import COMMANDS

TARGET_SHARE = 0.05


class FsyncMeter:
    """Counts os.fsync calls and the bundle folder's flush at sealing (syncfs, when the
    writer has one) and their wall time while installed."""

    def __init__(self) -> None:
        from collector import bundle

        self.bundle = bundle
        self.calls, self.seconds, self.flush_s = 0, 0.0, 0.0
        self._real, self._real_flush = os.fsync, getattr(bundle, "_durable_folder", None)

    def __enter__(self) -> "FsyncMeter":
        def timed(fd: int) -> None:
            t0 = time.perf_counter()
            try:
                self._real(fd)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - t0

        def timed_flush(folder) -> None:
            t0 = time.perf_counter()
            try:
                self._real_flush(folder)
            finally:
                self.flush_s += time.perf_counter() - t0

        os.fsync = timed
        if self._real_flush is not None:
            self.bundle._durable_folder = timed_flush
        return self

    def __exit__(self, *exc: object) -> None:
        os.fsync = self._real
        if self._real_flush is not None:
            self.bundle._durable_folder = self._real_flush


def in_process(inventory, out_root: Path, json_out: Path, workers: int, with_bundle: bool = True) -> dict:
    """The steps of `collector collect --json` as cli/collect.py runs them, each timed: the bundle's
    per-router files are written as routers finish (`CollectionBundle.add`, timed apart:
    that time overlaps the other routers' network waits), then sealed."""
    from collector.collect import collect
    from collector.hostkeys import KnownHosts
    from collector.parsing import default_registry
    from collector.redact import redact_data
    from collector.sessions import SessionPool

    try:
        from collector.collect import CollectionBundle
    except ImportError:  # a checkout from before the streamed bundle: written after the collection
        CollectionBundle = None
    hosts = list(inventory.hosts.values())
    adds = {"wall": 0.0}
    adding = threading.Lock()
    with FsyncMeter() as fsyncs:
        writing = CollectionBundle(out_root, inventory) if CollectionBundle and with_bundle else None

        def add(outcome) -> None:  # in the worker threads: their wall times add up, overlapping
            a0 = time.perf_counter()
            writing.add(outcome)
            with adding:
                adds["wall"] += time.perf_counter() - a0

        t0, c0 = time.perf_counter(), self_cpu()
        with SessionPool(KnownHosts.default(), max_sessions=workers, keep_open=False) as pool:
            run = collect(hosts, COMMANDS, pool=pool, registry=default_registry(), workers=workers,
                          on_host_done=add if writing else None)
        t1, c1 = time.perf_counter(), self_cpu()
        if writing:
            bundle = writing.seal(run)
        elif with_bundle:
            from collector.collect import write_collection_bundle

            bundle = write_collection_bundle(run, out_root=out_root, inventory=inventory)
        t2, c2 = time.perf_counter(), self_cpu()
    secrets = inventory.secret_values()
    memo = getattr(writing, "redaction_memo", None)  # as the CLI: the bundle's redactions reused
    with json_out.open("w") as out:
        for outcome in run.outcomes:
            for r in outcome.results:
                row = {"host": r.router, "command": r.command, "raw": r.text, "parsed": r.parsed, "error": r.error,
                       "seconds": round(r.seconds, 4)}
                out.write(json.dumps(redact_data(row, secrets, **({"memo": memo} if memo is not None else {})),
                                     default=str) + "\n")
    t3, c3 = time.perf_counter(), self_cpu()
    if not with_bundle:
        return {"collect": t1 - t0, "collect_cpu": c1 - c0, "json": t3 - t2, "failed": len(run.failed)}
    # the same bundle written again from the finished run, nothing else running
    from collector.collect import write_collection_bundle

    walls, cpus = [], []
    for n in range(3):  # the least of three: other load only ever adds
        s0, sc0 = time.perf_counter(), self_cpu()
        write_collection_bundle(run, out_root=out_root / f"serial{n}", inventory=inventory)
        walls.append(time.perf_counter() - s0)
        cpus.append(self_cpu() - sc0)
    serial, serial_cpu = min(walls), min(cpus)
    files = [p for p in bundle.rglob("*") if p.is_file()]
    return {"collect": t1 - t0, "collect_cpu": c1 - c0, "adds": adds["wall"], "seal": t2 - t1, "serial": serial,
            "serial_cpu": serial_cpu, "bundle": adds["wall"] + (t2 - t1), "seal_cpu": c2 - c1, "json": t3 - t2,
            "json_cpu": c3 - c2, "fsync_calls": fsyncs.calls, "fsync_s": fsyncs.seconds,
            "folder_flush_s": fsyncs.flush_s, "files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "failed": len(run.failed)}


def fs_probe(folder: Path, folders: int = 201, files: int = 1202, size: int = 2600) -> dict:
    """What creating a bundle's worth of files costs the file system right now, Python
    aside: 201 folders and 1,202 files of 2.6 KB (a 200-router bundle's shape). On an
    ext4 without a journal (this machine's) each new inode skips those freed in the last
    30 s (`recently_deleted`), so anyone's deletions make it dearer."""
    folder.mkdir(parents=True)
    data = b"x" * size
    t0, c0 = time.perf_counter(), self_cpu()
    subs = [folder / str(i) for i in range(folders)]
    for sub in subs:
        os.mkdir(sub)
    for i in range(files):
        fd = os.open(subs[i % folders] / f"{i}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.close(fd)
    return {"wall": time.perf_counter() - t0, "cpu": self_cpu() - c0}


def prepare(bundle_root: str | None) -> tuple[OtherLoad, Path, Path]:
    """A bundle benchmark's start: other load counted from now, the agent's state in a
    throw-away folder, quiet logs, enough file descriptors; returns (load, that folder,
    where bundles go: `bundle_root`, else that folder)."""
    load = OtherLoad()
    work = isolate_state()
    quiet_logs()
    raise_fd_limit()
    root = Path(bundle_root) if bundle_root else work
    root.mkdir(parents=True, exist_ok=True)
    return load, work, root


def remove_bundles(root: Path) -> None:
    """Every bundle the run wrote, at its end: a deletion makes the next files dearer to
    create on this machine's file system (see fs_probe), so none is deleted before."""
    for folder in root.glob("bundles-*"):
        shutil.rmtree(folder, ignore_errors=True)


def whole_process(inventory_path: Path, out_root: Path, work: Path, workers: int, ab: str | None = None) -> dict:
    """`collector collect --json` as a process; `ab` "bundle" / "none": through
    _collect_bundle_ab.py, with its bundle or with one that writes nothing."""
    launcher = ([sys.executable, str(Path(__file__).with_name("_collect_bundle_ab.py")), ab] if ab
                else [str(Path(sys.executable).parent / "collector")])
    argv = [*launcher, "collect", "-i", str(inventory_path), *[p for c in COMMANDS for p in ("-c", c)],
            "--workers", str(workers), "--json", "--out", str(out_root)]
    wall, cpu, code = run_process(argv, work / "collect.out", work / "collect.err")
    rows = [json.loads(line) for line in (work / "collect.out").read_text().splitlines() if line.strip()]
    complete = sum(1 for r in rows if r.get("raw") and not r.get("error"))
    bundles = [p for p in out_root.iterdir() if p.is_dir()] if out_root.is_dir() else []
    return {"wall": wall, "cpu": cpu, "exit": code, "rows": len(rows), "complete": complete, "bundles": len(bundles)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--bundle-root", help="where bundles go (default: a folder under /tmp)")
    parser.add_argument("--tmpfs", default="/dev/shm", help="a tmpfs folder for the process_tmpfs step")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    load, work, root = prepare(args.bundle_root)
    from collector.inventory import load_inventory

    results: dict = {"benchmark": "bundle_write", "machine": print_machine(), "args": vars(args),
                     "bundle_filesystem": os.statvfs(root).f_fsid, "rounds": []}
    with LabProcess(routers=args.routers) as lab:
        inventory = load_inventory(lab.inventory_path)
        seed_known_hosts(((h.hostname, h.port) for h in inventory.hosts.values()), known_hosts_path())
        print(f"lab: {args.routers} routers in pid {lab.pid}; bundles under {root}; {args.rounds} alternated rounds")
        expected = args.routers * len(COMMANDS)
        for rnd in range(args.rounds):
            steps = ("in_process", "ab_bundle", "no_bundle", "process", "ab_none", "process_tmpfs")
            steps = steps[rnd % len(steps):] + steps[:rnd % len(steps)]
            entry: dict = {"load1": os.getloadavg()[0]}
            # every bundle is kept until the end: deleting 1,202 files makes the next ones
            # dearer to create on this machine's file system (see fs_probe)
            entry["fs_probe"] = fs_probe(Path(tempfile.mkdtemp(prefix="bundles-", dir=root)) / "probe")
            for step in steps:
                out_root = Path(tempfile.mkdtemp(prefix="bundles-", dir=root))
                if step in ("in_process", "no_bundle"):
                    entry[step] = in_process(inventory, out_root, work / "rows.jsonl", args.workers,
                                             with_bundle=step == "in_process")
                elif step == "process_tmpfs":
                    on_tmpfs = Path(tempfile.mkdtemp(prefix="bundles-", dir=args.tmpfs))
                    entry[step] = whole_process(lab.inventory_path, on_tmpfs, work, args.workers)
                    shutil.rmtree(on_tmpfs, ignore_errors=True)
                else:
                    entry[step] = whole_process(lab.inventory_path, out_root, work, args.workers,
                                                ab=step[3:] if step.startswith("ab_") else None)
            ip, pr, nb, ab, an = (entry[k] for k in ("in_process", "process", "no_bundle", "ab_bundle", "ab_none"))
            entry["added"] = ip["collect"] + ip["seal"] - nb["collect"]
            entry["marginal"] = ab["wall"] - an["wall"]
            entry["marginal_cpu"] = ab["cpu"] - an["cpu"]
            entry["marginal_share"] = entry["marginal"] / pr["wall"]
            entry["share"] = ip["serial"] / pr["wall"]
            entry["disk"] = pr["wall"] - entry["process_tmpfs"]["wall"]
            entry["cpu_share"] = ip["serial_cpu"] / pr["cpu"]  # robust to other load: both CPU
            results["rounds"].append(entry)
            print(f"  round {rnd + 1}: process {pr['wall']:5.2f} s wall ({pr['cpu']:.2f} s CPU, exit {pr['exit']}, "
                  f"{pr['complete']}/{expected} complete); A/B through _collect_bundle_ab.py: with the bundle "
                  f"{ab['wall']:5.2f} s ({ab['cpu']:.2f} s CPU, {ab['bundles']} bundle), without {an['wall']:5.2f} s "
                  f"({an['cpu']:.2f} s CPU, {an['bundles']} bundle) -> the bundle adds {entry['marginal']:+.3f} s "
                  f"= {entry['marginal_share']:+.1%}; in-process collect {ip['collect']:5.2f} s ({ip['collect_cpu']:.2f} CPU), "
                  f"bundle files written in the workers {ip['adds']:.3f} s (summed over threads), sealing {ip['seal']:.3f} s; "
                  f"{ip['files']} files, {ip['bytes'] / 2**20:.1f} MiB; fsync {ip['fsync_calls']} calls {ip['fsync_s']:.3f} s, "
                  f"folder flush {ip['folder_flush_s']:.3f} s; --json lines {ip['json']:5.3f} s; without a bundle: "
                  f"collect {nb['collect']:5.2f} s; the same bundle written alone from the finished run "
                  f"{ip['serial']:.3f} s ({ip['serial_cpu']:.3f} s CPU) = {entry['share']:.1%} of the command "
                  f"({entry['cpu_share']:.1%} by CPU); the file system alone: 201 folders and 1,202 files "
                  f"{entry['fs_probe']['cpu']:.3f} s CPU; with the bundle on tmpfs {entry['process_tmpfs']['wall']:5.2f} s "
                  f"-> the disk adds {entry['disk']:+.3f} s; load {entry['load1']:.1f}")
    rounds = results["rounds"]
    share = median([r["share"] for r in rounds])
    wall = median([r["process"]["wall"] for r in rounds])
    bundle = median([r["in_process"]["serial"] for r in rounds])
    added = median([r["added"] for r in rounds])
    cpu_share = median([r["cpu_share"] for r in rounds])
    marginal = median([r["marginal"] for r in rounds])
    marginal_cpu = median([r["marginal_cpu"] for r in rounds])
    marginal_share = marginal / wall
    seal = median([r["in_process"]["seal"] for r in rounds])
    print(f"all the bundle's work done serially (written alone from a finished run): {bundle:.3f} s = {share:.1%} "
          f"of the command's wall time, {cpu_share:.1%} of its CPU (medians; what it would cost with no overlap)")
    probe = median([r["fs_probe"]["cpu"] for r in rounds])
    print(f"the file system alone: 201 folders and 1,202 files of 2.6 KB cost {probe:.3f} s CPU (median; tmpfs: "
          "about 0.01 s)")
    print(f"in-process: collect with the bundle written in the workers + sealing ({seal:.3f} s), minus collect "
          f"without a bundle (median of the rounds' differences): {added:+.3f} s")
    print(f"whole process, with the bundle minus without (median of the rounds' differences): {marginal:+.3f} s wall, "
          f"{marginal_cpu:+.3f} s CPU; rounds (wall/CPU): "
          + ", ".join(f"{r['marginal']:+.2f}/{r['marginal_cpu']:+.2f}" for r in rounds))
    runs_ok = all(r[k]["exit"] == 0 and r[k]["complete"] == expected for r in rounds
                  for k in ("process", "ab_bundle", "ab_none", "process_tmpfs"))
    runs_ok = runs_ok and not any(r["in_process"]["failed"] for r in rounds)
    runs_ok = runs_ok and all(r["ab_bundle"]["bundles"] == 1 and r["process"]["bundles"] == 1
                              and r["process_tmpfs"]["bundles"] == 1 for r in rounds)
    process_cpu = median([r["process"]["cpu"] for r in rounds])
    cpu_marginal_share = marginal_cpu / process_cpu
    spread = max(r["marginal"] for r in rounds) - min(r["marginal"] for r in rounds)
    print(f"whole process: the bundle adds {marginal:+.3f} s = {marginal_share:+.1%} of the wall time (the rounds "
          f"spread over {spread:.2f} s: other load), {marginal_cpu:+.3f} s CPU = {cpu_marginal_share:+.1%} of its CPU")
    disk = median([r["disk"] for r in rounds])
    print(f"whole process, the bundle on this disk minus on tmpfs (issue 15's measure; median of the rounds' "
          f"differences): {disk:+.3f} s = {disk / wall:+.1%} of the wall time; rounds: "
          + ", ".join(f"{r['disk']:+.2f}" for r in rounds))
    ok = share <= TARGET_SHARE and runs_ok
    print(f"\nresult: writing the bundle {bundle:.3f} s of a {wall:.2f} s `collector collect --json` "
          f"({args.routers} routers x {len(COMMANDS)} commands): {share:.1%} (target <= {TARGET_SHARE:.0%})"
          f"{'' if runs_ok else '; NOT every run complete'} -> {verdict(ok)}")
    print(f"result by the issue's own measure (the same command with its bundle on tmpfs, alternated): the disk "
          f"adds {disk / wall:+.1%} (target <= {TARGET_SHARE:.0%}) -> {verdict(disk / wall <= TARGET_SHARE and runs_ok)}")
    results.update(share=share, cpu_share=cpu_share, process_wall=wall, bundle_s=bundle, added_s=added,
                   marginal_s=marginal, marginal_cpu_s=marginal_cpu, marginal_share=marginal_share, fs_probe_cpu_s=probe,
                   process_cpu=process_cpu, cpu_marginal_share=cpu_marginal_share, disk_s=disk, disk_share=disk / wall,
                   verdict=verdict(ok))
    remove_bundles(root)
    results["other_load"] = load.report()
    save_json(args.json, results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
