from __future__ import annotations

import hashlib
import json
import shutil
import textwrap
from pathlib import Path

import paramiko
import pytest

from collector.credentials import Secret
from collector.inventory import Host, Inventory, InventoryError, load_inventory, load_inventory_files

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventory"
ENV = {"COLLECTOR_TEST_PASSWORD": "env-password-1", "COLLECTOR_TEST_ENABLE": "env-enable-1"}


def write(folder: Path, text: str, name: str = "inventory.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(path: Path, **kw) -> Inventory:
    kw.setdefault("environ", ENV)
    return load_inventory(path, **kw)


def error_of(path: Path, **kw) -> InventoryError:
    with pytest.raises(InventoryError) as info:
        load(path, **kw)
    text = str(info.value)
    assert "\n" not in text
    assert "Traceback" not in text
    return info.value


MINIMAL = """
defaults:
  username: admin
  password: lab
  platform: cisco_ios
hosts:
  r1:
    hostname: 10.0.0.1
"""


# -- the one-file form ------------------------------------------------------------------


@pytest.fixture
def single() -> Inventory:
    return load(FIXTURES / "single" / "inventory.yaml")


def test_single_file_hosts_and_groups(single):
    assert list(single.hosts) == ["hub1", "hub2", "spoke1", "spoke2"]
    assert set(single.groups) == {"dc-east", "hubs", "spokes"}
    assert single.groups["hubs"].groups == ("dc-east",)


def test_group_beats_defaults_and_host_beats_group(single):
    hub1, hub2, spoke1 = single.hosts["hub1"], single.hosts["hub2"], single.hosts["spoke1"]
    assert hub1.platform == "cisco_xe"  # from group hubs, over defaults' cisco_ios
    assert spoke1.platform == "cisco_ios"  # defaults
    assert hub2.port == 2222 and hub1.port == 22
    assert hub1.data["role"] == "hub" and hub2.data["role"] == "backup-hub"


def test_parent_groups_are_inherited(single):
    hub1 = single.hosts["hub1"]
    assert hub1.member_of == ("hubs", "dc-east")
    assert hub1.groups == ("hubs",)
    assert hub1.site == "east"  # from the parent of hubs
    assert hub1.data == {"region": "emea", "syslog": "10.9.9.9", "role": "hub"}


def test_connection_options_inherit_per_key(single):
    spoke2 = single.hosts["spoke2"]
    assert spoke2.options.retries == 4  # group spokes
    assert spoke2.options.read_timeout == 45.0  # defaults
    assert spoke2.options.conn_timeout == 10.0  # built-in default
    assert spoke2.options.host_key_policy == "tofu"


def test_credentials_from_environment_and_plain(single):
    assert single.hosts["hub1"].password.reveal() == "env-password-1"
    assert single.hosts["hub1"].secret.reveal() == "env-enable-1"
    assert single.hosts["spoke2"].password.reveal() == "plain-lab-password"
    assert single.hosts["spoke1"].secret is None
    assert single.hosts["hub1"].username == "netops"


def test_addresses_are_normalised(tmp_path):
    path = write(tmp_path, MINIMAL + "    addresses: ['2001:DB8:0:0::1', ' 10.1.1.1']\n")
    inv = load(path)
    assert inv.hosts["r1"].addresses == ("2001:db8::1", "10.1.1.1")


def test_hostname_defaults_to_host_name(tmp_path):
    path = write(tmp_path, MINIMAL + "  core-r7.example.net: {}\n")
    assert load(path).hosts["core-r7.example.net"].hostname == "core-r7.example.net"


def test_digest_is_sha256_of_source_bytes(tmp_path):
    path = write(tmp_path, MINIMAL)
    inv = load(path)
    assert inv.source == [path]
    assert inv.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text(path.read_text() + "# changed\n")
    assert load(path).digest != inv.digest


def test_host_repr_and_masked_never_show_secrets(single):
    text = repr(single.hosts["hub1"]) + json.dumps(single.masked()) + str(single.hosts)
    for value in ENV.values():
        assert value not in text
    assert "plain-lab-password" not in text
    masked = single.masked()["hosts"]["hub1"]
    assert masked["password"] == "********" and masked["secret"] == "********"
    assert masked["username"] == "netops"
    assert single.masked()["hosts"]["spoke1"]["secret"] is None


def test_secret_values_lists_every_credential(single):
    assert set(single.secret_values()) == {"env-password-1", "env-enable-1", "plain-lab-password"}


# -- Nornir files -------------------------------------------------------------------------


@pytest.fixture
def nornir() -> Inventory:
    return load(FIXTURES / "nornir")


def test_nornir_folder_loads_as_is(nornir):
    assert list(nornir.hosts) == ["r1", "r2", "r3"]
    assert [p.name for p in nornir.source] == ["hosts.yaml", "groups.yaml", "defaults.yaml"]
    r1 = nornir.hosts["r1"]
    assert (r1.hostname, r1.port, r1.platform, r1.username) == ("10.10.10.1", 22, "cisco_ios", "admin")
    assert r1.password.reveal() == "admin-password"
    assert r1.data == {"domain": "example.net", "os": "ios", "site_code": "lon1"}


def test_nornir_netmiko_extras_secret_and_passthrough(nornir):
    r1 = nornir.hosts["r1"]
    assert r1.secret.reveal() == "enable-r1"
    assert dict(r1.options.extras) == {"fast_cli": False}


def test_nornir_netmiko_platform_wins_over_napalm_platform(nornir):
    r2 = nornir.hosts["r2"]
    assert r2.platform == "cisco_xe"  # host says `ios` (NAPALM), group's netmiko section says cisco_xe
    assert r2.port == 2022
    assert r2.options.conn_timeout == 25.0  # netmiko extras conn_timeout
    assert r2.member_of == ("xe_routers", "ios_routers")


def test_nornir_empty_host_entry(nornir):
    r3 = nornir.hosts["r3"]
    assert (r3.hostname, r3.platform, r3.groups) == ("r3", "cisco_ios", ())


def test_nornir_hosts_file_path_picks_up_neighbours(tmp_path):
    folder = tmp_path / "inv"
    shutil.copytree(FIXTURES / "nornir", folder)
    inv = load(folder / "hosts.yaml")
    assert inv.hosts["r2"].platform == "cisco_xe"
    assert len(inv.source) == 3


def test_explicit_files(tmp_path):
    hosts = write(tmp_path, "a1:\n  hostname: 10.0.0.1\n  groups: [g]\n", "h.yml")
    groups = write(tmp_path, "g:\n  platform: cisco_xe\n", "g.yml")
    defaults = write(tmp_path, "username: u\npassword: p\n", "d.yml")
    inv = load_inventory_files(hosts, groups, defaults)
    assert inv.hosts["a1"].platform == "cisco_xe"
    assert inv.source == [hosts, groups, defaults]
    assert inv.digest == hashlib.sha256(hosts.read_bytes() + groups.read_bytes() + defaults.read_bytes()).hexdigest()


def test_folder_without_hosts_yaml(tmp_path):
    err = error_of(tmp_path)
    assert "no hosts.yaml" in str(err)


def test_nornir_error_lines_point_into_the_right_file(tmp_path):
    folder = tmp_path / "inv"
    shutil.copytree(FIXTURES / "nornir", folder)
    groups = folder / "groups.yaml"
    groups.write_text(groups.read_text().replace("      platform: cisco_xe", "      platfrom: cisco_xe"))
    err = error_of(folder)
    assert str(err) == f"{groups}:12: xe_routers.connection_options.netmiko.platfrom: unknown key"


def test_a_nornir_hosts_file_under_another_name_gets_a_hint(tmp_path):
    path = tmp_path / "routers.yaml"
    path.write_text((FIXTURES / "nornir" / "hosts.yaml").read_text())
    assert "Nornir hosts file" in str(error_of(path))


# -- errors: one line, naming file:line or host ----------------------------------------


def test_yaml_syntax_error(tmp_path):
    path = write(tmp_path, MINIMAL + "    port: [22\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:")
    assert "YAML syntax error" in str(err)
    assert err.line is not None


def test_unknown_key_on_host(tmp_path):
    path = write(tmp_path, MINIMAL + "    pasword: x\n")
    assert str(error_of(path)) == f"{path}:8: hosts.r1.pasword: unknown key"


def test_unknown_key_in_connection_options(tmp_path):
    path = write(tmp_path, MINIMAL + "    connection_options:\n      read_timout: 5\n")
    assert str(error_of(path)) == f"{path}:9: hosts.r1.connection_options.read_timout: unknown key"


def test_unknown_top_level_section(tmp_path):
    path = write(tmp_path, MINIMAL + "host:\n  r2: {}\n")
    assert str(error_of(path)) == f"{path}:8: host: unknown key"


def test_data_accepts_anything(tmp_path):
    path = write(tmp_path, MINIMAL + "    data:\n      anything: {nested: [1, 2]}\n      x: null\n")
    assert load(path).hosts["r1"].data == {"anything": {"nested": [1, 2]}, "x": None}


def test_host_in_undefined_group(tmp_path):
    path = write(tmp_path, MINIMAL + "    groups: [hubs, nope]\ngroups:\n  hubs: {}\n")
    assert str(error_of(path)) == f"{path}:8: host r1: group 'nope' is not defined"


def test_undefined_parent_group(tmp_path):
    path = write(tmp_path, MINIMAL + "groups:\n  a:\n    groups: [b]\n")
    assert str(error_of(path)) == f"{path}:10: group a: parent group 'b' is not defined"


def test_group_cycle(tmp_path):
    path = write(tmp_path, MINIMAL + "    groups: [a]\ngroups:\n  a:\n    groups: [b]\n  b:\n    groups: [c]\n  c:\n    groups: [a]\n")
    err = error_of(path)
    assert "group cycle: a -> b -> c -> a" in str(err)
    assert str(err).startswith(f"{path}:11:")


def test_bad_platform(tmp_path):
    path = write(tmp_path, MINIMAL + "    platform: cisco_nxos\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:8: host r1: platform 'cisco_nxos' is not supported")
    assert "ASR1000" in str(err)


@pytest.mark.parametrize("written, platform", [
    ("ios", "cisco_ios"), ("cisco_ios_ssh", "cisco_ios"), ("IOSXE", "cisco_xe"), ("iosxe", "cisco_xe"),
    ("cisco_xe", "cisco_xe"), ("cisco_iosxe", "cisco_xe"), ("ios-xe", "cisco_xe"), ("cisco.ios.ios", "cisco_ios"),
])
def test_platform_names_of_nornir_napalm_netmiko_users_are_aliases(tmp_path, written, platform):
    path = write(tmp_path, MINIMAL + f"    platform: {written}\n")
    assert load_inventory(path).hosts["r1"].platform == platform


def test_device_type_key_wins_over_platform_on_one_level(tmp_path):
    # NAPALM's `platform: ios` and netmiko's `device_type: cisco_xe` side by side
    path = write(tmp_path, MINIMAL + "    platform: ios\n    device_type: cisco_xe\n    groups: [g]\n"
                 "groups:\n  g:\n    device_type: cisco_ios\n")
    inv = load_inventory(path)
    assert inv.hosts["r1"].platform == "cisco_xe" and inv.groups["g"].platform == "cisco_ios"


def test_device_type_of_another_vendor_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, MINIMAL + "    device_type: juniper_junos\n")
    assert str(error_of(path)).startswith(f"{path}:8: host r1: platform 'juniper_junos' is not supported")


