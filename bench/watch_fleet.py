"""Benchmark 11: `collector watch` end to end on a large fleet, syslog first, an SSH poll as backstop.

The fleet: one lab model of --routers routers (seed 0, lab clock frozen, `desync:--flows`)
served by --labs processes (`collector lab up --serve`; with 2, one serves hub[12]* and
spoke[1-4]*, the other the rest; each process models the whole fleet, as a tunnel needs
both ends in one model). Every router sends its syslog to the agent. The agent is
`collector watch --syslog` as its own process, as an operator starts it, with a copy of
the shipped playbook: the log poll every --backstop seconds (15 minutes), QFP polling off,
`guards.max_armed_routers` raised to --cap. A sender process adds ordinary syslog traffic
(--syslog-rate datagrams a second from the routers' own source addresses, 1 line a minute
per router at 10,000). known_hosts holds the lab's keys (derived from the seed), as on any
day after the first.

Measured, reading the agent's state store (read only) and /proc:
  start-up    the agent's start: its check of every router for the tool's dead-man
              applets (a new store), then the first poll of every router
  phase 1     10 s after the first poll: the first lab process's clock is stepped 45 s,
              so the flows whose receiver it serves log their first invalid-SPI line (UDP
              syslog to the agent, which confirms it over SSH and arms both ends)
  phase 2     during the next backstop poll (about a third of the fleet read): the other
              lab process's clock is stepped: its flows, while the poll holds --workers
              sessions
  detection -> armed: per flow, from the agent's receipt of the first invalid-SPI datagram
              (its `received_at` in the store) to the incident's `armed_at` (both ends
              armed and the receiver's log marked). Also printed from the step request:
              that adds the lab's own time to run 45 s of the whole fleet's model, about
              13 s at 10,000 routers, which no router would take
  cycle       agent CPU from the start of the first poll to the start of the next: one
              whole backstop cycle (a poll of every router, the idle time, syslog
              traffic, phase 1's incidents), over its wall time
  memory      the agent's peak RSS (VmHWM); sessions open (sockets) while idle
              (CPU and memory include the agent's syslog reader process)
  stop        SIGTERM: the agent disarms what is armed; then every flow end is asked for
              the tool's debugs and conditions on the lab

Targets (issue 15 item 4): the agent under 0.5 of a core over the cycle and under 1 GiB;
detection to both ends armed within the syslog-mode targets of benchmark 4 (median < 1 s,
p95 < 2 s) with every flow armed; no router left armed after the stop.

    .venv/bin/python bench/watch_fleet.py [--routers 10000] [--labs 2] [--flows 20]
        [--backstop 900] [--syslog-rate 167] [--workers 20] [--json FILE]
    .venv/bin/python bench/watch_fleet.py --analyse RUN.json WORK/state/state.db   (a finished run again)

Lab, agent and sender processes are children of this one and are stopped on the way out,
on Ctrl-C too (and die with it if it is killed: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import ctypes
import fnmatch
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path

import yaml

from _common import (REPO, OtherLoad, free_port_base, free_udp_port, isolate_state, median, pct, print_machine,
                     proc_cpu_seconds, proc_rss_bytes, proc_status_kib, raise_fd_limit, save_json, syslog_readers,
                     verdict)

TARGET_CORE = 0.5
TARGET_RSS = 1 << 30
TARGET_MEDIAN = 1.0
TARGET_P95 = 2.0
SEED = 0
STEP = 45  # lab seconds: each desync receiver logs its first invalid-SPI line
warnings.filterwarnings("ignore", message="DSA is deprecated")  # asyncssh's import (the lab's host keys)
SPLITS = {1: [()], 2: [("hub[12]*", "spoke[1-4]*"), ("hub[3-9]*", "spoke[5-9]*")]}

SENDER = r"""
import socket, sys, time
port, rate = int(sys.argv[1]), float(sys.argv[2])
sources = open(sys.argv[3]).read().split()
socks = []
for source in sources:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    socks.append(s)
line = b"<189>Dec  6 01:02:03.456: %LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet2, changed state to up"
target, sent, t0 = ("127.0.0.1", port), 0, time.perf_counter()
while True:
    due = int((time.perf_counter() - t0) * rate)
    while sent < due:
        socks[sent % len(socks)].sendto(line, target)
        sent += 1
    time.sleep(0.01)
