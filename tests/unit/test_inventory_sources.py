"""Ansible inventories (INI and YAML, group_vars/ and host_vars/) read natively, and
`collector inventory --check` resolving credentials."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collector.inventory import InventoryError, load_inventory
from collector.inventory_sources import is_ansible_inventory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventory"
INI = FIXTURES / "ansible_ini" / "hosts.ini"
YAML_DIR = FIXTURES / "ansible_yaml"
ENV = {"ROUTER_PASSWORD": "wan-pass", "ROUTER_ENABLE": "wan-enable", "PARIS_ROUTER_PASSWORD": "paris-pass"}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_ini_inventory_with_children_vars_ranges_and_side_files(caplog):
    with caplog.at_level(logging.INFO, logger="collector.inventory_sources"):
        inv = load_inventory(INI, environ=ENV)
    assert list(inv.hosts) == ["lon-hub-01", "par-hub-01", "lon-spk-01", "lon-spk-02", "lon-spk-03", "par-spk-01"]
    # the jump host has no network OS: not a router, skipped (said at -v)
    assert "lab-jump.example.net skipped" in caplog.text
    hub = inv.hosts["lon-hub-01"]
    assert (hub.hostname, hub.port, hub.platform, hub.username) == ("127.0.0.1", 2201, "cisco_xe", "netops")
    assert hub.password.reveal() == "wan-pass" and hub.secret.reveal() == "wan-enable"  # [all:vars] lookups
    assert hub.addresses == ("192.0.2.1",) and hub.data == {"ntp_server": "192.0.2.123", "site_role": "hub"}
    assert hub.member_of == ("dmvpn_hubs", "dmvpn")
    spoke = inv.hosts["lon-spk-02"]
    # range expanded; group_vars/dmvpn_spokes_lon.yml gives 2221, host_vars/lon-spk-02.yml 2222
    assert (inv.hosts["lon-spk-01"].port, spoke.port, inv.hosts["lon-spk-03"].port) == (2221, 2222, 2221)
    assert spoke.platform == "cisco_ios"  # cisco.ios.ios from [dmvpn:vars]
    assert spoke.site == "london" and spoke.data["snmp_location"] == "London, rack B2"
    assert spoke.member_of == ("dmvpn_spokes_lon", "dmvpn_spokes", "dmvpn")
    paris = inv.hosts["par-spk-01"]
    assert (paris.username, paris.password.reveal()) == ("paris-ops", "paris-pass")
    assert [p.name for p in inv.source] == ["hosts.ini", "dmvpn_spokes_lon.yml", "lon-spk-02.yml"]


def test_yaml_inventory_folder_with_group_vars_folder_and_key_file():
    inv = load_inventory(YAML_DIR, environ=ENV)
    assert sorted(inv.hosts) == ["hub1", "spoke1", "spoke2"]
    hub = inv.hosts["hub1"]
    assert (hub.platform, hub.port, hub.addresses) == ("cisco_xe", 2201, ("192.0.2.1", "2001:db8::1"))
    assert hub.data == {"tunnel_source": "Loopback0"} and hub.secret is None
    assert inv.hosts["spoke1"].site == "paris" and inv.hosts["spoke1"].secret.reveal() == "wan-enable"
    spoke2 = inv.hosts["spoke2"]
    assert spoke2.member_of == ("dmvpn_spokes", "wan", "lab") and spoke2.data == {"bgp_asn": 65002}
    assert spoke2.options.extras == {"key_file": str(Path("~/.ssh/netops_ed25519").expanduser()), "use_keys": True}


def test_ansible_precedence_deeper_group_then_later_name(tmp_path):
    path = write(tmp_path, "hosts", """
        [a]
        r1 ansible_host=127.0.0.1
        [b]
        r1
        [parent:children]
        a
        [a:vars]
        ansible_port=2001
        color=a
        [b:vars]
        ansible_port=2002
        [parent:vars]
        ansible_port=2000
        color=parent
        shape=parent
        [all:vars]
        ansible_network_os=ios
        ansible_user=u
        shape=all
        """)
    r1 = load_inventory(path).hosts["r1"]
    # a (depth 2, under parent) beats b (depth 1); parent beats all
    assert (r1.port, r1.data["color"], r1.data["shape"]) == (2001, "a", "parent")
    flat = write(tmp_path / "flat", "hosts", """
        [alpha]
        r1 ansible_host=127.0.0.1
        [beta]
        r1
        [alpha:vars]
        ansible_port=2001
        [beta:vars]
        ansible_port=2002
        [all:vars]
        ansible_network_os=cisco.ios.ios
        ansible_user=u
        """)
    assert load_inventory(flat).hosts["r1"].port == 2002  # same depth: the later name wins, as in Ansible


@pytest.mark.parametrize("line, message", [
    ("r1 ansible_password='{{ vault_router_password }}'", "Jinja expression"),
    ("r1 ansible_port=abc", "port"),
])
def test_ini_mistakes_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "inventory.ini", f"""
        [all:vars]
        ansible_network_os=ios
        ansible_user=u

        [routers]
        {line}
        """)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}:6:") and message in str(info.value)


def test_vault_value_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, "inventory.yml", """
        all:
          vars:
            ansible_network_os: cisco.ios.ios
            ansible_user: netops
            ansible_password: !vault |
              $ANSIBLE_VAULT;1.1;AES256
              6236343437336363376566363436383764343364
          hosts:
            r1:
              ansible_host: 127.0.0.1
        """)
    assert is_ansible_inventory(path)
    with pytest.raises(InventoryError, match=rf"^{path}:5: .*vault-encrypted"):
        load_inventory(path)


def test_unset_environment_variable_names_the_ansible_line():
    with pytest.raises(InventoryError) as info:
        load_inventory(INI, environ={"ROUTER_PASSWORD": "x", "ROUTER_ENABLE": "y"})
    assert str(info.value) == (f"{INI}:14: host par-spk-01: password: environment variable "
                               "PARIS_ROUTER_PASSWORD is not set")


def test_native_and_nornir_files_are_not_taken_for_ansible():
    assert not is_ansible_inventory(FIXTURES / "single" / "inventory.yaml")
    assert not is_ansible_inventory(FIXTURES / "nornir" / "hosts.yaml")
    assert is_ansible_inventory(INI) and is_ansible_inventory(YAML_DIR / "inventory.yml")


# ----------------------------------------------------------------------- inventory --check


def _collector(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ENV}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_inventory_check_resolves_credentials_and_fails_on_unset_variable(tmp_path):
    ok = _collector("inventory", "-i", str(INI), "--check", env=ENV, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"{INI}: ok, 6 hosts, 5 groups, credentials resolved"
    unset = _collector("inventory", "-i", str(INI), "--check", env={"ROUTER_PASSWORD": "x", "ROUTER_ENABLE": "y"},
                       cwd=tmp_path)
    assert unset.returncode == 2 and "Traceback" not in unset.stderr
    assert unset.stderr.strip() == (f"collector: error: {INI}:14: host par-spk-01: password: environment variable "
                                    "PARIS_ROUTER_PASSWORD is not set")


def test_inventory_check_lists_prompts_without_asking(tmp_path):
    path = write(tmp_path, "inventory.yaml", """
        defaults:
          platform: ios
          username: ops
          password: prompt
        hosts:
          r1: {hostname: 127.0.0.1}
        """)
    done = _collector("inventory", "-i", str(path), "--check", env={}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{path}: ok, 1 hosts, 0 groups, credentials resolved; asked at start: " \
                                  "password for defaults"


# ----------------------------------------------------------------------- against Ansible itself


def _ansible_inventory() -> str | None:
    return os.environ.get("ANSIBLE_INVENTORY_BIN") or shutil.which("ansible-inventory")


@pytest.mark.skipif(_ansible_inventory() is None, reason="ansible-core not installed (pip install ansible-core)")
@pytest.mark.parametrize("source", [INI, YAML_DIR / "inventory.yml"], ids=["ini", "yaml"])
def test_same_hosts_groups_and_variables_as_ansible_inventory(source, tmp_path):
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path), "ANSIBLE_HOME": str(tmp_path)}
    listed = subprocess.run([_ansible_inventory(), "-i", str(source), "--list"], capture_output=True, text=True,
                            timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    hostvars = data["_meta"]["hostvars"]
    inv = load_inventory(source, environ=ENV)
    routers = {h for h, v in hostvars.items() if v.get("ansible_network_os")}
    assert set(inv.hosts) == routers
    for name, host in inv.hosts.items():
        v = hostvars[name]
        assert host.hostname == v["ansible_host"], name
        assert host.port == int(v.get("ansible_port", 22)), name
        assert host.username == v["ansible_user"], name
        want = v.get("collector_platform") or {"cisco.ios.ios": "cisco_ios", "ios": "cisco_ios"}[v["ansible_network_os"]]
        assert host.platform == want, name
        if "collector_site" in v:
            assert host.site == v["collector_site"], name
        for key, value in host.data.items():
            assert v[key] == value, (name, key)

    def groups_of(host: str) -> set[str]:
        found = set()
        for group, body in data.items():
            if group.startswith("_") or group in ("all", "ungrouped"):
                continue
            if host in body.get("hosts", []):
                found.add(group)
        # parents through children
        changed = True
        while changed:
            changed = False
            for group, body in data.items():
                if group in ("all", "_meta") or group in found:
                    continue
                if set(body.get("children", [])) & found:
                    found.add(group)
                    changed = True
        return found

    for name, host in inv.hosts.items():
        assert set(host.member_of) == groups_of(name), name