def test_asr_model_name_gets_a_hint(tmp_path):
    path = write(tmp_path, MINIMAL + "    platform: asr1000\n")
    assert "use cisco_xe" in str(error_of(path))


def test_bad_platform_inherited_from_group_points_at_the_group(tmp_path):
    path = write(tmp_path, MINIMAL + "    groups: [g]\ngroups:\n  g:\n    platform: junos\n")
    assert str(error_of(path)).startswith(f"{path}:11: host r1: platform 'junos'")


def test_missing_platform(tmp_path):
    path = write(tmp_path, "hosts:\n  r1:\n    username: u\n")
    assert str(error_of(path)) == f"{path}:2: host r1: no platform (set platform: cisco_ios or cisco_xe on the host, a group or defaults)"


def test_missing_username(tmp_path):
    path = write(tmp_path, "hosts:\n  r1:\n    platform: cisco_ios\n")
    assert "host r1: no username" in str(error_of(path))


@pytest.mark.parametrize("address", ["10.0.0.256", "not-an-ip", "10.0.0.0/24"])
def test_bad_address(tmp_path, address):
    path = write(tmp_path, MINIMAL + f"    addresses: [10.1.1.1, '{address}']\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:8: hosts.r1.addresses.1: ")
    assert "is not an IP address" in str(err)


