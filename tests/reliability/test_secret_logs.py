"""A login password and an enable secret made of the characters loggers escape (`'`, `\\`,
`"`, `$`, spaces) appear in no log line at -vv, where netmiko and paramiko print what
they send, for each credential source: environment, keyring, the terminal prompt."""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import yaml

from collector.lab.runner import running_lab

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "p'w \\\"$HOME\" x"
ENABLE = "en \\ 'a' \"b\" $(id)"

# A keyring backend for the child process (no system keyring here): entries from a JSON file.
KEYRING_BACKEND = textwrap.dedent(
    """
    import json, os
    from keyring.backend import KeyringBackend

    class FileKeyring(KeyringBackend):
        priority = 1

        def get_password(self, service, username):
            return json.load(open(os.environ["TEST_KEYRING_FILE"])).get(f"{service}/{username}")

        def set_password(self, service, username, password):
            raise NotImplementedError

        def delete_password(self, service, username):
            raise NotImplementedError
    """
)


def _forms(secret: str) -> set[str]:
    return {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1], json.dumps(secret)[1:-1],
            repr(repr(secret))[1:-1], shlex.quote(secret), quote(secret, safe=""), quote_plus(secret, safe=""),
            repr(secret.replace("'", '"'))[1:-1]} | {secret[i:i + 8] for i in range(0, len(secret) - 7)}


def _run_in_terminal(argv: list[str], env: dict[str, str], answers: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run the command with a terminal of its own (getpass reads /dev/tty), answering prompts."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, *argv], env)
    seen, answered = b"", set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        text = seen.decode(errors="replace")
        for prompt, answer in answers.items():
            if prompt not in answered and prompt in text:
                os.write(fd, answer.encode() + b"\r")
                answered.add(prompt)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


@pytest.mark.e2e
@pytest.mark.parametrize("source", ["environment", "keyring", "prompt"])
def test_hostile_secrets_reach_no_log_at_debug_level(tmp_path, source):
    with running_lab(routers=2, state_dir=tmp_path / "lab") as lab:
        router = lab.fleet.routers["hub1"]
        router.password, router.enable_secret = PASSWORD, ENABLE  # what the lab's SSH server and CLI check
        data = yaml.safe_load(lab.inventory_path.read_text())
        data["hosts"] = {"hub1": data["hosts"]["hub1"]}
        env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}")
        answers: dict[str, str] = {}
        if source == "environment":
            data["defaults"].update(password="${LAB_PASSWORD}", secret="${LAB_ENABLE}")
            env.update(LAB_PASSWORD=PASSWORD, LAB_ENABLE=ENABLE)
        elif source == "keyring":
            data["defaults"].update(password="keyring:collector-lab/login", secret="keyring:collector-lab/enable")
            (tmp_path / "test_file_keyring.py").write_text(KEYRING_BACKEND)
            (tmp_path / "keyring.json").write_text(json.dumps({"collector-lab/login": PASSWORD,
                                                               "collector-lab/enable": ENABLE}))
            env.update(PYTHON_KEYRING_BACKEND="test_file_keyring.FileKeyring",
                       TEST_KEYRING_FILE=str(tmp_path / "keyring.json"))
        else:
            data["defaults"].update(password="prompt", secret="prompt")
            answers = {"password for defaults: ": PASSWORD, "secret for defaults: ": ENABLE}
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(data))
        argv = ["-m", "collector", "-vv", "collect", "-i", str(inventory), "-c", "show clock",
                "-c", "show running-config | include ^enable", "--json", "--out", str(tmp_path / "out")]
        code, output = _run_in_terminal(argv, env, answers, tmp_path)

    assert code == 0, output[-3000:]
    # the libraries' own debug lines were on (the sink under test): paramiko's transport;
    # netmiko no longer writes to the channel (the session's lean login does, without logging)
    assert "DEBUG paramiko.transport" in output
    assert '"command": "show clock"' in output  # logged in and ran: the secrets were right
    leaks = [f for secret in (PASSWORD, ENABLE) for f in _forms(secret) if f in output]
    assert not leaks, leaks
    bundle_text = "".join(p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*") if p.is_file()
                          and not p.name.endswith(".gz"))
    assert not [f for secret in (PASSWORD, ENABLE) for f in _forms(secret) if f in bundle_text]
