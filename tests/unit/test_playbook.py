from __future__ import annotations

import textwrap
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from collector.playbook import (
    FieldValueError,
    Playbook,
    PlaybookError,
    format_duration,
    is_clear_command,
    load_playbook,
    parse_duration,
    validate_field,
)
from collector.resources import playbooks_dir

HEAD = """\
name: test
trigger:
  parser: invalid-spi
"""


def with_head(text: str) -> str:
    return HEAD + textwrap.dedent(text)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pb.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    return message[len(str(path)) + 1 :]


# ---------------------------------------------------------------- shipped playbooks


def test_shipped_invalid_spi_playbook():
    pb = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    assert pb.is_watch and pb.trigger.parser == "invalid-spi"
    assert (pb.occurs, pb.within, pb.arm_window) == (2, timedelta(minutes=10), timedelta(minutes=10))
    assert pb.arm[0].do == ("debug crypto condition peer {peer_family} {peer}",)
    assert not pb.remediate.enabled and pb.remediate.steps == ()
    assert pb.trigger.peer_field == "src"
    assert pb.trigger.key_fields == ("router", "src", "dst", "spi", "prot")


def test_shipped_tunnel_flap_playbook_matches_and_validates_fields():
    pb = load_playbook(playbooks_dir() / "tunnel-flap.yaml")
    line = "*Mar  1 00:01:02.123: %LINEPROTO-5-UPDOWN: Line protocol on Interface Tunnel10, changed state to down"
    values = pb.trigger.match(line)
    assert values == {"interface": "Tunnel10"}
    assert pb.trigger.key_of("edge1", values) == ("edge1", "Tunnel10")
    assert pb.trigger.match(line.replace("to down", "to up")) is None
    assert pb.arm == () and pb.trigger.peer_field is None


def test_shipped_collect_playbook_filters_by_platform():
    pb = load_playbook(playbooks_dir() / "collect-crypto.yaml")
    assert not pb.is_watch
    ios = pb.collect_commands("cisco_ios")
    xe = pb.collect_commands("cisco_xe")
    qfp = "show platform hardware qfp active statistics drop"
    assert qfp in xe and qfp not in ios
    assert set(ios) < set(xe)
    assert all(c.startswith("show ") for c in xe)


def test_collect_commands_refuses_a_watch_playbook():
    pb = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    with pytest.raises(PlaybookError, match="needs values from a trigger"):
        pb.collect_commands()


# ---------------------------------------------------------------- errors with file:line


def test_bad_duration(tmp_path):
    msg = error_of(tmp_path, HEAD + "occurs: 2\nwithin: 10 minutes\n")
    assert msg.startswith("5: within:")
    assert "not a duration" in msg


def test_bare_number_duration_is_refused(tmp_path):
    assert error_of(tmp_path, HEAD + "cooldown:\n  flow: 600\n").startswith("5: cooldown.flow:")


def test_unknown_key(tmp_path):
    msg = error_of(
        tmp_path,
        with_head("""\
        arm:
          - do: debug crypto ipsec
            undo: no debug crypto ipsec
            colour: red
        """),
    )
    assert msg == "7: arm.0.colour: unknown key"


def test_unknown_top_level_key(tmp_path):
    assert error_of(tmp_path, HEAD + "ocurs: 2\n") == "4: ocurs: unknown key"


def test_clear_command_in_capture(tmp_path):
    msg = error_of(
        tmp_path,
        with_head("""\
        capture:
          - show clock
          - show platform hardware qfp active statistics drop clear
        """),
    )
    assert msg.startswith("6: capture.1.command:")
    assert "only allowed under remediate" in msg


@pytest.mark.parametrize("command", ["clear crypto sa", "cle crypto session", "do clear crypto isakmp"])
def test_clear_command_in_arm_step(tmp_path, command):
    msg = error_of(
        tmp_path,
        with_head(f"""\
        arm:
          - do: debug crypto ipsec
            undo: [no debug crypto ipsec, {command}]
        """),
    )
    assert msg.startswith("6: arm.0.undo:")


