from __future__ import annotations

from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from collector.playbook import Playbook, load_playbook
from collector.respond.debugstate import parse_debug_state
from collector.resources import playbooks_dir
from collector.respond.deadman import applet_name
from collector.core.steps import Step
from collector.respond.plan import (
    LoggingSettings,
    check_buffered_config,
    PlanError,
    RemediationRefused,
    RouterFacts,
    build_arm_plan,
    capture_commands,
    disarm_commands,
    logging_steps,
    remediation_commands,
    render_dry_run,
    resizes_log_buffer,
    verify_commands,
)

PEER = ip_address("11.1.1.3")
INCIDENT = "1a2b3c4d-5e6f-7788-99aa-bbccddeeff00"
APPLET = applet_name(INCIDENT)


@pytest.fixture(scope="module")
def spi() -> Playbook:
    return load_playbook(playbooks_dir() / "invalid-spi.yaml")


def facts(
    os_family="iosxe",
    ike="ikev2",
    console="debugging",
    monitor=None,
    buffered="informational",
    size=16384,
) -> RouterFacts:
    return RouterFacts(
        name="hub1",
        platform="cisco_xe" if os_family == "iosxe" else "cisco_ios",
        os_family=os_family,
        ike=ike,
        logging=LoggingSettings(console, monitor, buffered, size),
    )


def all_do(plan) -> list[str]:
    return [c for step in plan.steps for c in step.do]


# ---------------------------------------------------------------- ordering


def test_order_logging_then_deadman_then_condition_then_debugs(spi):
    plan = build_arm_plan(spi, facts(), PEER, INCIDENT)
    whats = [step.do[0] for step in plan.steps]
    assert whats == [
        "logging buffered 1000000 debugging",
        "no logging console",
        f"event manager applet {APPLET}",
        "debug crypto condition peer ipv4 11.1.1.3",
        "debug crypto ikev2",
        "debug crypto ipsec",
    ]
    # the condition is set before any crypto debug
    debugs = [i for i, c in enumerate(all_do(plan)) if c.startswith("debug crypto ")]
    assert all_do(plan)[debugs[0]].startswith("debug crypto condition")


def test_disarm_is_the_undo_list_in_reverse(spi):
    plan = build_arm_plan(spi, facts(), PEER, INCIDENT)
    batches = disarm_commands(plan)
    assert [b.step_index for b in batches] == [5, 4, 3, 2, 1, 0]
    assert [b.commands for b in batches] == [s.undo for s in reversed(plan.steps)]
    assert batches[0].commands == ("no debug crypto ipsec",)
    assert batches[2].commands == ("no debug crypto condition peer ipv4 11.1.1.3",)
    assert batches[3].commands == (f"no event manager applet {APPLET}",)
    # after a crash, only the steps the state store says were started
    assert [b.step_index for b in disarm_commands(plan, applied=[0, 1, 2])] == [2, 1, 0]


def test_deadman_replays_every_other_undo_in_disarm_order(spi):
    plan = build_arm_plan(spi, facts(), PEER, INCIDENT)
    commands = [line.split('"')[1] for line in plan.deadman.config_lines if " action " in line]
    expected_undo = [c for b in disarm_commands(plan) if b.step_index != 2 for c in b.commands]
    replayed = [c for c in commands if c not in ("enable", "configure terminal", "end")]
    assert replayed[:-1] == expected_undo
    # never a condition reset: someone else's conditions may be set (flows joining later
    # re-enter the applet with their own condition's undo)
    assert not any("condition reset" in c for c in commands)
    assert replayed[-1] == f"no event manager applet {APPLET}"
    assert plan.deadman.countdown_seconds == (10 + 2) * 60


def test_ikev1_router_gets_isakmp_debugs_and_commands(spi):
    plan = build_arm_plan(spi, facts(os_family="ios", ike="isakmp"), PEER, INCIDENT)
    assert "debug crypto isakmp" in all_do(plan)
    assert "debug crypto ikev2" not in all_do(plan)
    assert "show crypto isakmp sa detail" in plan.capture
    assert "show crypto ikev2 sa detailed" not in plan.capture


def test_ikev2_router_gets_ikev2_commands(spi):
    plan = build_arm_plan(spi, facts(ike="ikev2"), PEER, INCIDENT)
    assert "show crypto ikev2 sa detailed" in plan.capture
    assert "show crypto isakmp sa detail" not in plan.capture


