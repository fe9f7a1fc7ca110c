"""`lab up/down/ctl`: detach and stop as real processes, clean one-line errors, the inventory file."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from netmiko import ConnectHandler

from collector.cli.lab import lab_group
from collector.lab.inventory_file import inventory_text
from collector.lab.runner import running_lab

REPO = Path(__file__).resolve().parents[2]


def _free_base(count: int) -> int:
    """A base port with `count` + 1 free ports below the ephemeral range."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(10001, 32000 - count)
        socks = []
        try:
            for port in range(base - 1, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range")


def _lab_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "collector.lab", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_up_detach_then_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = _free_base(3)
    up = _lab_cli("up", "--detach", "--routers", "3", "--base-port", str(base), "--state-dir", str(state),
                  "--time-scale", "60")
    assert up.returncode == 0, up.stderr
    pid = int((state / "lab.pid").read_text())
    try:
        assert _alive(pid)
        info = json.loads((state / "control.json").read_text())
        assert info["pid"] == pid and info["control_port"] == base - 1
        inventory = yaml.safe_load((state / "inventory.yaml").read_text())
        hosts = inventory["hosts"]
        assert [h["port"] for h in hosts.values()] == [base, base + 1, base + 2]
        name, host = next(iter(hosts.items()))
        defaults = inventory["defaults"]
        with ConnectHandler(device_type=host["platform"], host=host["hostname"], port=host["port"],
                            username=defaults["username"], password=defaults["password"],
                            secret=defaults["secret"]) as conn:
            # the realistic default lab: the device hostname (not the inventory name) is the prompt
            hostname = conn.send_command("show version | include uptime is").split()[0]
            assert hostname != name and conn.find_prompt() == f"{hostname}>"

        ctl = CliRunner().invoke(lab_group, ["ctl", "--state-dir", str(state), "routers"])
        assert ctl.exit_code == 0, ctl.output
        assert [r["name"] for r in json.loads(ctl.output)] == list(hosts)

        line = _one_line_error(["up", "--detach", "--routers", "3", "--base-port", str(base), "--state-dir", str(state)])
        assert "already running" in line
    finally:
        down = _lab_cli("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert not _alive(pid)
    assert not (state / "lab.pid").exists()
    assert not (state / "control.json").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", base), timeout=5)
    assert "no lab running" in _one_line_error(["down", "--state-dir", str(state)])


def test_detach_reports_a_busy_port_from_the_child(tmp_path: Path) -> None:
    base = _free_base(3)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 1))
        blocker.listen()
        result = _lab_cli("up", "--detach", "--routers", "3", "--base-port", str(base),
                          "--state-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"Error: port {base + 1} (router spoke1) is already in use"]
    assert not (tmp_path / "lab.pid").exists()


def _one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(lab_group, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_foreground_up_reports_port_in_use(tmp_path: Path) -> None:
    base = _free_base(2)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base))
        blocker.listen()
        line = _one_line_error(["up", "--routers", "2", "--base-port", str(base), "--state-dir", str(tmp_path)])
    assert line == f"Error: port {base} (router hub1) is already in use"


def test_foreground_up_reports_a_busy_control_port(tmp_path: Path) -> None:
    base = _free_base(2)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base - 1))
        blocker.listen()
        line = _one_line_error(["up", "--routers", "2", "--base-port", str(base), "--state-dir", str(tmp_path)])
    assert line == f"Error: port {base - 1} (control API) is already in use"


def test_bad_scenario_is_a_clear_error(tmp_path: Path) -> None:
    line = _one_line_error(["up", "--scenario", "no-such-scenario", "--state-dir", str(tmp_path)])
    assert "no-such-scenario" in line


def test_non_loopback_syslog_target_is_refused(tmp_path: Path) -> None:
    line = _one_line_error(["up", "--syslog-to", "10.1.1.1:514", "--state-dir", str(tmp_path)])
    assert "10.1.1.1" in line and "loopback" in line


