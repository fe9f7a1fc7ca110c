from __future__ import annotations

import re

import pytest

from collector.respond.deadman import (
    DeadmanError,
    applet_name,
    build_applet,
    removal_commands,
)

UNDO = [
    ("exec", ["no debug crypto ipsec", "no debug crypto isakmp"]),
    ("exec", ["no debug crypto condition peer ipv4 10.1.1.1"]),
    ("config", ["logging monitor debugging"]),
    ("config", ["logging console informational", "logging buffered 4096 informational"]),
]


def test_applet_text_exact():
    applet = build_applet("COLLECTOR_DEADMAN_1A2B3C4D", 900, UNDO)
    assert applet.config_lines == (
        "event manager applet COLLECTOR_DEADMAN_1A2B3C4D",
        " event timer countdown time 900 maxrun 120",
        ' action 001 cli command "enable"',
        ' action 002 cli command "no debug crypto ipsec"',
        ' action 003 cli command "no debug crypto isakmp"',
        ' action 004 cli command "no debug crypto condition peer ipv4 10.1.1.1"',
        ' action 005 cli command "configure terminal"',
        ' action 006 cli command "logging monitor debugging"',
        ' action 007 cli command "logging console informational"',
        ' action 008 cli command "logging buffered 4096 informational"',
        ' action 009 cli command "end"',
        ' action 010 cli command "configure terminal"',
        ' action 011 cli command "no event manager applet COLLECTOR_DEADMAN_1A2B3C4D"',
        ' action 012 cli command "end"',
    )
    assert applet.removal_commands == ("no event manager applet COLLECTOR_DEADMAN_1A2B3C4D",)


def test_config_then_exec_closes_the_config_block():
    applet = build_applet("X1", 60, [("config", ["logging console"]), ("exec", ["undebug all"])])
    commands = [re.search(r'"(.*)"', line).group(1) for line in applet.config_lines[2:]]
    assert commands[:5] == ["enable", "configure terminal", "logging console", "end", "undebug all"]


def test_labels_are_zero_padded_and_sort_as_strings():
    undo = [("exec", [f"no debug thing {i}" for i in range(150)])]
    applet = build_applet("COLLECTOR_DEADMAN_AB", 60, undo)
    labels = [line.split()[1] for line in applet.config_lines if line.startswith(" action ")]
    assert all(len(label) == 3 for label in labels)
    assert labels == sorted(labels)  # string order is execution order
    assert [int(label) for label in labels] == list(range(1, len(labels) + 1))


@pytest.mark.parametrize(
    "bad",
    ['show "x"', "no debug $_syslog_msg", "no debug crypto ipsec\nreload", ""],
)
def test_commands_that_break_the_eem_string_are_rejected(bad):
    with pytest.raises(DeadmanError):
        build_applet("COLLECTOR_DEADMAN_AB", 60, [("exec", [bad])])


@pytest.mark.parametrize("name", ["", "1ABC", "bad name", 'x"y', "A" * 33, "A;B"])
def test_bad_names_are_rejected(name):
    with pytest.raises(DeadmanError):
        build_applet(name, 60, [])
    with pytest.raises(DeadmanError):
        removal_commands(name)


@pytest.mark.parametrize("seconds", [0, -5, 10**9])
def test_countdown_bounds(seconds):
    with pytest.raises(DeadmanError):
        build_applet("COLLECTOR_DEADMAN_AB", seconds, [])


def test_too_many_actions_are_refused():
    with pytest.raises(DeadmanError, match="actions"):
        build_applet("COLLECTOR_DEADMAN_AB", 60, [("exec", ["no debug all"] * 1000)])


def test_applet_name_from_incident_id():
    assert applet_name("1a2b3c4d-5e6f-7788-99aa-bbccddeeff00") == "COLLECTOR_DEADMAN_1A2B3C4D"
    assert applet_name("inc-20240312-01") == "COLLECTOR_DEADMAN_INC20240"
    with pytest.raises(DeadmanError):
        applet_name("---")


def test_authorization_bypass_keyword():
    applet = build_applet("COLLECTOR_DEADMAN_AB", 60, [], authorization_bypass=True)
    assert applet.config_lines[0] == "event manager applet COLLECTOR_DEADMAN_AB authorization bypass"