def test_qfp_capture_only_on_ios_xe(spi):
    xe = capture_commands(spi, facts(os_family="iosxe"), PEER)
    ios = capture_commands(spi, facts(os_family="ios"), PEER)
    qfp = [c for c in xe if "qfp" in c]
    assert len(qfp) == 2
    assert not [c for c in ios if "qfp" in c]
    assert "show crypto ipsec sa peer 11.1.1.3 detail" in ios
    assert "show crypto session remote 11.1.1.3 detail" in ios


def test_ipv6_peer_uses_the_ipv6_condition(spi):
    plan = build_arm_plan(spi, facts(), ip_address("2001:db8::7"), INCIDENT)
    assert "debug crypto condition peer ipv6 2001:db8::7" in all_do(plan)


def test_verify_commands(spi):
    assert verify_commands(spi) == ("show debugging", "show crypto debug-condition")


# ---------------------------------------------------------------- logging


@pytest.mark.parametrize(
    ("recorded", "do", "undo"),
    [
        # buffer on, small: enlarged and restored to exactly the recorded size and level
        (LoggingSettings(None, None, "informational", 16384),
         ["logging buffered 1000000 debugging"], ["logging buffered 16384 informational"]),
        # buffer off: switched on, then off again
        (LoggingSettings(None, None, None, None),
         ["logging buffered 1000000 debugging"], ["no logging buffered"]),
        # buffer already larger and as verbose: untouched (never shrink it)
        (LoggingSettings(None, None, "debugging", 10_000_000), [], []),
        # larger buffer, less verbose: keep the size, raise the level
        (LoggingSettings(None, None, "warnings", 10_000_000),
         ["logging buffered 10000000 debugging"], ["logging buffered 10000000 warnings"]),
    ],
)
def test_buffer_change_and_exact_restore(spi, recorded, do, undo):
    steps = logging_steps(spi, recorded)
    assert [c for s in steps for c in s.do] == do
    assert [c for s in steps for c in s.undo] == undo
    assert all(s.mode == "config" for s in steps)


@pytest.mark.parametrize(("recorded", "resizes"), [
    (LoggingSettings(None, None, "informational", 16384), True),  # raised to the policy's size
    (LoggingSettings(None, None, "informational", 10_000_000), False),  # only more verbose: same size
    (LoggingSettings(None, None, "debugging", 10_000_000), False),  # nothing to change
    (LoggingSettings(None, None, None, None), True),  # `logging buffered` off: a new buffer
])
def test_what_the_logging_steps_do_to_the_buffers_size_is_told_from_the_steps(spi, recorded, resizes):
    steps = logging_steps(spi, recorded)
    assert resizes_log_buffer(steps, recorded.buffered_size) is resizes
    # a `logging buffered` line of any other form (a playbook's own step) counts as a resize
    other = Step(do=("logging buffered 16384",), undo=(), mode="config", why="test")
    assert resizes_log_buffer([*steps, other], recorded.buffered_size) is True


@pytest.mark.parametrize(
    ("console", "monitor"), [(None, None), ("debugging", None), (None, "informational"), ("warnings", "debugging")]
)
def test_console_and_monitor_only_where_they_were_on(spi, console, monitor):
    steps = logging_steps(spi, LoggingSettings(console, monitor, "debugging", 1_000_000))
    do = [c for s in steps for c in s.do]
    undo = [c for s in steps for c in s.undo]
    assert ("no logging console" in do) == (console is not None)
    assert ("no logging monitor" in do) == (monitor is not None)
    expected_undo = ([f"logging console {console}"] if console else []) + (
        [f"logging monitor {monitor}"] if monitor else []
    )
    assert undo == expected_undo


@pytest.mark.parametrize(
    "line",
    [
        "logging buffered 100000 informational",
        "logging buffered discriminator KEEPCRYPTO 100000 debugging",
        "logging buffered xml 16384",
        "logging buffered 4096",
        "logging buffered warnings",
        "logging buffered 10000000 7",
    ],
)
def test_restore_is_the_exact_running_config_line(spi, line):
    recorded = LoggingSettings(None, None, "informational", 16384, (line,))
    steps = logging_steps(spi, recorded)
    if " xml" in line:  # the xml buffer is separate: the plain one is restored from the header, then it
        assert [c for s in steps for c in s.undo] == ["logging buffered 16384 informational", line]
    else:
        assert [c for s in steps for c in s.undo] == [line]


@pytest.mark.parametrize(
    "line",
    [
        "logging buffered 100000 debugging\nreload",
        "logging buffered discriminator A;B 100000",
        "logging buffered 100000 loud",
        "logging buffered 100 debugging",  # below the IOS minimum of 4096
        "logging buffered 100000 debugging extra",
        "logging host 10.0.0.1",
    ],
)
def test_running_config_logging_lines_are_validated_before_reuse(line):
    with pytest.raises(PlanError):
        check_buffered_config(line)
    with pytest.raises(PlanError):
        LoggingSettings(None, None, "debugging", 16384, (line,))


