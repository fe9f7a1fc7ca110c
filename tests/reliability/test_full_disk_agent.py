"""A running agent whose disk fills up while a flow is armed (issue 14, class 3): a real
256 MB tmpfs holds its state store and bundle folder, in a private mount namespace (no root
needed). SIGTERM must still put both routers back, say what could not be written in one
line each, and exit without a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from collector.lab.runner import running_lab
from tests.reliability.reliability_lab import desync_ends, fast_playbook, first_line, wait_for, watch_args

from tests.reliability.test_full_disk import _namespaces_allowed

REPO = Path(__file__).resolve().parents[2]

# mount the small disk, start the agent on it, fill the disk when the test says so
SCRIPT = """
mount -t tmpfs -o size=256m tmpfs "$DISK" || exit 97
"$PY" -m collector watch "$@" > "$LOG" 2>&1 &
echo $! > "$PIDFILE"
while [ ! -e "$FILL" ]; do sleep 0.1; done
dd if=/dev/zero of="$DISK/filler" bs=65536 2>/dev/null
touch "$FULL"
wait $(cat "$PIDFILE")
"""


def _ours(lab, router: str) -> dict:
    state = lab.control.state(router)
    return {"debug": state["debug"], "applets": sorted(a for a in state["applets"] if a.startswith("COLLECTOR_"))}


@pytest.mark.skipif(not _namespaces_allowed(), reason="unprivileged user+mount namespaces are not permitted here "
                    "(the same faults are driven through the scripted routers in tests/unit/test_agent_disk_and_sources.py)")
def test_sigterm_on_a_full_disk_disarms_both_ends_and_says_what_was_not_written(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    playbook = fast_playbook(tmp_path)
    with running_lab(routers=6, scenarios=["desync"], realism="none", state_dir=tmp_path / "lab") as lab:
        receiver, sender = desync_ends(lab)
        before = {r: lab.control.state(r)["debug"] for r in (receiver, sender)}
        args = watch_args(lab, tmp_path, playbook)
        args[args.index("--state") + 1] = str(disk / "state")
        args[args.index("--out") + 1] = str(disk / "bundles")
        files = {name: tmp_path / name for name in ("agent.log", "agent.pid", "fill", "full")}
        env = dict(os.environ, PYTHONPATH=str(REPO), DISK=str(disk), PY=sys.executable, LOG=str(files["agent.log"]),
                   PIDFILE=str(files["agent.pid"]), FILL=str(files["fill"]), FULL=str(files["full"]))
        outer = subprocess.Popen(["unshare", "-r", "-m", "sh", "-c", SCRIPT, "sh", *args], cwd=tmp_path, env=env)
        try:
            assert wait_for(lambda: files["agent.pid"].exists() and files["agent.pid"].read_text().strip(), 60)
            pid = int(files["agent.pid"].read_text())
            first_line(lab)  # logged now or before the agent's first read: either way it arms both ends
            assert wait_for(lambda: "debugs armed on" in files["agent.log"].read_text(), 120), \
                files["agent.log"].read_text()[-3000:]
            assert all(_ours(lab, r)["applets"] for r in (receiver, sender))
            files["fill"].touch()
            assert wait_for(files["full"].exists, 60)
            os.kill(pid, signal.SIGTERM)
            assert outer.wait(timeout=180) == 143, files["agent.log"].read_text()[-3000:]
        finally:
            if outer.poll() is None:  # a failed test: the agent must not outlive it
                if files["agent.pid"].exists() and files["agent.pid"].read_text().strip():
                    try:
                        os.kill(int(files["agent.pid"].read_text()), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                outer.kill()
                outer.wait(timeout=30)
        for router in (receiver, sender):  # put back: nothing of ours, the operator's own debugs as they were
            assert _ours(lab, router)["applets"] == [] and lab.control.state(router)["debug"] == before[router], router
    log = files["agent.log"].read_text()
    assert "Traceback" not in log, log[-3000:]
    said = [line for line in log.splitlines() if "disk is full" in line]
    assert said, log[-3000:]  # the full disk is said, one line each, naming the file
    assert all(str(disk) in line for line in said)
