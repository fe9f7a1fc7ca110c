from __future__ import annotations

import re

import pytest

from collector.respond.deadman import (
    DeadmanError,
    applet_actions,
    applet_name,
    applet_names,
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
    # a short id is used whole
    assert applet_name("inc-20240312-01") == "COLLECTOR_DEADMAN_INC2024031201"
    with pytest.raises(DeadmanError):
        applet_name("---")


def test_applet_names_are_unique_per_incident_even_on_one_day():
    # the agent's ids: second + 6 random hex; the old name (first 8 characters) was the date
    ids = ["20261206T003500abc123", "20261206T003500abc124", "20261206T235959000000", "20261206"]
    names = [applet_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert all(len(n) <= 32 and n.startswith("COLLECTOR_DEADMAN_") for n in names)
    assert applet_name(ids[0]) == applet_name(ids[0])  # the same incident always finds its applet
    # a long id keeps its readable tail (time and random part)
    assert names[0].startswith("COLLECTOR_DEADMAN_00ABC123")


def test_applet_names_and_actions_from_running_config():
    config = "\n".join([
        "event manager applet OPERATOR_ONE",
        ' action 1 cli command "no debug crypto ipsec"',
        "event manager applet COLLECTOR_DEADMAN_INC1 authorization bypass",
        " event timer countdown time 720 maxrun 120",
        ' action 010 cli command "end"',
        ' action 001 cli command "enable"',
        ' action 002 cli command "no debug crypto isakmp"',
        "event manager applet COLLECTOR_DEADMAN_INC2",
        "line vty 0 4",
    ])
    assert applet_names(config) == ("COLLECTOR_DEADMAN_INC1", "COLLECTOR_DEADMAN_INC2")
    assert applet_actions(config, "COLLECTOR_DEADMAN_INC1") == ("enable", "no debug crypto isakmp", "end")
    assert applet_actions(config, "COLLECTOR_DEADMAN_INC2") == ()


def test_reentering_a_shorter_applet_deletes_the_old_extra_actions():
    applet = build_applet("COLLECTOR_DEADMAN_AB", 60, [("exec", ["no debug crypto ipsec"])], replaces_actions=7)
    assert applet.action_count == 5  # enable, undo, configure terminal, no applet, end
    assert applet.config_lines[-2:] == (" no action 006", " no action 007")
    longer = build_applet("COLLECTOR_DEADMAN_AB", 60, [("exec", ["no debug crypto ipsec"])], replaces_actions=3)
    assert not any("no action" in line for line in longer.config_lines)


def test_authorization_bypass_keyword():
    applet = build_applet("COLLECTOR_DEADMAN_AB", 60, [], authorization_bypass=True)
    assert applet.config_lines[0] == "event manager applet COLLECTOR_DEADMAN_AB authorization bypass"