"""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                preexec_fn=_die_with_parent)


def _stop(process: subprocess.Popen | None, timeout: float) -> int | None:
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
    return process.returncode


def model_names(routers: int) -> list[str]:
    from collector.lab.topology import hub_count

    hubs = hub_count(routers)
    return [f"hub{i}" for i in range(1, hubs + 1)] + [f"spoke{k}" for k in range(1, routers - hubs + 1)]


class ServedLab:
    """`collector lab up --serve ...` in the foreground, as a child of this process."""

    def __init__(self, index: int, patterns: tuple[str, ...], served: int, base_port: int, args, syslog_port: int,
                 folder: Path):
        self.index, self.patterns, self.served, self.base_port = index, patterns, served, base_port
        self.state = folder / f"lab{index}"
        self.state.mkdir(parents=True, exist_ok=True)
        self.args = [sys.executable, "-m", "collector", "lab", "up", "--routers", str(args.routers),
                     "--scenario", f"desync:{args.flows}", "--time-scale", "0", "--seed", str(SEED),
                     "--state-dir", str(self.state),
                     "--syslog-to", f"127.0.0.1:{syslog_port}", *(a for p in patterns for a in ("--serve", p))]
        self.realism = args.realism
        self.process: subprocess.Popen | None = None
        self.pid = 0

    def spawn(self) -> "ServedLab":
        env = {**os.environ, "COLLECTOR_LAB_REALISM": self.realism}
        self.process = _spawn([*self.args, "--base-port", str(self.base_port)], self.state / "lab-process.log", env)
        return self

    def wait_ready(self, timeout: float, tries: int = 5) -> "ServedLab":
        """Until the lab answers; another range of ports when one was taken meanwhile (other
        labs run on this machine)."""
        from collector.lab.settings import read_control_file

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = (self.state / "lab-process.log").read_text(errors="replace")
                if "already in use" in said[-300:] and tries > 1:
                    try:
                        self.base_port = free_port_base(self.served, start=random.randrange(10_001, 31_000 - self.served))
                    except RuntimeError:  # none above that start
                        self.base_port = free_port_base(self.served)
                    (self.state / "lab-process.log").write_text("")
                    return self.spawn().wait_ready(deadline - time.monotonic(), tries - 1)
                raise RuntimeError(f"lab {self.index} exited {self.process.returncode}: " + said[-1500:])
            info = read_control_file(self.state)
            if info is not None and info.get("pid") == self.process.pid:
                self.pid, self.control_port = self.process.pid, int(info["control_port"])
                return self
            time.sleep(0.5)
        raise RuntimeError(f"lab {self.index} not ready after {timeout:.0f} s")

    @property
    def inventory_path(self) -> Path:
        return self.state / "inventory.yaml"

    def control(self):
        from collector.lab.control import LabControl

        return LabControl("127.0.0.1", self.control_port, timeout=120)

    def stop(self) -> None:
        _stop(self.process, 60)


def merged_inventory(labs: list[ServedLab], path: Path) -> tuple[dict, dict[str, ServedLab]]:
    merged: dict = {}
    lab_of: dict[str, ServedLab] = {}
    for lab in labs:
        data = yaml.safe_load(lab.inventory_path.read_text())
        if not merged:
            merged = {**data, "hosts": {}}
        merged["groups"].update(data.get("groups") or {})
        for name, host in data["hosts"].items():
            merged["hosts"][name] = host
            lab_of[name] = lab
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return merged, lab_of


def write_known_hosts(hosts: dict, path: Path) -> None:
    """The lab's host keys, derived from its seed: the state after a first day of polls."""
    from collector.hostkeys import host_key_name
    from collector.lab.sshserver import derive_host_key

    lines = []
    for name, host in hosts.items():
        kind, body = derive_host_key(SEED, name).export_public_key("openssh").decode().split()[:2]
        lines.append(f"{host_key_name(host['hostname'], host['port'])} {kind} {body}\n")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text("".join(lines))
    path.chmod(0o600)