def test_address_owned_twice(tmp_path):
    path = write(tmp_path, MINIMAL + "    addresses: [10.9.0.1]\n  r2:\n    addresses: [10.9.0.2, 10.9.0.1]\n")
    assert str(error_of(path)) == f"{path}:10: host r2: address 10.9.0.1 is already owned by host r1"


@pytest.mark.parametrize("port", ["0", "65536", "ssh", "-1"])
def test_bad_port(tmp_path, port):
    path = write(tmp_path, MINIMAL + f"    port: {port}\n")
    assert str(error_of(path)).startswith(f"{path}:8: hosts.r1.port: ")


def test_quoted_port_is_accepted(tmp_path):
    assert load(write(tmp_path, MINIMAL + "    port: '830'\n")).hosts["r1"].port == 830


def test_bad_hostname(tmp_path):
    path = write(tmp_path, MINIMAL.replace("10.0.0.1", "'10.0.0.1; reboot'"))
    assert str(error_of(path)).startswith(f"{path}:7: hosts.r1.hostname: ")


def test_bad_host_name(tmp_path):
    path = write(tmp_path, MINIMAL + "  ../etc:\n    hostname: 10.0.0.2\n")
    assert str(error_of(path)).startswith(f"{path}:8: host name '../etc':")


def test_bad_host_key_policy(tmp_path):
    path = write(tmp_path, MINIMAL + "    connection_options: {host_key_policy: yolo}\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:8: hosts.r1.connection_options.host_key_policy: ")


