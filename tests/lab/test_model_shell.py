"""CLI behaviour of a simulated router: modes, enable, abbreviations, errors, filters."""

from __future__ import annotations

import pytest
from test_model_helpers import build, priv

from collector.lab.clitree import Grammar, ParseError, parse


@pytest.fixture(scope="module")
def fleet():
    return build()


def test_prompts_follow_the_modes(fleet) -> None:
    r = fleet.routers["hub1"]
    s = r.open_session()
    assert s.prompt == "hub1>"
    assert s.execute("enable") == ""
    assert s.prompt == "Password: " and s.echo is False
    assert s.execute(r.enable_secret) == ""
    assert s.prompt == "hub1#" and s.echo is True
    assert s.execute("configure terminal").startswith("Enter configuration commands, one per line.")
    assert s.prompt == "hub1(config)#"
    s.execute("event manager applet T1")
    assert s.prompt == "hub1(config-applet)#"
    s.execute("exit")
    assert s.prompt == "hub1(config)#"
    s.execute("interface GigabitEthernet0/0/1")
    assert s.prompt == "hub1(config-if)#"
    s.execute("end")
    assert s.prompt == "hub1#"
    s.execute("disable")
    assert s.prompt == "hub1>"
    s.execute("exit")
    assert s.closed


def test_netmiko_session_preparation_sequence(fleet) -> None:
    r = fleet.routers["spoke1"]
    s = r.open_session()
    for line in ("", "terminal width 511", "terminal length 0", ""):
        assert s.execute(line) == ""
        assert s.prompt == "spoke1>"
    s.execute("enable")
    s.execute(r.enable_secret)
    assert s.execute("configure terminal") and s.prompt == "spoke1(config)#"
    assert s.execute("end") == "" and s.prompt == "spoke1#"
    s.execute("exit")
    assert s.closed


def test_wrong_enable_secret_is_denied_then_bad_secrets(fleet) -> None:
    s = fleet.routers["hub2"].open_session()
    s.execute("enable")
    assert s.execute("nope") == "% Access denied\n\n"
    assert s.prompt == "Password: "
    assert s.execute("nope") == "% Access denied\n\n"
    assert s.execute("still-nope") == "% Bad secrets\n\n"
    assert s.prompt == "hub2>"


def test_privileged_commands_need_enable(fleet) -> None:
    s = fleet.routers["hub1"].open_session()
    out = s.execute("show running-config")
    assert "% Invalid input detected at '^' marker." in out
    caret = out.splitlines()[0]
    # caret under "running-config", counted from the start of the prompt
    assert caret.index("^") == len("hub1>show ")
    assert "Cisco IOS XE Software" in s.execute("show version")


@pytest.mark.parametrize(
    "line, expect",
    [
        ("sh ver", "Cisco IOS XE Software, Version"),
        ("sh run", "Building configuration..."),
        ("sh ip int br", "Interface              IP-Address      OK? Method Status                Protocol"),
        ("sh cry isa sa", "IPv4 Crypto ISAKMP SA"),
        ("sh cry ips sa", "interface: "),
        ("sh cry sess", "Crypto session current status"),
        ("sh clo", "UTC Fri Nov 27 2026"),
        ("sh log", "Syslog logging: enabled"),
        ("sh deb", "IOSXE Conditional Debug Configs:"),
        ("sh cry debug-condition", "Crypto conditional debug currently is turned OFF"),
        ("sh proc cpu", "CPU utilization for five seconds:"),
    ],
)
def test_every_keyword_abbreviates(fleet, line: str, expect: str) -> None:
    s = priv(fleet.routers["hub1"])
    assert expect in s.execute(line)


def test_invalid_input_caret_sits_under_the_bad_word(fleet) -> None:
    s = priv(fleet.routers["hub1"])
    out = s.execute("show crypto ipsec sx")
    lines = out.splitlines()
    assert lines[1] == "% Invalid input detected at '^' marker."
    # "s" still matches "sa", so the caret goes under the "x"
    assert lines[0] == " " * len("hub1#show crypto ipsec s") + "^"
    assert out.endswith("\n\n")