def test_large_enough_buffer_at_debugging_is_not_resized(spi):
    recorded = LoggingSettings(None, None, "debugging", 10_000_000, ("logging buffered 10000000 debugging",))
    assert logging_steps(spi, recorded) == ()


def test_debugs_and_conditions_already_on_are_not_armed_nor_undone(spi):
    state = parse_debug_state("Cryptographic Subsystem:\n  Crypto IPSEC debugging is on\n",
                              "IKE peer IP address filters:\n11.1.1.3\n")
    plan = build_arm_plan(spi, facts(), PEER, INCIDENT, already_on=state)
    do = all_do(plan)
    undo = [c for s in plan.steps for c in s.undo]
    assert "debug crypto ipsec" not in do and "no debug crypto ipsec" not in undo
    assert not any("condition peer" in c for c in do + undo)
    assert "debug crypto ikev2" in do
    applet = " ".join(plan.deadman.config_lines)
    assert "no debug crypto ipsec" not in applet and "condition" not in applet
    assert len(plan.skipped) == 2


def test_ikev2_default_debug_on_is_seen_as_ikev2(spi):
    state = parse_debug_state("IKEv2 default debugging is on\n")
    plan = build_arm_plan(spi, facts(ike="ikev2"), PEER, INCIDENT, already_on=state)
    assert "debug crypto ikev2" not in all_do(plan)


def test_without_deadman_no_applet_and_bypass_on_header(spi):
    plan = build_arm_plan(spi, facts(), PEER, INCIDENT, with_deadman=False)
    assert plan.deadman is None and not any(c.startswith("event manager") for c in all_do(plan))
    plan = build_arm_plan(spi, facts(), PEER, INCIDENT, authorization_bypass=True)
    assert plan.deadman.config_lines[0].endswith(" authorization bypass")


def test_unknown_buffer_size_is_refused(spi):
    with pytest.raises(PlanError, match="size unknown"):
        logging_steps(spi, LoggingSettings(None, None, "debugging", None))


@pytest.mark.parametrize(
    "bad",
    [
        dict(console_level="debugging; reload"),
        dict(monitor_level="7\nreload"),
        dict(buffered_level="loud"),
        dict(buffered_size=10),
        dict(buffered_size="4096"),
    ],
)
def test_logging_values_from_the_device_are_validated(bad):
    with pytest.raises(PlanError):
        LoggingSettings(**bad)


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "peer",
    [
        "11.1.1.3",  # raw text is never accepted
        "11.1.1.3\nreload",
        11,
        None,
        IPv4Address("0.0.0.0"),
        IPv4Address("224.0.0.5"),
        IPv6Address("fe80::1%eth0 ; reload"),
    ],
)
def test_hostile_or_raw_peers_are_rejected(spi, peer):
    with pytest.raises(PlanError):
        build_arm_plan(spi, facts(), peer, INCIDENT)


def test_fields_must_be_typed_values():
    pb = Playbook.model_validate(
        {
            "name": "flap",
            "trigger": {
                "regex": r"Interface (?P<ifc>Tunnel\d+) down spi (?P<spi>\S+)",
                "fields": {"ifc": "interface", "spi": "hex32"},
                "key": ["router", "ifc"],
            },
            "capture": ["show interfaces {ifc}", "show crypto ipsec sa | include {spi}"],
        }
    )
    ok = capture_commands(pb, facts(), None, {"ifc": "Tunnel10", "spi": 0x1234})
    assert ok == ("show interfaces Tunnel10", "show crypto ipsec sa | include 0x00001234")
    for bad in ({"ifc": "Tunnel10 ; reload", "spi": 1}, {"ifc": "Tunnel10", "spi": "0x1234"},
                {"ifc": "Tunnel10", "spi": 2**40}, {"ifc": "Tunnel10", "spi": 1, "other": "x"}):
        with pytest.raises(PlanError):
            capture_commands(pb, facts(), None, bad)
    with pytest.raises(PlanError, match="needs"):
        capture_commands(pb, facts(), None, {"ifc": "Tunnel10"})


def test_missing_peer_is_an_error_not_a_blank(spi):
    with pytest.raises(PlanError, match=r"needs \{peer"):
        capture_commands(spi, facts(), None)


def test_window_is_bounded_by_max_window(spi):
    assert build_arm_plan(spi, facts(), PEER, INCIDENT, window=timedelta(minutes=30)).window == timedelta(minutes=30)
    with pytest.raises(PlanError, match="max_window"):
        build_arm_plan(spi, facts(), PEER, INCIDENT, window=timedelta(minutes=31))
    with pytest.raises(PlanError):
        build_arm_plan(spi, facts(), PEER, INCIDENT, window=timedelta(0))