def test_clear_command_in_disabled_remediate(tmp_path):
    msg = error_of(
        tmp_path,
        with_head("""\
        remediate:
          steps:
            - command: clear crypto sa peer {peer}
        """),
    )
    assert msg.startswith("6: remediate.steps.0.command:")
    assert "enabled: true" in msg


def test_clear_command_in_enabled_remediate_is_accepted(tmp_path):
    pb = load_playbook(
        write(
            tmp_path,
            with_head("""\
            remediate:
              enabled: true
              steps:
                - command: clear crypto sa peer {peer}
            """),
        )
    )
    assert pb.remediate.enabled


def test_bad_field_type(tmp_path):
    msg = error_of(
        tmp_path,
        """\
        name: t
        trigger:
          regex: 'down on (?P<ifc>\\S+)'
          fields:
            ifc: float
          key: [router, ifc]
        """,
    )
    assert msg.startswith("5: trigger.fields.ifc:")


def test_regex_group_without_field(tmp_path):
    msg = error_of(
        tmp_path,
        """\
        name: t
        trigger:
          regex: 'x (?P<a>\\S+) (?P<b>\\d+)'
          fields:
            a: ipv4
          key: [router, a]
        """,
    )
    assert msg == "4: trigger.fields: group 'b' needs a type under fields"


def test_key_must_contain_router_and_known_fields(tmp_path):
    body = """\
        name: t
        trigger:
          regex: 'x (?P<a>\\S+)'
          fields: {a: ipv4}
          key: KEY
        """
    assert "must contain 'router'" in error_of(tmp_path, body.replace("KEY", "[a]"))
    assert error_of(tmp_path, body.replace("KEY", "[router, b]")).startswith("5: trigger.key.1:")


def test_regex_that_does_not_compile(tmp_path):
    msg = error_of(tmp_path, "name: t\ntrigger:\n  regex: '(?P<a>'\n  key: [router]\n")
    assert msg.startswith("3: trigger.regex: regex does not compile")


def test_parser_and_regex_are_exclusive(tmp_path):
    msg = error_of(tmp_path, HEAD + "  regex: 'x'\n")
    assert msg.startswith("2: trigger:")


def test_unknown_placeholder(tmp_path):
    msg = error_of(
        tmp_path,
        with_head("""\
        capture:
          - show clock
          - show crypto ipsec sa peer {peeer} detail
        """),
    )
    assert msg.startswith("6: capture.1:")
    assert "{peeer}" in msg


def test_attribute_placeholders_are_refused(tmp_path):
    msg = error_of(tmp_path, HEAD + "capture:\n  - show crypto ipsec sa peer {peer.__class__}\n")
    assert msg.startswith("5: capture.0:")


def test_capture_must_be_read_only(tmp_path):
    assert "only 'show ...'" in error_of(tmp_path, HEAD + "capture:\n  - reload in 5\n")
    assert "not allowed" in error_of(tmp_path, HEAD + "capture:\n  - show logging | append flash:x\n")
    assert "line break" in error_of(tmp_path, HEAD + 'capture:\n  - "show clock\\nreload"\n')


def test_undo_with_quote_is_refused(tmp_path):
    msg = error_of(
        tmp_path, HEAD + "arm:\n  - do: debug crypto ipsec\n    undo: 'no debug \"x\"'\n"
    )
    assert msg.startswith("6: arm.0.undo:")


def test_window_shorter_than_within(tmp_path):
    msg = error_of(tmp_path, HEAD + "within: 10m\nwindow: 5m\n")
    assert msg.startswith("5: window:")
    assert "already off" in msg


def test_window_longer_than_max_window(tmp_path):
    assert error_of(tmp_path, HEAD + "within: 40m\n").startswith("4: within: arm window 40m exceeds")


