"""`collector collect` end to end: the real command, real SSH, the lab's routers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
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


def test_collect_names_failed_hosts_and_keeps_the_rest(fleet50, tmp_path):
    lab, faulty = fleet50
    for name, fault in faulty.items():
        lab.control.fault(name, **fault)
    try:
        proc = run_cli("collect", "-i", str(lab.inventory_path), "--command", "show version",
                       "--command", "show crypto session", "--json", "--out", str(tmp_path / "b"), cwd=tmp_path)
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