def test_bad_incident_id_and_facts(spi):
    with pytest.raises(PlanError):
        build_arm_plan(spi, facts(), PEER, "---")
    with pytest.raises(PlanError):
        facts(os_family="nxos")
    with pytest.raises(PlanError):
        facts(ike="ikev3")


# ---------------------------------------------------------------- remediation


def test_remediation_refused_unless_enabled(spi):
    with pytest.raises(RemediationRefused):
        remediation_commands(spi, facts(), PEER)


def test_enabled_remediation_renders_and_never_enters_the_arm_plan():
    data = {
        "name": "fix",
        "trigger": {"parser": "invalid-spi"},
        "arm": [{"do": "debug crypto ipsec", "undo": "no debug crypto ipsec"}],
        "remediate": {"enabled": True, "steps": [{"command": "clear crypto sa peer {peer}"}]},
    }
    pb = Playbook.model_validate(data)
    assert remediation_commands(pb, facts(), PEER) == ("clear crypto sa peer 11.1.1.3",)
    plan = build_arm_plan(pb, facts(), PEER, INCIDENT)
    assert not [c for s in plan.steps for c in s.do + s.undo if "clear" in c]


def test_clear_smuggled_past_validation_is_refused():
    # model_construct skips validation: the planner still refuses the command
    pb = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    step = pb.arm[0].model_construct(do=("clear crypto sa",), undo=("no debug all",), mode="exec",
                                     why="", platforms=(), ike=None)
    sneaky = pb.model_copy(update={"arm": (step,)})
    with pytest.raises(RemediationRefused):
        build_arm_plan(sneaky, facts(), PEER, INCIDENT)


# ---------------------------------------------------------------- other playbooks


def test_playbook_without_arm_steps_changes_nothing():
    pb = load_playbook(playbooks_dir() / "tunnel-flap.yaml")
    plan = build_arm_plan(pb, facts(), None, INCIDENT, fields={"interface": "Tunnel10"})
    assert plan.is_empty and plan.deadman is None and disarm_commands(plan) == ()
    assert "show interfaces Tunnel10" in plan.capture


def test_collect_only_playbook_cannot_be_armed():
    pb = load_playbook(playbooks_dir() / "collect-crypto.yaml")
    with pytest.raises(PlanError, match="no trigger"):
        build_arm_plan(pb, facts(), PEER, INCIDENT)


# ---------------------------------------------------------------- dry run


def test_dry_run_lists_every_command_in_order(spi):
    hub = build_arm_plan(spi, facts(), PEER, INCIDENT)
    spoke_facts = RouterFacts("spoke3", "cisco_ios", "ios", "isakmp", LoggingSettings(None, "debugging", None, None))
    spoke = build_arm_plan(spi, spoke_facts, ip_address("213.163.222.7"), INCIDENT)
    text = render_dry_run([hub, spoke])

    hub_part, spoke_part = text.split("== spoke3")
    assert hub_part.startswith("== hub1 (iosxe, ikev2) peer 11.1.1.3 incident " + INCIDENT + " window 10m")
    # every do and undo appears, in plan order
    position = 0
    for step in hub.steps:
        for command in step.do + step.undo:
            found = hub_part.find(command, position)
            assert found >= 0, command
            position = found + len(command)
    for command in (
        "    do:   debug crypto condition peer ipv4 11.1.1.3",
        "    undo: no debug crypto condition peer ipv4 11.1.1.3",
        "  step 1 [config]",
        "  [exec] no debug crypto ipsec  (undo of step 6)",
        "  show platform hardware qfp active statistics drop",
        "  show crypto debug-condition",
    ):
        assert command in hub_part
    assert hub_part.index("debug crypto condition peer") < hub_part.index("do:   debug crypto ikev2")
    assert "    undo: no logging buffered" in spoke_part
    assert "no logging monitor" in spoke_part and "no logging console" not in spoke_part
    assert "qfp" not in spoke_part


def test_nhrp_table_is_captured_on_dmvpn_routers_only_when_known(spi):
    from dataclasses import replace

    base = facts(os_family="ios", ike="isakmp")
    assert "show ip nhrp" in capture_commands(spi, replace(base, dmvpn=True), PEER)
    assert "show ip nhrp" not in capture_commands(spi, replace(base, dmvpn=False), PEER)
    # not known (a caller that does not say): captured, the router answers with an empty table
    assert "show ip nhrp" in capture_commands(spi, base, PEER)