def write_playbook(path: Path, backstop: float, cap: int) -> Path:
    from collector.playbook import load_playbook
    from collector.resources import playbooks_dir

    data = yaml.safe_load((playbooks_dir() / "invalid-spi.yaml").read_text())
    data["sources"]["poll"]["interval"] = f"{int(backstop)}s"
    data["sources"]["qfp"]["enabled"] = False
    data["guards"]["max_armed_routers"] = cap
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_playbook(path)  # valid as the agent will read it
    return path


class Sampler(threading.Thread):
    """The agent's CPU, RSS, peak RSS, threads and sockets, and the labs' CPU, every 2 s."""

    def __init__(self, pid: int, labs: list[ServedLab]):
        super().__init__(name="sampler", daemon=True)
        self.pid, self.labs = pid, labs
        self.samples: list[dict] = []
        self.done = threading.Event()

    def read(self) -> dict | None:
        try:
            fields = proc_status_kib(self.pid, "VmRSS", "VmHWM", "Threads")
            sockets = sum(1 for fd in os.scandir(f"/proc/{self.pid}/fd") if os.readlink(fd.path).startswith("socket:"))
            readers = syslog_readers(self.pid)  # the agent's syslog socket is read in a process of its own
            memory = [fields] + [proc_status_kib(pid, "VmRSS", "VmHWM") for pid in readers]
            return {"t": time.time(), "cpu": proc_cpu_seconds(self.pid) + sum(proc_cpu_seconds(pid) for pid in readers),
                    "rss": sum(m["VmRSS"] for m in memory) * 1024, "hwm": sum(m["VmHWM"] for m in memory) * 1024,
                    "threads": fields["Threads"], "readers": len(readers),
                    "sockets": sockets, "lab_cpu": sum(proc_cpu_seconds(lab.pid) for lab in self.labs),
                    "lab_rss": sum(proc_rss_bytes(lab.pid) for lab in self.labs)}
        except (OSError, KeyError, ValueError):
            return None

    def run(self) -> None:
        while not self.done.wait(2.0):
            sample = self.read()
            if sample is not None:
                self.samples.append(sample)

    def at(self, t: float) -> dict:
        return min(self.samples, key=lambda s: abs(s["t"] - t))

    def between(self, t0: float, t1: float) -> list[dict]:
        return [s for s in self.samples if t0 <= s["t"] <= t1]


class Store:
    """The agent's state store, read only."""

    def __init__(self, path: Path):
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _rows(self, sql: str) -> list[tuple]:
        if self._conn is None:
            if not self.path.exists():
                return []
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            return self._conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the schema is still being made
            return []

    def read_times(self) -> list[tuple[str, float]]:
        return [(r[0], _ts(r[1])) for r in self._rows("SELECT router, read_at FROM log_cursors")]

    def syslog_arrivals(self) -> dict[str, float]:
        """incident -> when the agent received its first invalid-SPI datagram."""
        rows = self._rows("SELECT incident_id, min(received_at) FROM events WHERE source = 'syslog' "
                          "AND incident_id IS NOT NULL GROUP BY incident_id")
        return {r[0]: _ts(r[1]) for r in rows}

    def incidents(self) -> list[dict]:
        rows = self._rows("SELECT incident_id, routers, state, reason, created_at, armed_at FROM incidents")
        return [{"id": r[0], "routers": set(json.loads(r[1])), "state": r[2], "reason": r[3],
                 "created": _ts(r[4]), "armed": _ts(r[5]) if r[5] else None} for r in rows]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def wait_poll(store: Store, after: float, count: int, timeout: float, share: float = 1.0,
              exclude: frozenset[str] = frozenset(), stall: float | None = 120.0) -> tuple[float, float, int]:
    """Until `share` of `count` routers were read after `after` (or, with `stall`, nothing
    new for that long): (first read, last read, routers read). `exclude`: routers read for
    incidents too (a syslog line's confirmation, arming), not counted as the poll's."""
    def reads() -> list[float]:
        return [t for name, t in store.read_times() if t > after and name not in exclude]

    deadline, last_n, last_change = time.time() + timeout, -1, time.time()
    while time.time() < deadline:
        times = reads()
        if len(times) != last_n:
            last_n, last_change = len(times), time.time()
        if times and (len(times) >= share * count or (stall and time.time() - last_change > stall)):
            return min(times), max(times), len(times)
        time.sleep(1.0)
    times = reads()
    return (min(times), max(times), len(times)) if times else (after, after, 0)