def test_bad_faults_file_names_the_file(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("hub1:\n  slow_seconds: [1\n")
    line = _one_line_error(["up", "--faults", str(faults), "--state-dir", str(tmp_path)])
    assert str(faults) in line


def test_faults_file_errors_name_file_and_line(tmp_path: Path) -> None:
    base = _free_base(2)
    faults = tmp_path / "faults.yaml"
    faults.write_text("hub1:\n  slow_seconds: 1\nhub9:\n  vty_limit: 2\n")
    args = ["up", "--routers", "2", "--base-port", str(base), "--faults", str(faults), "--state-dir", str(tmp_path)]
    assert _one_line_error(args) == f"Error: {faults}:3: unknown router 'hub9'"
    faults.write_text("spoke1:\n  vty_limit: many\n")
    line = _one_line_error(args)
    assert line.startswith(f"Error: {faults}:1: spoke1: fault vty_limit must be an integer")


def test_faults_file_tacacs_policy_is_checked(tmp_path: Path) -> None:
    base = _free_base(2)
    faults = tmp_path / "faults.yaml"
    faults.write_text("hub1:\n  vty_held: 1\nspoke1:\n  tacacs:\n    lab:\n      permit: show\n")
    args = ["up", "--routers", "2", "--base-port", str(base), "--faults", str(faults), "--state-dir", str(tmp_path)]
    line = _one_line_error(args)
    assert line.startswith(f"Error: {faults}:3: spoke1: fault tacacs: tacacs policy 'lab' permit must be a list")


def test_faults_file_sets_tacacs_policy_and_held_lines(tmp_path: Path) -> None:
    policy = {"lab": {"permit": ["show"], "deny": ["debug crypto condition"]}}
    with running_lab(routers=2, realism="none", faults={"hub1": {"tacacs": policy, "vty_held": 2}}) as lab:
        state = lab.control.state("hub1")
        assert state["faults"]["tacacs"] == policy
        assert state["faults"]["vty_held"] == 2
        assert len(state["vty_in_use"]) == 2


def test_faults_file_applies_at_start(tmp_path: Path) -> None:
    with running_lab(routers=2, realism="none", faults={"spoke1": {"slow_seconds": 0.5, "vty_limit": 2}}) as lab:
        assert lab.control.state("spoke1")["faults"]["vty_limit"] == 2
        assert lab.control.state("hub1")["faults"]["slow_seconds"] == 0


def test_ctl_without_a_lab_is_a_clear_error(tmp_path: Path) -> None:
    line = _one_line_error(["ctl", "--state-dir", str(tmp_path), "now"])
    assert "no running lab" in line


def test_inventory_has_the_documented_shape_and_is_deterministic() -> None:
    from collector.lab.fleet import Fleet

    fleets = [Fleet.build(6, [], seed=0) for _ in range(2)]
    texts = [
        inventory_text(fleet, {name: 20001 + i for i, name in enumerate(fleet.routers)}, seed=0) for fleet in fleets
    ]
    assert texts[0] == texts[1]
    assert texts[0].startswith("# written by `collector lab up`")
    data = yaml.safe_load(texts[0])
    assert set(data) == {"defaults", "groups", "hosts"}
    assert set(data["defaults"]) == {"username", "password", "secret", "connection_options"}
    assert data["defaults"]["connection_options"] == {"host_key_policy": "tofu"}
    assert data["groups"]["lab"] == {"site": "lab"}
    fleet = fleets[0]
    assert list(data["hosts"]) == list(fleet.routers)
    for i, (name, host) in enumerate(data["hosts"].items()):
        router = fleet.routers[name]
        assert host["hostname"] == "127.0.0.1"
        assert host["port"] == 20001 + i
        assert host["platform"] == router.platform in ("cisco_ios", "cisco_xe")
        assert host["groups"][0] == "lab"
        for group in host["groups"][1:]:
            assert group in data["groups"] and data["groups"][group]["data"]["role"]
        assert host["addresses"][-1] == router.syslog_source
        assert set(map(str, router.addresses)) <= set(host["addresses"])
        assert host["data"] == {"model": router.model}
    roles = {data["groups"][g]["data"]["role"] for h in data["hosts"].values() for g in h["groups"][1:]}
    assert {"hub", "spoke"} <= roles


def test_repository_inventory_points_at_the_default_lab() -> None:
    """The committed inventory.yaml must stay what `lab up` writes for seed 0, 6 routers, base port 20001."""
    from collector.lab.fleet import Fleet

    fleet = Fleet.build(6, [], seed=0)
    written = inventory_text(fleet, {name: 20001 + i for i, name in enumerate(fleet.routers)}, seed=0)
    assert yaml.safe_load((REPO / "inventory.yaml").read_text()) == yaml.safe_load(written)
