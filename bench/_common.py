"""Helpers shared by the benchmarks: a lab in its own process, CPU/RSS readings, stats, output.

Every benchmark talks only to 127.0.0.0/8 and stops by itself. Labs run as separate
processes (`collector lab up --detach`) so their CPU is read from /proc apart from the
agent's (the benchmark process is the agent).
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/x.py` from anywhere uses this checkout
    sys.path.insert(0, str(REPO))

_TICK = os.sysconf("SC_CLK_TCK")


def isolate_state() -> Path:
    """Point the agent's state (known_hosts above all) at a throw-away folder, before any
    collector import reads $COLLECTOR_STATE: a benchmark must not touch the user's files."""
    folder = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    os.environ["COLLECTOR_STATE"] = str(folder / "state")
    return folder


def raise_fd_limit() -> int:
    """Thousands of kept-open sessions need thousands of descriptors (agent and lab)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def print_machine() -> dict[str, Any]:
    info = machine()
    print(f"machine: {info['nproc']} cores, {info['cpu']}, {info['memory_gib']} GiB, "
          f"Python {info['python']}, {info['date']}")
    return info


# --------------------------------------------------------------------------- process readings


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_status_kib(pid: int, *fields: str) -> dict[str, int]:
    """The asked fields of /proc/PID/status that are sizes (VmRSS, VmHWM...) or counts
    (Threads), as numbers (sizes in KiB); a field the kernel does not report is left out."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in fields:
            found[name] = int(value.split()[0])
    return found


def proc_rss_bytes(pid: int) -> int:
    return proc_status_kib(pid, "VmRSS").get("VmRSS", 0) * 1024


def syslog_readers(parent: int) -> list[int]:
    """The live `collector.detect.syslog_reader` processes started by `parent`: the agent's
    syslog socket is read in a process of its own, whose CPU and memory are the agent's."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and \
                    b"collector.detect.syslog_reader" in Path(entry.path, "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def readers_cpu_seconds(parent: int) -> float:
    total = 0.0
    for pid in syslog_readers(parent):
        try:
            total += proc_cpu_seconds(pid)
        except OSError:
            pass
    return total


def self_cpu() -> float:
    """CPU seconds of this process, every thread (paramiko runs one per session), and of
    the syslog reader processes it started."""
    return time.process_time() + readers_cpu_seconds(os.getpid())


def self_rss() -> int:
    return proc_rss_bytes(os.getpid())


# --------------------------------------------------------------------------- statistics


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def save_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"results written to {path}")


# --------------------------------------------------------------------------- ports


def free_port_base(count: int, *, start: int = 10001, stop: int = 32000) -> int:
    """A base port with `count` + 1 free ports (control port first) on 127.0.0.1, below the
    ephemeral range so our own client sockets never sit on a router's port."""
    base = start
    while base + count < stop:
        clash = _first_busy(base - 1, base + count)
        if clash is None:
            return base
        base = clash + 2
    raise RuntimeError(f"no {count + 1} free consecutive ports between {start} and {stop}")


