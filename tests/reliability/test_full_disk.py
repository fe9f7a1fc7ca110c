"""A real full disk (a 4 MB tmpfs in a private mount namespace, no root needed): the state
store says so in one line and keeps what it had, the bundle folder is refused before
arming, and a bundle cut short by the full disk is sealed as incomplete once there is room."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCENARIO = textwrap.dedent(
    """
    import errno, json, os, sys
    from pathlib import Path
    from collector.bundle import BundleWriter, check_bundle_room, recover_partial_bundles
    from collector.core.steps import Step
    from collector.errors import StateStoreError
    from collector.state import open_state_store

    disk = Path(sys.argv[1])
    out = {}
    store = open_state_store(disk / "state" / "state.db")
    store.create_incident("inc1", "k", "invalid-spi", routers=["hub1"])
    store.begin_step("inc1", "hub1", 0, Step(("debug crypto ipsec",), ("no debug crypto ipsec",), "exec", "t"))
    filler = disk / "filler"
    with open(filler, "wb") as f:  # fill the disk to the last block
        try:
            while True:
                f.write(b"\\0" * 65536)
                f.flush()
        except OSError as exc:
            out["filled"] = exc.errno == errno.ENOSPC
    try:
        for i in range(500):
            store.create_incident(f"more-{i}", "x" * 4000, "invalid-spi", routers=["hub2"])
        out["state_error"] = None
    except StateStoreError as exc:
        out["state_error"] = str(exc)
    out["armed_after"] = store.armed_routers()
    out["room"] = check_bundle_room(disk / "bundles", 1024 * 1024)
    os.truncate(filler, os.path.getsize(filler) - 256 * 1024)  # a little room: the bundle starts, then fails
    writer = BundleWriter(disk / "bundles", "20261206T010203Z_invalid-spi_hub1_0x1a2b3c4d")
    try:
        writer.write_text("hub1/01_show_clock.txt", "*10:00:00.000 UTC Sun Dec 6 2026\\n")
        writer.write_text("hub1/02_show_logging.txt", "x" * (2 * 1024 * 1024))
        out["bundle_error"] = None
    except OSError as exc:
        out["bundle_error"] = errno.errorcode.get(exc.errno)
    writer.release()
    out["recover_while_full"] = recover_partial_bundles(disk / "bundles")
    filler.unlink()
    out["recover_after"] = recover_partial_bundles(disk / "bundles")
    store.close()
    with open_state_store(disk / "state" / "state.db") as again:
        out["armed_reopened"] = again.armed_routers()
    print(json.dumps(out))
    """
)


def _namespaces_allowed() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _namespaces_allowed(), reason="unprivileged user+mount namespaces are not permitted here "
                    "(the SQLITE_FULL mapping is still covered by tests/unit/test_state_open.py)")
def test_a_full_disk_is_said_in_one_line_and_loses_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO)
    command = f'mount -t tmpfs -o size=4m tmpfs "{disk}" && exec "{sys.executable}" "{script}" "{disk}"'
    done = subprocess.run(["unshare", "-r", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["filled"] is True
    assert out["state_error"] is not None and "\n" not in out["state_error"]
    assert out["state_error"].startswith(f"{disk}/state/state.db: cannot write, the disk is full")
    assert out["armed_after"] == ["hub1"]  # what was recorded before the disk filled is still there
    assert out["room"] == f"bundle folder {disk}/bundles: the disk is full"
    assert out["bundle_error"] == "ENOSPC"
    assert len(out["recover_while_full"]) == 1 and "could not recover (the disk is full)" in out["recover_while_full"][0]
    assert len(out["recover_after"]) == 1 and "unfinished bundle sealed as" in out["recover_after"][0]
    assert out["armed_reopened"] == ["hub1"]
