"""The CLI imports the lab, demo, audit/report and scan commands only when they are named."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from collector.cli import cli

PROBE = """
import sys
from collector.cli import main
sys.argv = ["collector", "--version"]
try:
    main()
except SystemExit:
    pass
heavy = [m for m in ("collector.lab", "collector.agent", "collector.watch", "collector.demo", "collector.diagnose",
                     "collector.scan", "apscheduler") if m in sys.modules]
print("HEAVY:" + ",".join(heavy))
"""


def test_version_does_not_import_the_agent_or_the_lab():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "collector, version" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "HEAVY:"


def test_lazy_commands_are_listed_and_run():
    listing = CliRunner().invoke(cli, ["--help"])
    assert listing.exit_code == 0
    for name in ("lab", "demo", "audit", "report", "scan", "collect"):
        assert f"  {name} " in listing.output
    lab = CliRunner().invoke(cli, ["lab", "up", "--help"])
    assert lab.exit_code == 0 and "--routers" in lab.output
    assert CliRunner().invoke(cli, ["nosuch"]).exit_code != 0
