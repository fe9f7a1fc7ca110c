"""Host keys over real SSH, through the `collector` command.

Trust on first use records each router's key (OpenSSH known_hosts format, in the tool's
own file) and says so; a later key change is refused with a message naming the router
and both fingerprints, on every path (collect, the agent's poll), without retrying and
without touching the recorded key; `strict` refuses a router it has never seen.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from reliability_lab import fast_playbook, run_cli

from collector.lab.runner import running_lab
from collector.lab.sshserver import derive_host_key

pytestmark = pytest.mark.e2e


def _fingerprint(openssh_public: str) -> str:
    blob = base64.b64decode(openssh_public.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _lab_key(router: str, variant: str = "") -> str:
    return derive_host_key(0, router, variant).export_public_key("openssh").decode().strip()


def test_first_use_is_recorded_and_a_changed_key_is_refused_naming_both_fingerprints(tmp_path):
    known_hosts = Path(os.environ["COLLECTOR_STATE"]) / "known_hosts"
    with running_lab(routers=4, state_dir=tmp_path / "lab") as lab:
        router = lab.routers[0]
        port = lab.port(router)
        inventory = str(lab.inventory_path)

        first = run_cli("collect", "-i", inventory, "--hosts", router, "-c", "show clock", "--out", str(tmp_path / "b"),
                        cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        good = _lab_key(router)
        assert f"[127.0.0.1]:{port} {good.split()[0]} {good.split()[1]}" in known_hosts.read_text().splitlines()
        assert "trust on first use" in first.stderr and _fingerprint(good) in first.stderr
        recorded = known_hosts.read_bytes()

        again = run_cli("collect", "-i", inventory, "--hosts", router, "-c", "show clock", "--out", str(tmp_path / "b"),
                        cwd=tmp_path)
        assert again.returncode == 0 and "trust on first use" not in again.stderr

        lab.control.fault(router, changed_host_key=True)
        before = lab.listener_stats(router).accepted
        changed = run_cli("collect", "-i", inventory, "--hosts", router, "-c", "show clock", "--out",
                          str(tmp_path / "b"), cwd=tmp_path)
        assert changed.returncode == 1
        offered = _lab_key(router, "changed")
        (line,) = [l for l in changed.stderr.splitlines() if l.strip().startswith(f"{router}:")]
        assert "CHANGED" in line and f"127.0.0.1:{port}" in line
        assert f"known ssh-ed25519 {_fingerprint(good)}" in line and f"offered ssh-ed25519 {_fingerprint(offered)}" in line
        assert str(known_hosts) in line
        assert "Traceback" not in changed.stderr
        assert known_hosts.read_bytes() == recorded  # never replaced silently
        assert lab.listener_stats(router).accepted - before == 1  # and not retried

        # The agent's log poll refuses it the same way and goes on with the other routers.
        playbook = fast_playbook(tmp_path)
        watch = run_cli("watch", "--once", "-i", inventory, "--playbook", str(playbook), "--state",
                        str(tmp_path / "state"), "--out", str(tmp_path / "bundles"), cwd=tmp_path)
        assert watch.returncode == 1, watch.stderr  # a router could not be read: exit 1, named
        assert any(l.startswith(f"collector: {router}: could not be read: host key") for l in watch.stderr.splitlines())
        refused = [l for l in watch.stderr.splitlines() if f"{router}: log poll failed" in l]
        assert refused and f"offered ssh-ed25519 {_fingerprint(offered)}" in refused[0], watch.stderr
        assert not [l for l in watch.stderr.splitlines() if "log poll failed" in l and router not in l]

        # Back to the recorded key: accepted again.
        lab.control.fault(router, changed_host_key=False)
        back = run_cli("collect", "-i", inventory, "--hosts", router, "-c", "show clock", "--out", str(tmp_path / "b"),
                       cwd=tmp_path)
        assert back.returncode == 0, back.stderr


def test_strict_policy_refuses_a_router_never_seen(tmp_path):
    with running_lab(routers=2, state_dir=tmp_path / "lab") as lab:
        router = lab.routers[1]
        text = lab.inventory_path.read_text().replace("{host_key_policy: tofu}", "{host_key_policy: strict}")
        assert "strict" in text
        strict = tmp_path / "strict.yaml"
        strict.write_text(text)
        run = run_cli("collect", "-i", str(strict), "--hosts", router, "-c", "show clock", "--out", str(tmp_path / "b"),
                      cwd=tmp_path)
        assert run.returncode == 1
        (line,) = [l for l in run.stderr.splitlines() if l.strip().startswith(f"{router}:")]
        assert "unknown" in line and "strict" in line and _fingerprint(_lab_key(router)) in line
        assert not (Path(os.environ["COLLECTOR_STATE"]) / "known_hosts").exists() or \
            str(lab.port(router)) not in (Path(os.environ["COLLECTOR_STATE"]) / "known_hosts").read_text()