def trigger(name: str, lab: ServedLab, flows: list[dict], store: Store, timeout: float = 180.0) -> dict:
    """Step `lab`'s clock; per flow, the time until its incident is armed on both ends,
    from the step and from the first invalid-SPI line's arrival at the agent."""
    pairs = [frozenset((f["receiver"], f["sender"])) for f in flows]
    with lab.control() as control:
        t0 = time.time()
        control.step(STEP)
        stepped = time.time() - t0
    deadline = time.time() + timeout
    while time.time() < deadline and len(armed_times(store, pairs, t0)) < len(pairs):
        time.sleep(0.5)
    # the agent's writer may store a flow's syslog arrival after its "armed": wait a little for them
    settle = time.time() + 10
    while time.time() < settle and not set(i["id"] for i in armed_times(store, pairs, t0).values()) <= set(
            store.syslog_arrivals()):
        time.sleep(0.5)
    out = {"phase": name, "t0": t0, "step_s": stepped, "flows": len(pairs), "pairs": [sorted(p) for p in pairs]}
    out.update(latencies_of(store, out))
    print(f"  {name}: the lab took {stepped:.1f} s to run {STEP} lab seconds of its {len(lab_names(lab))} "
          f"routers' model; {out['armed']} of {len(pairs)} flows armed on both ends")
    say_latencies(out)
    return out


def armed_times(store: Store, pairs: list[frozenset], t0: float) -> dict[frozenset, dict]:
    """pair -> its incident (armed, and opened after `t0`)."""
    found: dict[frozenset, dict] = {}
    for incident in store.incidents():
        if incident["armed"] is not None and incident["created"] >= t0 - 1:
            for pair in pairs:
                if pair <= incident["routers"] and pair not in found:
                    found[pair] = incident
    return found


def latencies_of(store: Store, phase: dict) -> dict:
    """Detection -> armed per flow: from the first invalid-SPI datagram's arrival at the
    agent (the verdict: the lab's step, which runs the whole fleet's model, is not the
    agent's) and from the step request."""
    pairs = [frozenset(p) for p in phase["pairs"]]
    found = armed_times(store, pairs, phase["t0"])
    arrivals = store.syslog_arrivals()
    from_line = sorted(i["armed"] - arrivals[i["id"]] for i in found.values() if i["id"] in arrivals)
    from_step = sorted(i["armed"] - phase["t0"] for i in found.values())
    return {"armed": len(found), "latencies": from_line, "latencies_from_step": from_step,
            "median_s": median(from_line) if from_line else None, "p95_s": pct(from_line, 95) if from_line else None,
            "not_armed": [sorted(p) for p in pairs if p not in found]}


def say_latencies(phase: dict) -> None:
    line, step = phase["latencies"], phase["latencies_from_step"]
    if line:
        print(f"    the line's arrival at the agent -> armed: median {median(line):.2f} s, p95 {pct(line, 95):.2f} s, "
              f"max {line[-1]:.2f} s ({len(line)} flows)")
    if step:
        print(f"    the step request -> armed: median {median(step):.2f} s, max {step[-1]:.2f} s")


def lab_names(lab: ServedLab) -> list[str]:
    return list(yaml.safe_load(lab.inventory_path.read_text())["hosts"]) if lab.inventory_path.exists() else []


def what_the_tool_touches(state: dict) -> dict:
    """The parts of a lab router's state arming changes: debugs and conditions, EEM applets,
    logging settings."""
    return {"debug": state.get("debug"), "applets": state.get("applets"), "logging": state.get("logging")}


def flow_end_states(flows: list[dict], lab_of: dict) -> dict[str, dict]:
    ends = sorted({n for f in flows for n in (f["receiver"], f["sender"])})
    states = {}
    for name in ends:
        with lab_of[name].control() as control:
            states[name] = what_the_tool_touches(control.state(name))
    return states


