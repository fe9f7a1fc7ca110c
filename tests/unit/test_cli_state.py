"""The command line in front of an untrusted state store: one line, exit 2; and the
default state folder that does not depend on where the command is started."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.state import StateStore

REPO = Path(__file__).resolve().parents[2]
INVENTORY = """
defaults: {username: u, password: p, platform: cisco_ios}
hosts:
  r1: {hostname: 127.0.0.1, port: 9}
"""


def _collector(*argv: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    environment = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-c", "from collector.cli import main; main()", *argv],
                          cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def _one_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "folder"])
def test_incidents_with_a_damaged_store_is_one_line_exit_2(tmp_path, damage):
    state = tmp_path / "state"
    db = state / "state.db"
    with StateStore(db) as store:
        for i in range(40):
            store.create_incident(f"i{i}", "k" * 3000, "invalid-spi")
    if damage == "garbage":
        db.write_bytes(os.urandom(20000))
    elif damage == "truncated":
        os.truncate(db, db.stat().st_size // 3)
    else:
        db.unlink()
        db.mkdir()
    line = _one_line(_collector("incidents", "--state", str(state), cwd=tmp_path))
    assert str(db) in line
    assert "collector disarm --all --from-routers" in line or "folder" in line


def test_watch_with_a_garbage_store_refuses_to_start(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.db").write_bytes(os.urandom(20000))
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    done = _collector("watch", "--once", "-i", str(tmp_path / "inv.yaml"), "--state", str(state),
                      "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert str(state / "state.db") in _one_line(done)


def test_a_second_agent_from_another_folder_meets_the_first_ones_lock(tmp_path):
    """No --state on either: both resolve $COLLECTOR_STATE, whatever their current folder."""
    shared = tmp_path / "shared-state"
    shared.mkdir(mode=0o700)
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    here, elsewhere = tmp_path / "a", tmp_path / "b"
    here.mkdir()
    elsewhere.mkdir()
    # the first agent: holding the lock file the agent takes in its state folder
    fd = os.open(shared / "agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242")
        done = _collector("watch", "--once", "-i", str(tmp_path / "inv.yaml"), "--out", str(tmp_path / "out"),
                          cwd=elsewhere, env={"COLLECTOR_STATE": str(shared)})
    finally:
        os.close(fd)
    line = _one_line(done)
    assert str(shared / "agent.lock") in line and "4242" in line
    assert not (elsewhere / "state").exists()


def test_the_default_state_folder_is_shown_in_help(tmp_path):
    done = _collector("watch", "--help", cwd=tmp_path)
    assert "$COLLECTOR_STATE" in done.stdout


def test_incidents_lists_each_flow_as_an_operator_reads_it(tmp_path):
    from click.testing import CliRunner

    from collector.cli import cli
    from collector.detect.events import Flow
    from collector.detect.tracker import encode_key
    from ipaddress import ip_address

    flow = Flow(router="hub1", src=ip_address("192.0.2.3"), dst=ip_address("198.51.100.1"), spi=0xB4251D61, prot=50)
    state = tmp_path / "state"
    with StateStore(state / "state.db") as store:
        store.create_incident("20261206T072438e4224d", encode_key(flow), "invalid-spi", routers=("hub1", "spoke1"))
    listed = CliRunner().invoke(cli, ["incidents", "--state", str(state)])
    assert listed.exit_code == 0, listed.output
    [row] = listed.output.splitlines()
    assert "20261206T072438e4224d" in row and "hub1 <- 192.0.2.3 SPI 0xB4251D61 (ESP)" in row
    assert "routers hub1, spoke1" in row and "bundle -" in row and '{"flow"' not in row