def test_incomplete_and_ambiguous(fleet) -> None:
    s = priv(fleet.routers["hub1"])
    assert s.execute("show crypto") == "% Incomplete command.\n\n"
    assert s.execute("sh c") == '% Ambiguous command:  "sh c"\n'
    assert s.execute("sh cry i sa").startswith('% Ambiguous command:  "sh cry i sa"')


def test_lone_unknown_word_is_taken_as_a_host_name(fleet) -> None:
    s = priv(fleet.routers["hub1"])
    assert "% Unknown command or computer name" in s.execute("frobnicate")


def test_qfp_commands_exist_only_on_ios_xe(fleet) -> None:
    xe = priv(fleet.routers["hub2"])
    assert "Global Drop Stats" in xe.execute("show platform hardware qfp active statistics drop")
    assert "Drop Type  Name" in xe.execute("sh plat hard qfp act feat ipsec data drop")
    classic = priv(fleet.routers["spoke1"])
    out = classic.execute("show platform hardware qfp active statistics drop")
    assert "% Invalid input detected at '^' marker." in out
    assert out.splitlines()[0].index("^") == len("spoke1#show platform ")


def test_output_filters(fleet) -> None:
    s = priv(fleet.routers["hub1"])
    inc = s.execute("show running-config | include ^interface")
    assert inc and all(line.startswith("interface") for line in inc.splitlines())
    assert s.execute("show running-config | i ^hostname") == "hostname hub1\n"
    exc = s.execute("show ip interface brief | ex up")
    assert "Interface" in exc and "Loopback0" not in exc
    begin = s.execute("show running-config | b ^interface Loopback0")
    assert begin.startswith("interface Loopback0")
    sec = s.execute("show running-config | sec crypto isakmp policy")
    assert sec.splitlines()[0] == "crypto isakmp policy 10" and " encr aes 256" in sec
    assert "interface" not in sec
    assert s.execute("show processes cpu | inc CPU").startswith("CPU utilization for five seconds:")
    assert s.execute("show run | count ^interface").startswith("Number of lines which match regexp = ")
    # alternation inside the regex is not taken for a second pipe
    both = s.execute("show running-config | include ^hostname|^version")
    assert both.splitlines() == ["version 17.3", "hostname hub1"]


def test_bad_filter_keyword_is_invalid_input(fleet) -> None:
    s = priv(fleet.routers["hub1"])
    out = s.execute("show clock | frob x")
    assert out.splitlines()[0].index("^") == len("hub1#show clock | ")


def test_config_fallback_from_submode_to_global(fleet) -> None:
    r = fleet.routers["spoke3"]
    s = priv(r)
    s.execute("conf t")
    s.execute("interface GigabitEthernet2")
    assert s.prompt == "spoke3(config-if)#"
    assert s.execute("logging buffered 32000 informational") == ""
    assert s.prompt == "spoke3(config)#"
    assert s.execute("frob the router").splitlines()[1] == "% Invalid input detected at '^' marker."
    s.execute("end")
    assert "logging buffered 32000 informational" in s.execute("show running-config")


def test_do_runs_exec_commands_from_config_mode(fleet) -> None:
    s = priv(fleet.routers["hub1"])
    s.execute("conf t")
    assert "UTC" in s.execute("do show clock")
    s.execute("end")


def test_config_mode_logs_config_i_on_end(fleet) -> None:
    r = fleet.routers["spoke2"]
    s = priv(r)
    s.execute("conf t")
    s.execute("end")
    assert any("%SYS-5-CONFIG_I: Configured from console by lab on vty" in line for line in r.log.lines())


def test_clear_logging_asks_to_confirm(fleet) -> None:
    r = fleet.routers["spoke2"]
    s = priv(r)
    assert r.log.lines()
    s.execute("clear logging")
    assert s.prompt == "Clear logging buffer [confirm]"
    s.execute("")
    assert r.log.lines() == []
    assert s.prompt == "spoke2#"