def test_bad_timeout_in_netmiko_extras(tmp_path):
    path = write(tmp_path, MINIMAL + "    connection_options:\n      netmiko:\n        extras:\n          conn_timeout: -3\n")
    assert str(error_of(path)).startswith(f"{path}:11: host r1: connection_options.netmiko.extras.conn_timeout:")


def test_empty_file_and_no_hosts(tmp_path):
    assert "empty" in str(error_of(write(tmp_path, "# nothing\n")))
    path = write(tmp_path, "defaults:\n  platform: cisco_ios\nhosts: {}\n", "b.yaml")
    assert str(error_of(path)) == f"{path}:3: no hosts defined"


def test_missing_file(tmp_path):
    assert str(error_of(tmp_path / "nope.yaml")) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_duplicate_host(tmp_path):
    path = write(tmp_path, MINIMAL + "  r1:\n    hostname: 10.0.0.9\n")
    assert str(error_of(path)) == f"{path}:8: duplicate key 'r1' (first defined at line 6)"


# -- credentials in the inventory ----------------------------------------------------------


def test_unset_variable_names_file_line_host_field_and_variable(tmp_path):
    path = write(tmp_path, MINIMAL + "    password: ${ROUTER_R1_PW}\n")
    err = error_of(path)
    assert str(err) == f"{path}:8: host r1: password: environment variable ROUTER_R1_PW is not set"


def test_unset_variable_in_a_group_names_the_group(tmp_path):
    path = write(tmp_path, MINIMAL + "    groups: [g]\ngroups:\n  g:\n    secret: ${G_ENABLE}\n")
    assert str(error_of(path)) == f"{path}:11: host r1: secret (from group g): environment variable G_ENABLE is not set"


def test_embedded_variable(tmp_path):
    path = write(tmp_path, MINIMAL + "    username: ops-${SITE}\n    password: a${X}b$${literal}\n")
    host = load(path, environ={"SITE": "lon", "X": "-"}).hosts["r1"]
    assert host.username == "ops-lon"
    assert host.password.reveal() == "a-b${literal}"


def test_numeric_password_is_text(tmp_path):
    path = write(tmp_path, MINIMAL.replace("password: lab", "password: 12345"))
    assert load(path).hosts["r1"].password.reveal() == "12345"


def test_unresolved_mode_keeps_references(tmp_path):
    path = write(tmp_path, MINIMAL + "    password: ${NOT_SET_ANYWHERE}\n    secret: prompt\n")
    host = load(path, resolve_credentials=False).hosts["r1"]
    assert host.password.reveal() == "${NOT_SET_ANYWHERE}"
    assert host.secret.reveal() == "prompt"


def test_prompt_is_asked_once_per_field_and_owner(tmp_path):
    path = write(tmp_path, """
        defaults:
          username: admin
          platform: cisco_ios
        groups:
          hubs:
            password: prompt
            secret: prompt
        hosts:
          h1: {groups: [hubs]}
          h2: {groups: [hubs]}
          s1: {password: prompt}
          s2: {password: prompt}
    """)
    asked: list[str] = []

    def answer(message: str) -> str:
        asked.append(message)
        return f"answer-{len(asked)}"

    inv = load(path, prompt=answer)
    assert asked == [
        "password for group hubs: ",
        "secret for group hubs: ",
        "password for host s1: ",
        "password for host s2: ",
    ]
    assert inv.hosts["h1"].password == inv.hosts["h2"].password
    assert inv.hosts["h2"].password.reveal() == "answer-1"
    assert inv.hosts["s2"].password.reveal() == "answer-4"


def test_prompt_without_a_terminal_is_a_clear_error(tmp_path, monkeypatch):
    class NotATty:
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr("sys.stdin", NotATty())
    path = write(tmp_path, MINIMAL + "    password: prompt\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:8: host r1: password: 'prompt' needs an interactive terminal")


# -- proxy jump ----------------------------------------------------------------------------


