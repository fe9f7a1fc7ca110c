"""The lab as a background process: start it detached, find it by its pid file, stop it.

`collector lab up --detach` and `collector lab down` (collector/cli/lab.py) are the faces;
every failure here is a `LabError` whose text is the one line they print.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from collector.lab.settings import CONTROL_FILE, LOG_FILE, PID_FILE, LabError, LabSettings, read_control_file

DETACH_READY_SECONDS = 120.0
DOWN_WAIT_SECONDS = 15.0


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running_pid(state_dir: Path) -> int | None:
    """The pid in the state dir's pid file if that process is alive and is a lab."""
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if not alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid  # no /proc: trust the pid file
    # A recycled pid belongs to some other program: do not signal it.
    return pid if b"collector" in cmdline else None


def child_args(settings: LabSettings, faults_file: Path | None) -> list[str]:
    """The command line of a foreground `lab up` with these settings (the detached child)."""
    args = [sys.executable, "-m", "collector.lab", "up",
            "--routers", str(settings.routers),
            "--base-port", str(settings.base_port),
            "--time-scale", repr(settings.time_scale),
            "--seed", str(settings.seed),
            "--state-dir", str(settings.state_dir.resolve()),
            "--inventory-out", str(settings.inventory_path.resolve())]
    for spec in settings.scenarios:
        args += ["--scenario", spec]
    for pattern in settings.serve:
        args += ["--serve", pattern]
    if settings.control_port is not None:
        args += ["--control-port", str(settings.control_port)]
    if settings.syslog_to is not None:
        host, port = settings.syslog_to
        args += ["--syslog-to", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if faults_file is not None:
        args += ["--faults", str(faults_file.resolve())]
    return args


def _last_error_line(log_path: Path) -> str:
    """The child's one-line error ("Error: ..." from its CLI) out of its log."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "the lab process exited before it was ready"
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line[len("Error: "):]
    return lines[-1] if lines else "the lab process exited before it was ready"


def start_detached(settings: LabSettings, faults_file: Path | None) -> tuple[int, int | None]:
    """Start the lab as a child in its own session; return (pid, control port) once its
    routers accept connections.

    Raises:
        LabError: the child exited first (its own error line) or was not ready in time.
        OSError: the state folder or the log cannot be written, or the child cannot start.
    """
    state_dir = settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / CONTROL_FILE).unlink(missing_ok=True)
    log_path = state_dir / LOG_FILE
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(
            child_args(settings, faults_file),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # the terminal's Ctrl-C must not reach the lab
            env=env,
        )
    deadline = time.monotonic() + DETACH_READY_SECONDS
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            raise LabError(_last_error_line(log_path))
        info = read_control_file(state_dir)
        if info is not None and info.get("pid") == child.pid:
            return child.pid, info.get("control_port")
        time.sleep(0.05)
    child.terminate()
    raise LabError(f"the lab did not become ready within {DETACH_READY_SECONDS:.0f}s; see {log_path}")


def stop_lab(state_dir: Path) -> int | None:
    """Stop the lab started from `state_dir` (SIGTERM, wait, remove its pid and control
    files); return its pid, or None when no lab process was running (stale files removed).

    Raises:
        LabError: there is no pid file, or the lab did not stop in time.
    """
    pid_file = state_dir / PID_FILE
    if not pid_file.exists():
        raise LabError(f"no lab running from {state_dir} (no {PID_FILE})")
    pid = running_pid(state_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_WAIT_SECONDS
        while alive(pid):
            if time.monotonic() >= deadline:
                raise LabError(f"the lab (pid {pid}) did not stop within {DOWN_WAIT_SECONDS:.0f}s")
            time.sleep(0.05)
    for name in (PID_FILE, CONTROL_FILE):
        (state_dir / name).unlink(missing_ok=True)
    return pid
