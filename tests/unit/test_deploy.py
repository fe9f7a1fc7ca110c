"""The shipped systemd unit and cron line work as shipped: a state folder the service may
write, the same folder and environment file for both, and a unit systemd accepts."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from collector.envfile import EnvFileError, read_env_file

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "collector-watch.service"
CRON = REPO / "deploy" / "collector.cron"
ENV_EXAMPLE = REPO / "deploy" / "collector.env"
COLLECTOR = Path(sys.executable).with_name("collector")


def _unit() -> dict[str, list[str]]:
    """[Service] keys -> every value (a key may repeat, as Environment= does)."""
    values: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def _cron() -> tuple[dict[str, str], str]:
    variables, command = {}, None
    for line in CRON.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("* "):
            command = line.split(None, 5)[5]
        else:
            key, _, value = line.partition("=")
            variables[key] = value
    assert command is not None
    return variables, command


def test_unit_keeps_its_state_in_its_state_directory():
    unit = _unit()
    assert unit["StateDirectory"] == ["collector"]
    environment = dict(v.split("=", 1) for v in unit["Environment"])
    assert environment["COLLECTOR_STATE"].startswith("/var/lib/collector/")  # inside StateDirectory=
    assert "--state" not in unit["ExecStart"][0]  # it follows COLLECTOR_STATE
    assert "ReadWritePaths" not in unit  # StateDirectory= is what makes it writable under ProtectSystem=strict


def test_cron_uses_the_units_state_folder_and_environment_file():
    unit = _unit()
    environment = dict(v.split("=", 1) for v in unit["Environment"])
    variables, command = _cron()
    assert variables["COLLECTOR_STATE"] == environment["COLLECTOR_STATE"]
    assert variables["COLLECTOR_INVENTORY"] == environment["COLLECTOR_INVENTORY"]
    env_file = unit["EnvironmentFile"][0].lstrip("-")
    words = shlex.split(command)
    assert words[words.index("--env-file") + 1] == env_file
    assert "--state" not in words


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: .ci/run installs the systemd package"
    unit = tmp_path / UNIT.name
    # only the install prefix differs: systemd checks that ExecStart is executable
    unit.write_text(UNIT.read_text().replace("/opt/collector/.venv/bin/collector", str(COLLECTOR)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(unit) not in done.stderr, done.stderr  # no warning about our unit


def test_the_cron_line_runs_with_credentials_from_the_environment_file(tmp_path):
    """Run the shipped cron command as cron would: a bare environment, the crontab's
    variables, paths moved under tmp_path. The inventory names its password as ${VAR}."""
    variables, command = _cron()
    root = tmp_path / "var-lib-collector"
    root.mkdir()
    (tmp_path / "log").mkdir()
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text('defaults: {username: "${VPN_USER}", password: "${VPN_PASSWORD}", platform: cisco_ios}\n'
                         "hosts:\n  r1: {hostname: 127.0.0.1, port: 9}\n")
    env_file = tmp_path / "environment"
    env_file.write_text("VPN_USER=netops\nVPN_PASSWORD='it$ a \"secret\"'\n")
    moved = {"/opt/collector/.venv/bin/collector": str(COLLECTOR), "/etc/collector/environment": str(env_file),
             "/var/lib/collector": str(root), "/var/log/collector": str(tmp_path / "log")}
    for old, new in moved.items():
        command = command.replace(old, new)
    cron_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh"}
    for key, value in variables.items():
        for old, new in moved.items():
            value = value.replace(old, new)
        cron_env[key] = value
    cron_env["COLLECTOR_INVENTORY"] = str(inventory)
    subprocess.run(["/bin/sh", "-c", command], env=cron_env, timeout=120)
    log = (tmp_path / "log" / "watch.log").read_text()
    assert "not set" not in log, log
    assert "r1: log poll failed: connection refused" in log  # it got as far as the router
    assert (root / "state" / "state.db").is_file()  # the state went where the unit keeps it
    assert "secret" not in log

    env_file.write_text("VPN_USER=netops\n")  # and without the password the run says so
    subprocess.run(["/bin/sh", "-c", command], env=cron_env, timeout=120)
    assert "environment variable VPN_PASSWORD is not set" in (tmp_path / "log" / "watch.log").read_text()


def test_environment_file_is_read_as_systemd_reads_it(tmp_path):
    path = tmp_path / "env"
    path.write_text(
        "# comment\n; also a comment\n\n"
        "PLAIN=a$b c\n"
        "SINGLE='it''s $HOME \\n'\n"
        'DOUBLE="say \\"hi\\" \\\\ \\$x"\n'
        "  SPACED = value  \n"
        "LONG=first\\\nsecond\n"
    )
    assert read_env_file(path) == {
        "PLAIN": "a$b c", "SINGLE": "it''s $HOME \\n", "DOUBLE": 'say "hi" \\ $x', "SPACED": "value",
        "LONG": "firstsecond",
    }
    assert read_env_file(ENV_EXAMPLE)["VPN_PASSWORD"] == "change me"


@pytest.mark.parametrize("body, where", [("JUST TEXT\n", ":1:"), ("A=1\n1BAD=x\n", ":2:"), ("Q='open\n", ":1:")])
def test_a_bad_environment_file_line_is_named(tmp_path, body, where):
    path = tmp_path / "env"
    path.write_text(body)
    with pytest.raises(EnvFileError, match=f"^{path}{where}"):
        read_env_file(path)


def test_env_file_option_sets_the_default_state_folder(tmp_path):
    env_file = tmp_path / "environment"
    env_file.write_text(f"COLLECTOR_STATE={tmp_path / 'from-file'}\n")
    done = subprocess.run([str(COLLECTOR), "--env-file", str(env_file), "incidents"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60, env=dict(os.environ, COLLECTOR_STATE="/nonexistent"))
    assert done.returncode == 2
    assert f"{tmp_path / 'from-file'}: no state here yet" in done.stderr