def test_arm_without_trigger(tmp_path):
    msg = error_of(
        tmp_path, "name: t\ncapture: [show clock]\narm:\n  - do: debug crypto ipsec\n    undo: no debug crypto ipsec\n"
    )
    assert msg.startswith("3: arm:")


def test_peer_placeholder_needs_a_peer_field(tmp_path):
    msg = error_of(
        tmp_path,
        """\
        name: t
        trigger:
          regex: 'down on (?P<ifc>Tunnel\\d+)'
          fields: {ifc: interface}
          key: [router, ifc]
        capture:
          - show crypto session remote {peer} detail
        """,
    )
    assert msg.startswith("7: capture.0:")


def test_yaml_syntax_and_missing_file_are_one_line_errors(tmp_path):
    assert error_of(tmp_path, "name: t\ncapture: [show clock\n").split(":")[0].isdigit()
    with pytest.raises(PlaybookError, match="file not found"):
        load_playbook(tmp_path / "nope.yaml")
    path = write(tmp_path, "- just\n- a list\n")
    with pytest.raises(PlaybookError, match=r"pb.yaml:1: a playbook is a mapping"):
        load_playbook(path)


# ---------------------------------------------------------------- values


def test_duration_round_trip():
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("90s") == timedelta(seconds=90)
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    for bad in ("", "10", "m", "10 m", "1d", 10, True, None):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("ipv4", "10.1.1.1", IPv4Address("10.1.1.1")),
        ("ip", "2001:db8::1", IPv6Address("2001:db8::1")),
        ("int", "50", 50),
        ("hex32", "0x68842105", 0x68842105),
        ("interface", "GigabitEthernet0/0/1.100", "GigabitEthernet0/0/1.100"),
        ("interface", "Virtual-Access2", "Virtual-Access2"),
    ],
)
def test_validate_field_accepts(kind, text, value):
    assert validate_field(kind, text) == value


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("ipv4", "10.1.1.1; reload"),
        ("ipv4", "2001:db8::1"),
        ("ipv6", "10.1.1.1"),
        ("ip", "fe80::1%eth0 x"),
        ("ip", "010.001.001.001"),
        ("int", "-1"),
        ("hex32", "0x123456789"),
        ("interface", "Tunnel0 ; reload"),
        ("interface", "Tunnel0\nreload"),
        ("interface", "Tunnel"),
    ],
)
def test_validate_field_rejects(kind, text):
    with pytest.raises(FieldValueError):
        validate_field(kind, text)


def test_regex_trigger_with_hostile_value_raises():
    pb = Playbook.model_validate(
        {
            "name": "t",
            "trigger": {
                "regex": r"peer=(?P<peer>\S+)",
                "fields": {"peer": "ipv4"},
                "key": ["router", "peer"],
                "peer": "peer",
            },
        }
    )
    assert pb.trigger.match("peer=10.0.0.1") == {"peer": IPv4Address("10.0.0.1")}
    with pytest.raises(FieldValueError):
        pb.trigger.match("peer=10.0.0.1;reload")


def test_is_clear_command():
    assert is_clear_command("clear crypto sa")
    assert is_clear_command("CLE crypto session")
    assert is_clear_command("show platform hardware qfp active statistics drop clear")
    assert not is_clear_command("show clock")
    assert not is_clear_command("show crypto isakmp sa detail | include clearance")


def test_ikev1_is_an_alias_of_isakmp(tmp_path):
    pb = load_playbook(write(tmp_path, HEAD + "capture:\n  - command: show crypto isakmp sa\n    ike: ikev1\n"))
    assert pb.capture[0].ike == "isakmp"


def test_capture_item_of_the_wrong_type(tmp_path):
    assert error_of(tmp_path, HEAD + "capture:\n  - show clock\n  - 42\n") == (
        "6: capture.1: expected a command (text) or a mapping {command, platforms, ike}"
    )


def test_bad_playbook_name(tmp_path):
    assert error_of(tmp_path, "name: Bad Name\ncapture: [show clock]\n").startswith("1: name: 'Bad Name'")
