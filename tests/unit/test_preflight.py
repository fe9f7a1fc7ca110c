"""Pre-flight readers: debug state in every real form, vty lines, AAA refusals."""

from __future__ import annotations

import pytest

from collector.respond.debugstate import addresses_in, parse_debug_state
from collector.respond.facts import count_vty_in_use, count_vty_lines, refusal_in

# Verbatim public captures (shared/real/debug): IOS and IOS-XE `show debugging`, IOS-XE
# 16.7.1 answering `debug crypto ikev2 error`.
IOS_SUBSYSTEMS = "  R1# show debugging\n  Cryptographic subsystems:\n    Crypto ISAKMP debugging is on\n"
XE_CE2 = ("ce2#show debug | inc Crypto\nCryptographic Subsystem:\n  Crypto ISAKMP debugging is on\n"
          "  Crypto IPSEC debugging is on\n")
XE_IKEV2_ERROR = "IKEv2 error debugging is on\n"


@pytest.mark.parametrize(
    ("text", "debugs"),
    [
        (IOS_SUBSYSTEMS, {"isakmp"}),
        (XE_CE2, {"isakmp", "ipsec"}),
        (XE_IKEV2_ERROR, {"ikev2 error"}),
        ("IKEv2 default debugging is on\n", {"ikev2"}),
        ("Crypto IKEv2 debugging is on\n", {"ikev2"}),  # the simulator form, still understood
        ("Generic IP:\n  IP packet debugging is on\n", {"ip packet"}),
        ("Cryptographic Subsystem:\n  Crypto ISAKMP debugging is on\n"
         "  Crypto conditional debugging is on (peer filters set)\n", {"isakmp"}),
        ("", set()),
    ],
)
def test_every_real_form_of_show_debugging(text, debugs):
    assert parse_debug_state(text).debugs == debugs


def test_conditions_are_addresses_whatever_the_wording():
    text = ("Crypto conditional debug currently is turned ON\nIKE debug context unmatched flag:OFF\n\n"
            "IKE peer IP address filters:\n10.1.1.1 \n2001:db8::1\nconnid 5, spi 0x1234\n")
    state = parse_debug_state("", text)
    assert state.peer_conditions == {"10.1.1.1", "2001:db8::1"}
    assert addresses_in("peer filter -> 192.0.2.7 (set).") == {"192.0.2.7"}
    assert addresses_in("Crypto Engine debug context unmatched flag:OFF") == frozenset()


def test_vty_lines_from_config_and_show_users():
    assert count_vty_lines("line vty 0 4\nline vty 5 15\n") == 16
    assert count_vty_lines("line vty 0\n") == 1
    assert count_vty_lines("logging buffered 4096\n") is None
    users = ("    Line       User       Host(s)              Idle       Location\n"
             "*  0 con 0                idle                 00:00:00\n"
             " 866 vty 0     admin      idle                 00:00:03 10.1.1.1\n"
             "*867 vty 1     collector  idle                 00:00:00 10.1.1.2\n\n"
             "  Interface    User               Mode         Idle     Peer Address\n"
             "  Vi1          vty 3      PPPoE        00:00:00 10.0.0.1\n")
    assert count_vty_in_use(users) == 2
    assert count_vty_in_use("% Invalid input detected at '^' marker.") is None


def test_authorization_refusal_has_no_percent_sign():
    assert refusal_in("Command authorization failed.\n") == "Command authorization failed."
    assert refusal_in("Crypto ISAKMP debugging is on\n") is None