def _first_busy(first: int, last: int) -> int | None:
    for port in range(first, last + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return port
    return None


# --------------------------------------------------------------------------- lab process


@dataclass
class LabProcess:
    """`collector lab up --detach` in its own process; `lab down` on exit."""

    routers: int
    scenarios: Sequence[str] = ()
    time_scale: float = 1.0
    syslog_to: str | None = None
    seed: int = 0
    realism: str | None = None  # COLLECTOR_LAB_REALISM for the lab (None: the default traits)
    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="collector-bench-lab-")))
    base_port: int | None = None
    pid: int = 0
    control_port: int = 0

    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.yaml"

    def start(self) -> "LabProcess":
        last = ""
        for _attempt in range(5):  # another lab (a test run) may grab ports between check and bind
            base = self.base_port or free_port_base(self.routers)
            args = [sys.executable, "-m", "collector", "lab", "up", "--detach",
                    "--routers", str(self.routers), "--base-port", str(base),
                    "--time-scale", repr(self.time_scale), "--seed", str(self.seed),
                    "--state-dir", str(self.state_dir)]
            for spec in self.scenarios:
                args += ["--scenario", spec]
            if self.syslog_to:
                args += ["--syslog-to", self.syslog_to]
            env = {**os.environ, "COLLECTOR_LAB_REALISM": self.realism} if self.realism is not None else None
            done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
            if done.returncode == 0:
                info = json.loads((self.state_dir / "control.json").read_text())
                self.pid, self.control_port, self.base_port = int(info["pid"]), int(info["control_port"]), base
                _LABS_RUNNING.append(self)
                return self
            last = (done.stderr or done.stdout).strip()
            if "in use" not in last.lower():
                break
        raise RuntimeError(f"lab did not start: {last}")

    def stop(self) -> None:
        if self.pid:
            try:
                _LAB_CPU_DONE.append(self.cpu())
            except OSError:
                pass
            subprocess.run([sys.executable, "-m", "collector", "lab", "down", "--state-dir", str(self.state_dir)],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
            self.pid = 0
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> "LabProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss(self) -> int:
        return proc_rss_bytes(self.pid)

    def control(self):
        from collector.lab.control import LabControl

        return LabControl("127.0.0.1", self.control_port, timeout=120)


_LAB_CPU_DONE: list[float] = []  # lifetime CPU of the labs this run has stopped
_LABS_RUNNING: list[LabProcess] = []


def labs_lifetime_cpu() -> float:
    """CPU of every lab process this benchmark started, over their whole lives."""
    running = 0.0
    for lab in _LABS_RUNNING:
        if lab.pid:
            try:
                running += lab.cpu()
            except OSError:
                pass
    return sum(_LAB_CPU_DONE) + running


class LabCpu:
    """CPU seconds spent by a set of lab processes between two readings."""

    def __init__(self, labs: Iterable[LabProcess]):
        self.labs = list(labs)
        self.start = self._read()

    def _read(self) -> float:
        return sum(lab.cpu() for lab in self.labs)

    def seconds(self) -> float:
        return self._read() - self.start


# --------------------------------------------------------------------------- a WAN


class WanRelay:
    """bench/_wan_relay.py in its own process: a one-way delay of `delay_ms` between the
    agent and the lab's routers (`tcp`), or the lab's syslog and the agent (`udp`)."""

    def __init__(self, delay_ms: float, args: list[str]):
        self.delay_ms = delay_ms
        self._args = args
        self.proc: subprocess.Popen | None = None
        self.ports: dict[str, Any] = {}

    @classmethod
    def tcp(cls, delay_ms: float, target_base: int, count: int) -> "WanRelay":
        return cls(delay_ms, ["--target-base", str(target_base), "--count", str(count),
                              "--listen-base", str(free_port_base(count, start=33001, stop=60000))])

    @classmethod
    def udp(cls, delay_ms: float, target_port: int) -> "WanRelay":
        return cls(delay_ms, ["--udp", f"0:{target_port}"])

    def __enter__(self) -> "WanRelay":
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "_wan_relay.py"),
                                      "--delay-ms", repr(self.delay_ms), *self._args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.__exit__()
            raise RuntimeError("the WAN relay did not start")
        self.ports = json.loads(line)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def inventory_through(self, inventory: Path, lab_base: int, out: Path) -> Path:
        """A copy of the lab's inventory whose routers are reached through this relay."""
        first = self.ports["tcp"][0]
        text = re.sub(r"(?m)^(\s+port: )(\d+)$", lambda m: f"{m.group(1)}{first + int(m.group(2)) - lab_base}",
                      inventory.read_text())
        out.write_text(text)
        return out


# --------------------------------------------------------------------------- host keys