def test_grammar_prefix_matching_is_a_tree_not_string_checks() -> None:
    g = Grammar()
    g.add("show crypto ipsec sa [peer <ip>] [detail]", "sa")
    g.add("show crypto isakmp sa", "isakmp")
    m = parse(g, "sh cr ips sa pe 10.0.0.1 det")
    assert not isinstance(m, ParseError) and m.action == "sa" and m.args == ("10.0.0.1",)
    bad_ip = parse(g, "sh cr ips sa peer 10.0.0.300")
    assert isinstance(bad_ip, ParseError) and bad_ip.kind == "invalid" and bad_ip.column == len("sh cr ips sa peer ")
    amb = parse(g, "sh cr i sa")
    assert isinstance(amb, ParseError) and amb.kind == "ambiguous"


# -- hostnames and prompts (IOS: whole name in EXEC, first 20 characters in config modes) ----


def long_hostname(length: int) -> str:
    """A realistic name of exactly `length` characters (dots and dashes, alphanumeric at the end)."""
    base = "rtr-ams-dc1.asr1001x-wan01.core.example.net-"
    name = (base * 3)[:length]
    return name[:-1] + "7" if not name[-1].isalnum() else name


@pytest.mark.parametrize("length", [16, 17, 20, 21, 30, 63])
def test_hostname_sets_every_prompt_at_once(length: int) -> None:
    r = build(routers=2).routers["hub1"]
    name = long_hostname(length)
    s = priv(r)
    s.execute("configure terminal")
    assert s.execute(f"hostname {name}") == ""
    assert s.prompt == f"{name[:20]}(config)#"  # the very next prompt
    s.execute("event manager applet T1")
    assert s.prompt == f"{name[:20]}(config-applet)#"
    s.execute("interface GigabitEthernet0/0/1")
    assert s.prompt == f"{name[:20]}(config-if)#"
    s.execute("line vty 0 4")
    assert s.prompt == f"{name[:20]}(config-line)#"
    s.execute("end")
    assert s.prompt == f"{name}#"
    s.execute("disable")
    assert s.prompt == f"{name}>"
    s.execute("enable")
    s.execute(r.enable_secret)
    assert f"\nhostname {name}\n" in s.execute("show running-config")


def test_hostname_is_checked_like_ios() -> None:
    r = build(routers=2).routers["hub1"]
    s = priv(r)
    s.execute("configure terminal")
    too_long = long_hostname(63) + "x"
    out = s.execute(f"hostname {too_long}")
    assert "% Invalid input detected at '^' marker." in out
    assert s.prompt == "hub1(config)#"
    # IOS warns about a bad name and still takes it (real captures: `host 1`, `hostname IT@L3`)
    assert s.execute("hostname 1") == "% Hostname contains one or more illegal characters.\n\n"
    assert s.prompt == "1(config)#"
    assert s.execute("hostname rtr_lab") == "% Hostname contains one or more illegal characters.\n\n"
    assert s.execute("hostname rtr-ams.dc1-wan01") == ""
    assert s.prompt == "rtr-ams.dc1-wan01(config)#"


def test_hostname_survives_write_and_reload_only_when_saved() -> None:
    r = build(routers=2).routers["hub1"]
    s = priv(r)
    s.execute("configure terminal")
    s.execute("hostname rtr-ams-dc1-asr1001x-wan01")
    s.execute("end")
    r.reboot()
    assert r.open_session().prompt == "hub1>"
    s = priv(r)
    s.execute("configure terminal")
    s.execute("hostname rtr-ams-dc1-asr1001x-wan01")
    s.execute("end")
    s.execute("write memory")
    r.reboot()
    assert r.open_session().prompt == "rtr-ams-dc1-asr1001x-wan01>"


def test_show_privilege_follows_enable() -> None:
    r = build(routers=2).routers["hub1"]
    s = r.open_session()
    assert s.execute("show privilege") == "Current privilege level is 1\n"
    s.execute("enable")
    s.execute(r.enable_secret)
    assert s.execute("sh priv") == "Current privilege level is 15\n"
