"""`collector collect --print`: Nornir print_result-style output, over real SSH to the lab."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from collector.lab.runner import running_lab

pytestmark = pytest.mark.e2e


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def blocks(stdout: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(host, command) -> (level, body) from a print-out."""
    out, host, command, level, body = {}, None, None, None, []
    for line in stdout.splitlines():
        if m := re.fullmatch(r"\* (\S+) \*\* changed : False(?: \*\* FAILED)? \*+", line):
            host = m.group(1)
        elif m := re.fullmatch(r"vvvv (.+) \*\* changed : False v+ (INFO|ERROR)", line):
            command, level, body = m.group(1), m.group(2), []
        elif m := re.fullmatch(r"\^\^\^\^ END (.+?) \^+", line):
            assert m.group(1) == command
            out[(host, command)] = (level, "\n".join(body))
            command = None
        elif command is not None:
            body.append(line)
    return out


def test_print_raw_and_parsed_and_a_failed_host(tmp_path):
    with running_lab(routers=3, state_dir=tmp_path / "lab") as lab:
        bad = lab.routers[2]
        lab.control.fault(bad, wrong_password=True)
        proc = run_cli("collect", "-i", str(lab.inventory_path), "-c", "show clock", "-c", "show version",
                       "--print", "--out", str(tmp_path / "b"), cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr  # one host failed
        lines = proc.stdout.splitlines()
        assert lines[0].startswith("collect *") and len(lines[0]) == 80
        got = blocks(proc.stdout)
        for host in lab.routers[:2]:
            level, body = got[(host, "show clock")]
            assert level == "INFO" and re.search(r"\d\d:\d\d:\d\d", body)
            level, body = got[(host, "show version")]
            assert level == "INFO" and "Cisco IOS" in body
        level, body = got[(bad, bad)]
        assert level == "ERROR" and body.startswith("auth")
        assert f"* {bad} ** changed : False ** FAILED" in proc.stdout

        parsed = run_cli("collect", "-i", str(lab.inventory_path), "--hosts", lab.routers[0], "-c", "show version",
                         "--print=parsed", "--out", str(tmp_path / "b"), cwd=tmp_path)
        assert parsed.returncode == 0, parsed.stderr
        level, body = blocks(parsed.stdout)[(lab.routers[0], "show version")]
        assert level == "INFO" and '"os_family"' in body