def test_proxy_jump_writes_an_ssh_config_netmiko_can_read(tmp_path):
    path = write(tmp_path, MINIMAL + "    connection_options: {proxy_jump: 'ops@jump.example.net:2200'}\n")
    state = tmp_path / "state"
    host = load(path, state_dir=state).hosts["r1"]
    cfg_path = host.options.ssh_config_file
    assert cfg_path is not None and cfg_path.parent == state / "ssh_config"
    config = paramiko.SSHConfig.from_path(str(cfg_path))
    assert config.lookup("10.0.0.1")["proxyjump"] == "ops@jump.example.net:2200"
    assert "proxyjump" not in config.lookup("10.0.0.2")
    assert host.options.proxy_jump == "ops@jump.example.net:2200"


def test_proxy_jump_keeps_the_users_ssh_config(tmp_path):
    (tmp_path / "ssh_config").write_text("Host *\n    ServerAliveInterval 15\n")
    path = write(tmp_path, MINIMAL + "    connection_options:\n      proxy_jump: jump1\n      ssh_config_file: ssh_config\n")
    host = load(path, state_dir=tmp_path / "state").hosts["r1"]
    looked_up = paramiko.SSHConfig.from_path(str(host.options.ssh_config_file)).lookup("10.0.0.1")
    assert looked_up["proxyjump"] == "jump1"
    assert looked_up["serveraliveinterval"] == "15"


def test_ssh_config_file_is_relative_to_the_inventory(tmp_path):
    (tmp_path / "cfg").write_text("Host x\n")
    path = write(tmp_path, MINIMAL + "    connection_options: {ssh_config_file: cfg}\n")
    assert load(path).hosts["r1"].options.ssh_config_file == tmp_path / "cfg"


def test_missing_ssh_config_file(tmp_path):
    path = write(tmp_path, MINIMAL + "    connection_options: {ssh_config_file: nope}\n")
    assert str(error_of(path)).startswith(f"{path}:8: host r1: ssh_config_file 'nope' not found")


def test_multi_hop_proxy_jump_is_refused(tmp_path):
    path = write(tmp_path, MINIMAL + "    connection_options: {proxy_jump: 'a,b'}\n")
    assert "only one jump host" in str(error_of(path))


# -- selection and ownership ---------------------------------------------------------------


def names(hosts: list[Host]) -> list[str]:
    return [h.name for h in hosts]


def test_select_all_and_by_filters(single):
    assert names(single.select()) == ["hub1", "hub2", "spoke1", "spoke2"]
    assert names(single.select(group="hubs")) == ["hub1", "hub2"]
    assert names(single.select(group="dc-east")) == ["hub1", "hub2", "spoke1"]  # through parent
    assert names(single.select(platform="cisco_ios")) == ["spoke1", "spoke2"]
    assert names(single.select(hosts=["spoke2", "hub1"])) == ["hub1", "spoke2"]
    assert names(single.select(hosts=["spoke2", "hub1"], group="hubs")) == ["hub1"]
    assert names(single.select(group="spokes", platform="cisco_xe")) == []


def test_select_unknown_names(single):
    with pytest.raises(InventoryError, match=r"^unknown hosts: nope, gone$"):
        single.select(hosts=["hub1", "nope", "gone"])
    with pytest.raises(InventoryError, match=r"^unknown group: core$"):
        single.select(group="core")
    with pytest.raises(InventoryError, match=r"^unknown platform: junos"):
        single.select(platform="junos")


def test_owner_of(single):
    assert single.owner_of("198.51.100.2").name == "hub2"
    assert single.owner_of("10.255.0.1").name == "hub1"
    assert single.owner_of("2001:0db8:0000::0020").name == "spoke2"
    assert single.owner_of("192.0.2.1") is None  # a management address is not an owned address
    assert single.owner_of("garbage") is None


def test_password_is_a_secret(single):
    assert isinstance(single.hosts["hub1"].password, Secret)
    assert "env-password-1" not in f"{single.hosts['hub1'].password} {single.hosts['hub1'].password!r}"


def test_folder_with_hosts_yaml_only(tmp_path):
    write(tmp_path, "r1:\n  hostname: 10.0.0.1\n  platform: cisco_xe\n  username: u\n  password: ${PW}\n", "hosts.yml")
    inv = load(tmp_path, environ={"PW": "from-env"})
    assert inv.source == [tmp_path / "hosts.yml"]
    assert inv.hosts["r1"].password.reveal() == "from-env"
    assert inv.groups == {}


def test_nornir_hosts_file_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- r1\n- r2\n", "hosts.yaml")
    assert str(error_of(tmp_path)) == f"{path}:1: expected a mapping of host names to host settings"