def run(args, work: Path, out: dict) -> bool:
    from collector.hostkeys import default_known_hosts_path

    names = model_names(args.routers)
    splits = SPLITS[args.labs]
    served = [[n for n in names if not split or any(fnmatch.fnmatchcase(n, p) for p in split)] for split in splits]
    syslog_port = free_udp_port()
    labs: list[ServedLab] = []
    base = 10001
    for index, (split, mine) in enumerate(zip(splits, served), start=1):
        base = free_port_base(len(mine), start=base)
        labs.append(ServedLab(index, split, len(mine), base, args, syslog_port, work))
        base += len(mine) + 2
    agent = sender = None
    sampler = None
    baseline: dict[str, dict] = {}
    results: list[dict] = []
    lab_of: dict = {}
    try:
        t_labs = time.time()
        for lab in labs:
            lab.spawn()
        for lab in labs:
            lab.wait_ready(900)
        print(f"labs: {args.routers} routers modelled, served by {len(labs)} process(es) "
              + ", ".join(f"[{' '.join(lab.patterns) or 'all'}] {lab.served} (pid {lab.pid})" for lab in labs)
              + f"; up in {time.time() - t_labs:.0f} s")
        inventory_path = work / "inventory.yaml"
        merged, lab_of = merged_inventory(labs, inventory_path)
        hosts = merged["hosts"]
        write_known_hosts(hosts, default_known_hosts_path())
        with labs[0].control() as control:
            flows = [p for p in control.pairs() if p["scenario"] == "desync"]
        phases = [[f for f in flows if lab_of[f["receiver"]] is lab] for lab in labs]
        out["flows"] = flows
        print(f"fleet: {len(hosts)} routers in the inventory, {len(flows)} desync flows; receivers served by "
              + ", ".join(f"lab {lab.index}: {len(p)}" for lab, p in zip(labs, phases)))
        baseline = flow_end_states(flows, lab_of)  # before the agent: what each end must be left as
        playbook = write_playbook(work / "playbook.yaml", args.backstop, args.cap)
        state = work / "state"
        sources = sorted({h["addresses"][-1] for h in hosts.values() if h.get("addresses")})
        (work / "sources.txt").write_text("\n".join(sources))  # 10,000 addresses: too long for one argument
        sender = _spawn([sys.executable, "-c", SENDER, str(syslog_port), str(args.syslog_rate),
                         str(work / "sources.txt")], work / "sender.log")
        env = {**os.environ, "COLLECTOR_STATE": str(state),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        t_agent = time.time()
        agent = _spawn([sys.executable, "-m", "collector", "watch", "-i", str(inventory_path), "--playbook",
                        str(playbook), "--syslog", f"127.0.0.1:{syslog_port}", "--out", str(work / "bundles"),
                        "--workers", str(args.workers)], work / "agent.log", env)
        sampler = Sampler(agent.pid, labs)
        sampler.start()
        store = Store(state / "state.db")
        print(f"agent: `collector watch --syslog` pid {agent.pid}, {args.workers} workers, poll every "
              f"{args.backstop:.0f} s; ordinary syslog {args.syslog_rate:.0f}/s from {len(sources)} router addresses")

        first0, first1, read = wait_poll(store, t_agent, len(hosts), timeout=args.backstop + 1800)
        startup = {"agent_start": t_agent, "poll_start": first0, "poll_end": first1, "routers_read": read,
                   "check_s": first0 - t_agent, "poll_s": first1 - first0,
                   "cpu_s": sampler.at(first1)["cpu"]}
        out["startup"] = startup
        print(f"  start-up: dead-man applet check of every router {startup['check_s']:.0f} s, then the first poll "
              f"{startup['poll_s']:.0f} s ({read} of {len(hosts)} routers read); agent CPU so far "
              f"{startup['cpu_s']:.0f} s = {startup['cpu_s'] / (first1 - t_agent):.2f} core")
        time.sleep(10)
        idle = sampler.at(time.time())
        out["idle"] = {"sockets": idle["sockets"], "threads": idle["threads"], "rss": idle["rss"]}
        print(f"  idle after the poll: {idle['sockets']} sockets open in the agent, {idle['threads']} threads, "
              f"RSS {idle['rss'] / 2**20:.0f} MiB")
        results = [trigger("phase 1 (idle)", labs[0], phases[0], store)]
        time.sleep(5)
        held = sampler.at(time.time())
        out["held"] = {"sockets": held["sockets"], "threads": held["threads"]}
        print(f"  with phase 1's incidents open: {held['sockets']} sockets, {held['threads']} threads")
        # Reads before the next poll is due are confirmations of syslog lines (the realistic lab's
        # scanners hit routers all the time): counted from just before it is due, they would
        # date the poll's start minutes early.
        due = max(first1 + 1, first0 + args.backstop - 5)
        if len(labs) > 1:
            print(f"  waiting for the next backstop poll (due {first0 + args.backstop - time.time():.0f} s from now)")
            ends = frozenset(baseline)
            second0, _, _ = wait_poll(store, due, len(hosts), timeout=args.backstop + 600, share=0.3,
                                      exclude=ends, stall=None)
            results.append(trigger("phase 2 (during the backstop poll)", labs[1], phases[1], store))
            _, second1, read2 = wait_poll(store, due, len(hosts), timeout=900, exclude=ends)
            cycle0, cycle1 = sampler.at(first0), sampler.at(second0)
            out["second_poll"] = {"start": second0, "end": second1, "routers_read": read2, "poll_s": second1 - second0}
            print(f"  second poll: {second1 - second0:.0f} s ({read2} routers read besides the flow ends)")
        else:  # one lab: the cycle is waited for without a second trigger
            second0, _, _ = wait_poll(store, due, len(hosts), timeout=args.backstop + 600, share=0.01,
                                      exclude=frozenset(baseline), stall=None)
            cycle0, cycle1 = sampler.at(first0), sampler.at(second0)
        cycle = {"wall_s": cycle1["t"] - cycle0["t"], "cpu_s": cycle1["cpu"] - cycle0["cpu"],
                 "lab_cpu_s": cycle1["lab_cpu"] - cycle0["lab_cpu"]}
        cycle["core"] = cycle["cpu_s"] / cycle["wall_s"]
        windows = sampler.between(cycle0["t"], cycle1["t"])
        peaks = [(b["cpu"] - a["cpu"]) / (b["t"] - a["t"]) for a, b in zip(windows, windows[5:])]
        cycle["peak_10s_core"] = max(peaks) if peaks else None
        out["cycle"] = cycle
        print(f"  one backstop cycle (start of a poll to the next, {cycle['wall_s']:.0f} s): agent CPU "
              f"{cycle['cpu_s']:.1f} s = {cycle['core']:.3f} core (peak 10 s: {cycle['peak_10s_core'] or 0:.2f}); "
              f"labs {cycle['lab_cpu_s']:.0f} s")
    finally:
        t_stop = time.time()
        code = _stop(agent, 900) if agent is not None else None
        stop_s = time.time() - t_stop
        if sampler is not None:
            sampler.done.set()
            sampler.join()
        _stop(sender, 10)
        left = None
        if agent is not None and baseline:
            left = []
            for name, before in baseline.items():
                try:
                    with lab_of[name].control() as control:
                        if what_the_tool_touches(control.state(name)) != before:
                            left.append(name)
                except Exception as exc:  # noqa: BLE001 - said, and counted as not back
                    left.append(f"{name} (not read: {exc})")
        for lab in labs:
            lab.stop()
    out.update(stop_s=stop_s, agent_exit=code, left_armed=left, phases=results)
    samples = sampler.samples if sampler else []
    out["samples"] = samples
    peak = max((s["hwm"] for s in samples), default=0)
    out["agent_peak_rss"] = peak
    print(f"  stop: SIGTERM -> exit {code} in {stop_s:.0f} s; flow ends not back as they were (debugs, "
          f"conditions, applets, logging): "
          f"{len(left) if left is not None else 'not checked'}{' ' + ', '.join(left) if left else ''}")
    print(f"  agent peak RSS {peak / 2**20:.0f} MiB; labs RSS {max((s['lab_rss'] for s in samples), default=0) / 2**20:.0f} MiB")
    return verdicts(out)


def verdicts(out: dict) -> bool:
    results, peak, left = out["phases"], out["agent_peak_rss"], out["left_armed"]
    lat = [x for r in results for x in r["latencies"]]
    flows_total = sum(r["flows"] for r in results)
    armed = sum(r["armed"] for r in results)
    checks = {
        f"agent CPU over one backstop cycle < {TARGET_CORE} core": out["cycle"]["core"] < TARGET_CORE,
        "agent peak RSS < 1 GiB": 0 < peak < TARGET_RSS,
        f"every flow armed on both ends ({armed} of {flows_total})": armed == flows_total > 0,
        f"detection -> armed median < {TARGET_MEDIAN:.0f} s": bool(lat) and median(lat) < TARGET_MEDIAN,
        f"detection -> armed p95 < {TARGET_P95:.0f} s": bool(lat) and pct(lat, 95) < TARGET_P95,
        "no router left armed (or changed) after the stop": left == [],
    }
    for phase in results:
        if phase["latencies"]:
            checks[f"{phase['phase']}: median < 1 s, p95 < 2 s, all armed"] = (
                phase["median_s"] < TARGET_MEDIAN and phase["p95_s"] < TARGET_P95 and phase["armed"] == phase["flows"])
    out["checks"] = {k: verdict(v) for k, v in checks.items()}
    print()
    for what, ok in checks.items():
        print(f"result: {what} -> {verdict(ok)}")
    if lat:
        print(f"detection (the line at the agent) -> armed over all {len(lat)} flows: median {median(lat):.2f} s, "
              f"p95 {pct(lat, 95):.2f} s")
    return all(checks.values())


def analyse(json_path: Path, state_db: Path) -> int:
    """The latencies and verdicts of a finished run again, from its JSON and the agent's
    state store (kept in the run's work folder): for a run whose figures were taken from
    the step request only."""
    out = json.loads(json_path.read_text())
    store = Store(state_db)
    starts = sorted(phase["t0"] for phase in out["phases"])
    for index, phase in enumerate(sorted(out["phases"], key=lambda p: p["t0"])):
        if "pairs" not in phase:  # the flows whose incident opened in this phase
            until = starts[index + 1] if index + 1 < len(starts) else float("inf")
            phase["pairs"] = [sorted((f["receiver"], f["sender"])) for f in out["flows"]
                              if any(frozenset((f["receiver"], f["sender"])) <= i["routers"]
                                     and phase["t0"] - 1 <= i["created"] < until for i in store.incidents())]
        phase.update(latencies_of(store, phase))
        print(f"  {phase['phase']}: {phase['armed']} of {phase['flows']} flows armed on both ends")
        say_latencies(phase)
    ok = verdicts(out)
    json_path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"results written to {json_path}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=10_000)
    parser.add_argument("--labs", type=int, default=2, choices=sorted(SPLITS))
    parser.add_argument("--flows", type=int, default=20)
    parser.add_argument("--backstop", type=float, default=900.0, help="seconds between log polls")
    parser.add_argument("--syslog-rate", type=float, default=167.0, help="ordinary datagrams a second")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--cap", type=int, default=64, help="guards.max_armed_routers in the playbook copy")
    parser.add_argument("--realism", default="-operator-debug",
                        help="the labs' COLLECTOR_LAB_REALISM (default: every trait but operator-debug, whose routers "
                             "are refused by design, so that every flow can be armed)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--analyse", nargs=2, metavar=("JSON", "STATE_DB"),
                        help="recompute the latencies and verdicts of a finished run from its JSON and state store")
    args = parser.parse_args()
    if args.analyse:
        return analyse(Path(args.analyse[0]), Path(args.analyse[1]))
    if args.routers > 10_000 or args.routers < 100:
        print(f"--routers {args.routers}: from 100 to 10,000 (the lab's limit)", file=sys.stderr)
        return 2
    load = OtherLoad()
    work = isolate_state()
    raise_fd_limit()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    results: dict = {"benchmark": "watch_fleet", "machine": print_machine(), "args": vars(args)}
    print(f"work folder {work}; load {os.getloadavg()[0]:.1f}")
    ok = False
    try:
        ok = run(args, work, results)
    finally:
        results["other_load"] = load.report()
        save_json(args.json, results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
