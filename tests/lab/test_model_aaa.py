"""AAA command authorization: what a TACACS+ policy lets a user run, and what a refusal looks like."""

from __future__ import annotations

import pytest
from test_model_helpers import build, configure, priv

from collector.lab.aaa import BadPolicy, parse_policy
from collector.lab.control import BadFault, checked_faults

DENIED = "Command authorization failed.\n\n"
AAA_LINES = ["aaa new-model", "aaa authorization commands 15 default group tacacs+"]


@pytest.fixture
def hub():
    r = build(routers=2).routers["hub1"]
    configure(r, *AAA_LINES)
    r.faults.tacacs = {
        r.username: {"deny": ["debug crypto condition", "configure terminal"]},
        "admin": {"permit": ["show"]},
    }
    return r


def test_a_denied_command_prints_the_ios_refusal_and_does_nothing(hub) -> None:
    s = priv(hub)
    assert s.execute("debug crypto isakmp") == "Crypto ISAKMP debugging is on\n"
    assert s.execute("debug crypto condition peer ipv4 10.0.0.9") == DENIED
    # abbreviations are spelled out before the server sees them, as IOS does
    assert s.execute("deb cry cond peer ipv4 10.0.0.9") == DENIED
    assert "10.0.0.9" not in s.execute("show crypto debug-condition")
    assert "10.0.0.9" not in str(hub.debug.snapshot())
    assert "Crypto ISAKMP debugging is on" in s.execute("show debugging")
    assert s.execute("configure terminal") == DENIED
    assert s.prompt == "hub1#"


def test_the_running_config_shows_the_aaa_lines(hub) -> None:
    s = priv(hub)
    text = s.execute("show running-config")
    assert "\naaa new-model\n" in text
    assert "\naaa authorization commands 15 default group tacacs+\n" in text


def test_policies_differ_per_user_and_unknown_users_are_refused(hub) -> None:
    admin = hub.open_session(user="admin")
    admin.execute("enable")
    admin.execute(hub.enable_secret)
    assert admin.execute("show running-config").startswith("Building configuration")
    assert admin.execute("debug crypto isakmp") == DENIED  # admin may only run show commands
    stranger = hub.open_session(user="contractor")
    stranger.execute("enable")
    stranger.execute(hub.enable_secret)
    assert stranger.execute("show running-config") == DENIED


def test_level_1_commands_are_not_asked_without_commands_1(hub) -> None:
    hub.faults.tacacs = {hub.username: {"permit": ["debug crypto isakmp"]}}
    s = priv(hub)
    assert s.execute("show version").startswith("Cisco IOS")  # level 1: not authorized under `commands 15`
    assert s.execute("show logging") == DENIED  # level 15
    hub.faults.tacacs = None
    configure(hub, "aaa authorization commands 1 default group tacacs+")
    hub.faults.tacacs = {hub.username: {"deny": ["show version"]}}
    assert s.execute("show version") == DENIED


def test_config_commands_are_authorized_only_with_config_commands(hub) -> None:
    hub.faults.tacacs = {hub.username: {"deny": ["logging buffered"]}}
    s = priv(hub)
    s.execute("configure terminal")
    size = hub.log.buffer_size
    assert s.execute("logging buffered 64000") == ""  # without `aaa authorization config-commands`
    assert hub.log.buffer_size == 64000
    s.execute("aaa authorization config-commands")
    assert s.execute("logging buffered 128000") == DENIED
    assert hub.log.buffer_size == 64000
    assert s.execute("do debug crypto ipsec") == "Crypto IPSEC debugging is on\n"
    hub.faults.tacacs = {hub.username: {"deny": ["debug"]}}
    assert s.execute("do debug crypto ikev2") == DENIED  # a `do` line is authorized as EXEC
    s.execute("end")
    assert "\naaa authorization config-commands\n" in s.execute("show running-config")
    assert size != 64000  # the first change did happen


def test_no_policy_permits_everything_and_no_aaa_asks_nobody() -> None:
    r = build(routers=2).routers["hub1"]
    r.faults.tacacs = {"somebody-else": {"permit": []}}
    s = priv(r)
    assert s.execute("debug crypto condition peer ipv4 10.0.0.9") != DENIED  # no `aaa authorization commands`
    configure(r, *AAA_LINES)
    r.faults.tacacs = None
    assert s.execute("undebug all") != DENIED


def test_policy_format_is_checked() -> None:
    assert parse_policy(None) is None
    policy = parse_policy({"lab": {"permit": ["show", "debug crypto *"], "deny": ["debug crypto condition"]}})
    assert policy is not None
    assert policy.permits("lab", "debug crypto isakmp")
    assert not policy.permits("lab", "debug crypto condition peer ipv4 10.0.0.1")
    assert not policy.permits("lab", "clear logging")
    assert not policy.permits(None, "show clock")
    for bad in ("lab", {"lab": ["show"]}, {"lab": {"allow": ["show"]}}, {"lab": {"permit": "show"}}):
        with pytest.raises(BadPolicy):
            parse_policy(bad)
    r = build(routers=2).routers["hub1"]
    with pytest.raises(BadFault, match="tacacs"):
        checked_faults(r.faults, {"tacacs": {"lab": {"permit": "show"}}})


def test_no_aaa_authorization_commands_stops_asking(hub) -> None:
    s = priv(hub)
    assert s.execute("configure terminal") == DENIED
    hub.faults.tacacs = {**hub.faults.tacacs, "netops": {}}  # a user who may run anything
    ops = hub.open_session(user="netops")
    ops.execute("enable")
    ops.execute(hub.enable_secret)
    assert ops.execute("configure terminal").startswith("Enter configuration commands")
    ops.execute("no aaa authorization commands 15 default")
    ops.execute("end")
    assert "aaa authorization commands" not in s.execute("show running-config")
    assert s.execute("debug crypto condition peer ipv4 10.0.0.9") != DENIED


def test_a_plan_can_start_a_router_under_aaa() -> None:
    import dataclasses

    from collector.lab.config import ConfigState

    spec = build(routers=2).routers["hub1"].spec
    assert ConfigState.initial(spec).aaa.config_lines() == []
    fields = {"aaa_commands": {15: "group tacacs+"}, "aaa_config_commands": True, "vty_lines": 16,
              "hostname": "rtr-ams-dc1-asr1001x-wan01"}
    planned = type("PlannedSpec", (), {**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}, **fields})
    state = ConfigState.initial(planned())
    assert state.aaa.config_lines() == [
        "aaa authorization commands 15 default group tacacs+",
        "aaa authorization config-commands",
    ]
    assert state.vty_lines == 16 and state.hostname == "rtr-ams-dc1-asr1001x-wan01"
