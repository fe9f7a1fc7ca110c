"""`collector eem render` from the command line: the inventory's addresses, the output
files, and one-line errors with exit status 2 for every mistake."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STATE = """\
Syslog logging: enabled (0 messages dropped, 0 messages rate-limited, 0 flushes, 0 overruns, xml disabled, filtering disabled)
    Console logging: level critical, 0 messages logged, xml disabled,
    Monitor logging: disabled
    Buffer logging:  level informational, 9 messages logged, xml disabled,
Log Buffer (16384 bytes):
logging buffered 16384 informational
"""


@pytest.fixture()
def collector(monkeypatch, capsys):
    """`collector ARGS` in this process, as `main()` runs it (exit status, stdout, stderr)."""
    from collector.cli import main

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["collector", *args])
        monkeypatch.delenv("COLLECTOR_INVENTORY", raising=False)
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


@pytest.fixture()
def site(tmp_path):
    shutil.copy(REPO / "inventory.yaml", tmp_path / "inventory.yaml")  # the default lab: hub1, spoke1, ...
    (tmp_path / "hub1.state").write_text(STATE)
    return tmp_path


def test_prints_both_routers_with_the_inventory_addresses(site, collector):
    proc = collector("eem", "render", "--receiver", "hub1", "--sender", "spoke1", "--receiver-state", "hub1.state",
                      "--keep-logging", "--spi", "0xB761863E", cwd=site)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.index("! collector eem render: hub1 (receiver)") < out.index("! collector eem render: spoke1 (sender)")
    # hub1 logs spoke1 by spoke1's first inventory address, spoke1 knows hub1 by hub1's
    assert r'spi=0xB761863E.*srcaddr=192\.0\.2\.3([^0-9]|$)' in out
    assert "debug crypto condition peer ipv4 192.0.2.3" in out and "debug crypto condition peer ipv4 198.51.100.1" in out
    hub1 = out[:out.index("! collector eem render: spoke1")]
    assert '"logging console critical"' in hub1 and '"logging buffered 16384 informational"' in hub1
    assert '"logging monitor' not in hub1  # it was disabled: nothing to switch off or restore
    spoke1 = out[out.index("! collector eem render: spoke1"):]
    assert "Logging is left as it is" in spoke1 and '"logging buffered' not in spoke1


def test_out_writes_one_pasteable_file_per_router(site, collector):
    proc = collector("eem", "render", "--receiver", "hub1", "--sender", "spoke1", "--keep-logging",
                      "--sender-address", "192.0.2.99", "--receiver-address", "203.0.113.7", "--ike", "ikev2",
                      "--out", "applets", cwd=site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    hub1 = (site / "applets" / "hub1.eem.txt").read_text()
    spoke1 = (site / "applets" / "spoke1.eem.txt").read_text()
    assert "srcaddr=192\\.0\\.2\\.99" in hub1 and "debug crypto condition peer ipv4 203.0.113.7" in spoke1
    assert "debug crypto ikev2" in hub1 and "debug crypto isakmp" not in hub1
    assert hub1.endswith("exit\nend\n")
    assert "?" not in hub1 + spoke1  # IOS takes `?` typed or pasted as a request for help, even in a comment
    assert all(ln.startswith(("!", "event manager", " event ", " action ", "exit", "end")) for ln in hub1.splitlines())
    assert "hub1 (receiver): " in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--receiver", "hub1", "--sender", "nope", "--keep-logging"], "--sender 'nope': no such host"),
    (["--receiver", "hub1", "--sender", "spoke1"], "give --receiver-state FILE"),
    (["--receiver", "hub1", "--sender", "spoke1", "--receiver-state", "missing.txt", "--keep-logging"],
     "--receiver-state missing.txt: No such file"),
    (["--receiver", "hub1", "--sender", "spoke1", "--receiver-state", "inventory.yaml", "--keep-logging"],
     "no `Console logging:` line"),
    (["--receiver", "hub1", "--sender", "spoke1", "--keep-logging", "--spi", "0xZZ"], "--spi '0xZZ'"),
    (["--receiver", "hub1", "--sender", "spoke1", "--keep-logging", "--sender-address", "10.0.0.256"],
     "is not an IP address"),
    (["--receiver", "hub1", "--sender", "spoke1", "--keep-logging", "--sender-address", "2001:db8::1"],
     "only IPv4 flows"),
    (["--receiver", "hub1", "--sender", "spoke1", "--keep-logging", "--disarm-after", "5m"], "disarm after 5m"),
    (["--receiver", "hub1", "--sender", "spoke1", "--keep-logging", "--disarm-after", "soon"], "--disarm-after"),
    (["--receiver", "hub1", "--sender", "spoke1", "--keep-logging", "--cli-username", 'x"; reload'], "cli username"),
    (["--receiver", "hub1", "--sender", "spoke1", "--keep-logging", "--filesystem", "flash:/../x"], "file system"),
    (["--receiver", "hub1", "--sender", "spoke1", "--keep-logging", "--playbook", "nope.yaml"], "nope.yaml"),
    (["--receiver", "hub1", "--sender", "spoke1", "--keep-logging", "-i", "none.yaml"], "none.yaml"),
    (["--receiver", "hub1"], "--sender"),
])
def test_mistakes_end_in_one_line_and_exit_2(site, collector, args, message):
    proc = collector("eem", "render", *args, cwd=site)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("collector: error: ") and message in lines[0], proc.stderr


def test_a_state_file_with_a_line_it_cannot_restore_is_refused(site, collector):
    (site / "odd.state").write_text(STATE + "logging buffered 16384 informational filtered\n")
    proc = collector("eem", "render", "--receiver", "hub1", "--sender", "spoke1", "--receiver-state", "odd.state",
                      "--keep-logging", cwd=site)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is not a `logging buffered` line this tool can restore" in proc.stderr


def test_a_real_process_prints_one_line_and_no_traceback(site):
    proc = subprocess.run([sys.executable, "-m", "collector", "eem", "render", "--receiver", "hub1", "--sender",
                           "spoke1", "--keep-logging", "--sender-address", "1.2.3"], cwd=site, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "collector: error: --sender-address '1.2.3' is not an IP address\n"


def test_debugs_already_on_are_left_out_of_the_arming_and_of_the_disarm(site, collector):
    """An operator's `debug crypto isakmp` (the real IOS banner) stays on: the applets
    neither send it nor switch it off; the note says so, and that the condition narrows it."""
    (site / "hub1.debugs").write_text("Cryptographic subsystems:\n  Crypto ISAKMP debugging is on\n")
    proc = collector("eem", "render", "--receiver", "hub1", "--sender", "spoke1", "--keep-logging",
                     "--ike", "isakmp", "--receiver-debugs", "hub1.debugs", cwd=site)
    assert proc.returncode == 0, proc.stderr
    hub1 = proc.stdout[:proc.stdout.index("! collector eem render: spoke1")]
    spoke1 = proc.stdout[proc.stdout.index("! collector eem render: spoke1"):]
    commands = [ln for ln in hub1.splitlines() if ln.startswith(" action ")]
    assert not any('"debug crypto isakmp"' in c or '"no debug crypto isakmp"' in c for c in commands), commands
    assert any('"debug crypto ipsec"' in c for c in commands) and any('"no debug crypto ipsec"' in c for c in commands)
    assert "Left out of the arming and of the disarm: debug crypto isakmp" in hub1
    assert "limits its output to this flow's peer" in hub1
    # the sender was not described: it keeps both, and the warning to check by hand
    assert '"no debug crypto isakmp"' in spoke1 and "--*-debugs file" in spoke1


def test_a_debugs_file_that_is_not_show_debugging_is_refused(site, collector):
    proc = collector("eem", "render", "--receiver", "hub1", "--sender", "spoke1", "--keep-logging",
                     "--receiver-debugs", "inventory.yaml", cwd=site)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--receiver-debugs inventory.yaml: not `show debugging` output" in proc.stderr
