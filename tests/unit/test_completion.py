"""Shell completion the documented click way: `_COLLECTOR_COMPLETE=bash_source collector`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "collector"  # the console script pip installed


def complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(cword), "_COLLECTOR_COMPLETE": "bash_complete"}
    done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


def test_subcommands_and_options_complete():
    assert SCRIPT.is_file(), "install the package (pip install -e .) to get the collector script"
    assert complete("collector sc", 1) == ["scan"]
    assert {"collect", "watch", "scan", "inventory", "report"} <= set(complete("collector ", 1))
    assert {"--since", "--json", "--inventory"} <= set(complete("collector scan --", 2))


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_source_script_registers_the_completion():
    script = subprocess.run([str(SCRIPT)], env={**os.environ, "_COLLECTOR_COMPLETE": "bash_source"},
                            capture_output=True, text=True, timeout=60).stdout
    done = subprocess.run(["bash", "-c", 'eval "$1" && complete -p collector', "_", script],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "-F _collector_completion" in done.stdout and done.stdout.strip().endswith("collector")