def seed_known_hosts(endpoints: Iterable[tuple[str, int]], path: Path, workers: int = 16) -> int:
    """Record every lab router's host key in `path` in one write.

    The agent's trust-on-first-use writes known_hosts once per new router and re-parses the
    whole file each time (quadratic in fleet size, measured separately by watch_loop.py
    --cold); the steady-state benchmarks start from a known_hosts that already holds the
    fleet, as on the second day of a real deployment."""
    import paramiko

    from collector.hostkeys import host_key_name

    def fetch(endpoint: tuple[str, int]) -> str:
        host, port = endpoint
        transport = paramiko.Transport((host, port))
        try:
            transport.start_client(timeout=30)
            key = transport.get_remote_server_key()
        finally:
            transport.close()
        return f"{host_key_name(host, port)} {key.get_name()} {key.get_base64()}\n"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        lines = list(pool.map(fetch, sorted(set(endpoints))))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text("".join(lines))
    path.chmod(0o600)
    return len(lines)


def known_hosts_path() -> Path:
    from collector.hostkeys import default_known_hosts_path

    return default_known_hosts_path()


def quiet_logs() -> None:
    """paramiko/netmiko/collector chatter off; the benchmark prints its own figures."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    for name in ("paramiko", "netmiko", "collector", "apscheduler", "asyncssh", "nornir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # emulator shutdown noise


# --------------------------------------------------------------------------- other load


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every core), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


class OtherLoad:
    """CPU used by processes other than this one and its labs while a benchmark runs: other
    work on a 2-core machine skews every figure, so each run says how much there was."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.busy0 = _machine_busy_seconds()
        self.self0 = self_cpu()

    def report(self) -> dict[str, float]:
        """Print and return the other processes' CPU; call after the labs have stopped."""
        wall = time.perf_counter() - self.t0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # `lab up` / `lab down` commands
        mine = (self_cpu() - self.self0) + children.ru_utime + children.ru_stime + labs_lifetime_cpu()
        other = (_machine_busy_seconds() - self.busy0) - mine
        other = max(0.0, other)
        share = other / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
        print(f"other processes used {other:.1f} CPU s during this {wall:.0f} s run "
              f"({share:.0%} of the machine){'  <- figures may be skewed' if share > 0.1 else ''}")
        return {"other_cpu_s": round(other, 1), "wall_s": round(wall, 1), "other_share": round(share, 3)}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WatchedAgent:
    """The agent `collector watch` opens, handed to a benchmark, each of its polls timed.

    Use as a context manager around `watch.run_daemon` in a thread: it wraps
    `collector.watch.open_agent` while active and puts it back after."""

    def __init__(self) -> None:
        import collector.watch as watch

        self._watch = watch
        self._real = watch.open_agent
        self.agent = None
        self.polls: list[tuple[float, float]] = []  # (started, ended), wall clock

    def __enter__(self) -> "WatchedAgent":
        import contextlib

        real, polls = self._real, self.polls

        @contextlib.contextmanager
        def open_agent(*args, **kwargs):
            with real(*args, **kwargs) as agent:
                inner = agent.poll_all

                def poll_all(hosts=None):
                    started = time.time()
                    try:
                        return inner(hosts)
                    finally:
                        polls.append((started, time.time()))

                agent.poll_all = poll_all
                self.agent = agent
                yield agent

        self._watch.open_agent = open_agent
        return self

    def __exit__(self, *exc: object) -> None:
        self._watch.open_agent = self._real

    def first_poll(self, timeout: float, who: str = "agent") -> float:
        """Wait for the start-up poll; its duration in seconds."""
        deadline = time.monotonic() + timeout
        while not self.polls and time.monotonic() < deadline:
            time.sleep(0.1)
        if not self.polls:
            raise RuntimeError(f"the {who}'s start-up poll did not finish within {timeout:.0f} s")
        return self.polls[0][1] - self.polls[0][0]

    def settle(self, seconds: float, quiet: float) -> None:
        """Until every incident the agent opened has finished arming and no new one came
        for `quiet` seconds (or `seconds` passed)."""
        deadline = time.monotonic() + seconds
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            records = self.agent.store.incidents()
            arming = [i for i in list(self.agent.core.incidents.values()) if i.phase.value == "arming"]
            if len(records) != last:
                last, quiet_since = len(records), time.monotonic()
            if records and not arming and time.monotonic() - quiet_since > quiet:
                return
            time.sleep(0.2)
