"""`collector collect` end to end: the real command, real SSH, the lab's routers."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from collector.lab.runner import running_lab

pytestmark = pytest.mark.e2e


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "200", **(env or {})})


@pytest.fixture(scope="module")
def fleet50(tmp_path_factory):
    with running_lab(routers=50, state_dir=tmp_path_factory.mktemp("lab50")) as lab:
        names = lab.routers
        faulty = {names[10]: {"wrong_password": True}, names[11]: {"wrong_password": True},
                  names[20]: {"refuse_connections": True}, names[21]: {"refuse_connections": True},
                  names[30]: {"wrong_password": True}}
        yield lab, faulty


def test_collect_50_routers_all_parsed(fleet50, tmp_path):
    lab, _ = fleet50
    proc = run_cli("collect", "-i", str(lab.inventory_path), "--command", "show version",
                   "--command", "show crypto session", "--json", "--workers", "20", "--out", str(tmp_path / "b"),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 100
    assert {r["host"] for r in rows} == set(lab.routers)
    for row in rows:
        assert row["error"] is None, row
        assert row["raw"]
        if row["command"] == "show version":
            assert row["parsed"] and row["parsed"][0]["os_family"] in ("IOS", "IOS-XE")
    bundle = next((tmp_path / "b").iterdir())
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert len(manifest["files"]) >= 100
    for path in bundle.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


@pytest.mark.parametrize("processes", ["1", "2"])
def test_collect_names_failed_hosts_and_keeps_the_rest(fleet50, tmp_path, processes):
    lab, faulty = fleet50
    for name, fault in faulty.items():
        lab.control.fault(name, **fault)
    try:
        proc = run_cli("collect", "-i", str(lab.inventory_path), "--command", "show version",
                       "--command", "show crypto session", "--json", "--out", str(tmp_path / "b"),
                       "--processes", processes, cwd=tmp_path)
    finally:
        for name, fault in faulty.items():
            lab.control.fault(name, **{k: False for k in fault})
    assert proc.returncode == 1, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    good = [r for r in rows if r["host"] not in faulty]
    assert len(good) == 90 and all(r["error"] is None and r["parsed"] for r in good)
    for name in faulty:
        assert name in proc.stderr
    assert "authentication failed" in proc.stderr
    assert "refused" in proc.stderr
    assert "5 of 50 hosts failed" in proc.stderr


def _shapes(proc: subprocess.CompletedProcess) -> dict[tuple[str, str], tuple]:
    """Each row's error and its parsed records' fields (counters and uptimes move between runs)."""
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    return {(r["host"], r["command"]): (r["error"], [sorted(record) for record in r["parsed"] or ()]) for r in rows}


def test_collect_over_two_processes_gives_what_one_gives(fleet50, tmp_path):
    # First contact in both children at once (a fresh known_hosts), then the same collect
    # in one process: the same rows, every router's key recorded once.
    lab, _ = fleet50
    runs = {}
    for processes in ("2", "1"):
        runs[processes] = run_cli("collect", "-i", str(lab.inventory_path), "--command", "show version",
                                  "--command", "show crypto ipsec sa", "--json", "--processes", processes,
                                  "--out", str(tmp_path / processes), cwd=tmp_path)
        assert runs[processes].returncode == 0, runs[processes].stderr
    forked, alone = _shapes(runs["2"]), _shapes(runs["1"])
    assert len(forked) == 100 and forked == alone
    assert all(error is None and records for error, records in forked.values())
    manifest = json.loads((next((tmp_path / "2").iterdir()) / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["hosts"] == lab.routers
    known_hosts = Path(os.environ["COLLECTOR_STATE"]) / "known_hosts"
    recorded = [line.split()[0] for line in known_hosts.read_text().splitlines() if line.strip()]
    assert len(recorded) == len(set(recorded)) == 50


def _stat(pid_folder: Path) -> list[str] | None:
    """/proc/PID/stat's fields after the command name: the state, then the parent's pid."""
    try:
        return (pid_folder / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children_of(pid: int) -> list[int]:
    return sorted(int(folder.name) for folder in Path("/proc").glob("[0-9]*")
                  if (fields := _stat(folder)) is not None and int(fields[1]) == pid)


def _alive(pid: int) -> bool:
    """Running (a zombie is not: its parent, here init, has yet to reap it)."""
    fields = _stat(Path(f"/proc/{pid}"))
    return fields is not None and fields[0] != "Z"


@contextmanager
def _slow_forked_collect(lab, hosts: list[str], tmp_path: Path, *args: str, **popen):
    """`collector collect ARGS` on `hosts`, each 0.3 s a command, one worker in each of two
    processes: (the process, its two children), once both run; the routers made fast again
    on the way out."""
    for name in hosts:
        lab.control.fault(name, slow_seconds=0.3)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "collect", "-i", str(lab.inventory_path), "--hosts", ",".join(hosts),
             *args, "--workers", "2", "--processes", "2", "--out", str(tmp_path / "b")], cwd=tmp_path, **popen)
        deadline = time.monotonic() + 60
        while len(children := _children_of(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(children) == 2, children
        yield proc, children
    finally:
        for name in hosts:
            lab.control.fault(name, slow_seconds=0.0)


def test_a_collect_process_killed_midway_loses_only_its_unread_routers(fleet50, tmp_path):
    # Slow routers, one worker in each of two processes: the second child is killed while
    # it still has routers to read. Those are named failed with the cause, the others are
    # kept whole, and the bundle is sealed as incomplete.
    lab, _ = fleet50
    hosts = lab.routers[:8]
    with _slow_forked_collect(lab, hosts, tmp_path, "--command", "show version", "--command", "show crypto session",
                              "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as (proc, children):
        time.sleep(1.0)  # each child is on its first router
        os.kill(children[1], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    rows = [json.loads(line) for line in out.splitlines()]
    assert {(r["host"], r["command"]) for r in rows} == {(h, c) for h in hosts
                                                         for c in ("show version", "show crypto session")}
    lost = {r["host"] for r in rows if r["error"]}
    kept = [r for r in rows if r["host"] not in lost]
    # round robin: the second child had every other router
    assert lost and (lost <= set(hosts[1::2]) or lost <= set(hosts[0::2])), lost
    assert all(r["error"] == "not read: the collect process it was given to was killed by signal 9 first"
               and r["raw"] is None for r in rows if r["host"] in lost)
    assert kept and all(r["parsed"] for r in kept if r["command"] == "show version")
    assert f"{len(lost)} of 8 hosts failed" in err
    manifest = json.loads((next((tmp_path / "b").iterdir()) / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert len(manifest["incomplete_reasons"]) == len(lost)


def test_ctrl_c_stops_every_collect_process(fleet50, tmp_path):
    # A Ctrl-C reaches the whole process group; the parent alone answers it.
    lab, _ = fleet50
    with _slow_forked_collect(lab, lab.routers[:8], tmp_path, "--command", "show version", stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True) as (proc, children):
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "collector: aborted" in err
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


def test_a_collect_killed_outright_takes_its_processes_with_it(fleet50, tmp_path):
    # SIGKILL leaves the parent no chance to stop its children: the kernel does (Linux).
    lab, _ = fleet50
    hosts = lab.routers[:12]  # six each: seconds of work left when the parent dies
    with _slow_forked_collect(lab, hosts, tmp_path, "--command", "show version", stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) as (proc, children):
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 3  # their share would take them 5 s or more
        while [pid for pid in children if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not [pid for pid in children if _alive(pid)]


def test_command_without_a_template_is_kept_raw_and_not_a_failure(fleet50, tmp_path):
    lab, _ = fleet50
    first = lab.routers[0]
    proc = run_cli("collect", "-i", str(lab.inventory_path), "--hosts", first, "--command", "show running-config",
                   "--json", "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert row["error"] is None and row["parsed"] is None
    secrets = lab.fleet.routers[first].secrets()
    assert "crypto" in row["raw"] and "<removed>" in row["raw"]
    bundle = next((tmp_path / "b").iterdir())
    saved = next(bundle.rglob("*_show_running_config.txt")).read_text()
    assert "<removed>" in saved
    for secret in secrets:  # neither the bundle nor stdout (often piped to a file) carries one
        assert secret not in saved and secret not in proc.stdout


def test_a_known_hosts_file_that_cannot_be_written_is_reported_as_that(fleet50, tmp_path):
    lab, _ = fleet50
    first = lab.routers[0]
    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("a file where the state folder should be\n")
    proc = run_cli("collect", "-i", str(lab.inventory_path), "--hosts", first, "--command", "show version",
                   "--out", str(tmp_path / "b"), cwd=tmp_path, env={"COLLECTOR_STATE": str(not_a_folder)})
    assert proc.returncode == 1, proc.stderr
    assert f"known_hosts file {not_a_folder / 'known_hosts'} cannot be written" in proc.stderr
    assert "connection refused" not in proc.stderr.lower()
    assert "Traceback" not in proc.stderr
