"""Bad input to the scale-out commands: one line naming what is wrong, exit 2, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from collector.cli import cli

INVENTORY = """\
defaults: {username: lab, password: lab-pw}
hosts:
  hub1: {hostname: 127.0.0.1, port: 9, platform: cisco_ios, site: east}
  spoke1: {hostname: 127.0.0.1, port: 10, platform: cisco_ios}
"""


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


@pytest.mark.parametrize("args, said", [
    (["watch", "--broker", "amqp://x"], "--broker amqp://x: expected redis://HOST:PORT/N"),
    (["watch", "--broker", "redis://127.0.0.1:1/0"], "with --broker every host needs a `site`; none for: spoke1"),
    (["watch", "--broker", "redis://127.0.0.1:1/0", "--dry-run"], "--dry-run is not available with --broker"),
    (["collect", "-c", "show version", "--broker", "redis://127.0.0.1:1/0"],
     "with --broker every host needs a `site`; none for: spoke1"),
    (["worker", "--site", "west", "--broker", "redis://127.0.0.1:1/0"], "no host has site 'west'"),
    (["worker", "--site", "east", "--broker", "http://127.0.0.1:1"], "expected redis://HOST:PORT/N"),
])
def test_bad_scale_out_input_is_one_line_and_exit_2(inventory, args, said):
    result = CliRunner().invoke(cli, [args[0], "-i", str(inventory), *args[1:]])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("collector: error:") and said in lines[0], result.output
    assert "Traceback" not in result.output
