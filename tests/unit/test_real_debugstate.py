"""collector.respond.debugstate on the real `show debugging` captures and on every real
debug banner (tests/fixtures/real; sources in its README.md)."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from collector.respond.debugstate import DebugCondition, DebugState, parse_debug_state

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
OUTPUTS = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"


def test_ios_lowercase_heading_capture() -> None:
    state = parse_debug_state((REAL / "show_debugging/ios_showdebug_crypto_subsystems.txt").read_text())
    # `  R1# show debugging` / `Cryptographic subsystems:` / `Crypto ISAKMP debugging is on`
    assert state.crypto_debugs == {"isakmp"}
    assert state.crypto_lines == ("Crypto ISAKMP debugging is on",)
    assert state.unknown_lines == () and state.conditions == () and state.any_crypto


def test_iosxe_capitalised_heading_capture() -> None:
    state = parse_debug_state((REAL / "show_debugging/xe_showdebug_crypto_ce2.txt").read_text())
    assert state.crypto_debugs == {"isakmp", "ipsec"}
    assert state.crypto_lines == ("Crypto ISAKMP debugging is on", "Crypto IPSEC debugging is on")
    assert state.unknown_lines == ()


def test_iosxe_platform_block_and_other_debugs_are_not_crypto() -> None:
    state = parse_debug_state((REAL / "show_debugging/xe_hsrp_conditional.txt").read_text())
    assert state.crypto_debugs == frozenset() and not state.any_crypto
    assert state.other_debugs == ("HSRP Errors", "HSRP Events", "HSRP Packets")
    assert state.unknown_lines == ()  # `show debug` echo, `(Coup, Resign)` details, `Global State: Stop`


@pytest.mark.parametrize(("banner", "family"), [
    # every real answer to `debug crypto ...` seen in the captures
    ("Crypto ISAKMP debugging is on", "isakmp"),
    ("Crypto IPSEC debugging is on", "ipsec"),
    ("Crypto IKEv2 debugging is on", "ikev2"),
    ("IKEv2 default debugging is on", "ikev2"),
    ("IKEv2 error debugging is on", "ikev2"),  # fixtures/real/debug/xe16_ikev2_debug_excerpt.txt
    ("IKEv2 packet debugging is on", "ikev2"),
    ("IKEv2 internal debugging is on", "ikev2"),
])
def test_every_real_banner_counts(banner: str, family: str) -> None:
    for text in (banner, f"Cryptographic Subsystem:\n  {banner}\n", f"Cryptographic subsystems:\n    {banner}\n"):
        state = parse_debug_state(text)
        assert state.crypto_debugs == {family}, text
        assert state.crypto_lines == (banner,) and state.unknown_lines == ()


def test_the_banner_from_the_ikev2_transcript() -> None:
    text = (REAL / "debug/xe16_ikev2_debug_excerpt.txt").read_text()
    banners = [ln for ln in text.splitlines() if ln.endswith("debugging is on")]
    assert banners == ["IKEv2 error debugging is on"]
    assert parse_debug_state(banners[0]).crypto_debugs == {"ikev2"}
    assert parse_debug_state("All possible debugging has been turned off") == DebugState(
        frozenset(), (), (), (), None, ())


def test_condition_output_read_by_addresses_not_wording() -> None:
    cond = (OUTPUTS / "show_crypto_debug_condition_on.txt").read_text()
    state = parse_debug_state("", cond)
    assert state.condition_peers == {ip_address("10.1.1.1"), ip_address("2001:db8::7")}
    assert DebugCondition("IKE connection id", "1001", "1001", "show crypto debug-condition") in state.conditions
    assert state.conditional_debug is True and state.any_crypto
    # the same addresses in a wording nobody has seen are still conditions; the rest is unknown
    odd = parse_debug_state("", "Peer filter (IKE): 10.1.1.1, 2001:DB8::7/128\nsomething new\n")
    assert odd.condition_peers == {ip_address("10.1.1.1"), ip_address("2001:db8::7")}
    assert odd.unknown_lines == ("something new",) and odd.any_crypto


def test_condition_off_is_clean() -> None:
    state = parse_debug_state("", (OUTPUTS / "show_crypto_debug_condition_off.txt").read_text())
    assert state.conditional_debug is False and state.conditions == () and not state.any_crypto
    assert state.unknown_lines == ()


def test_unknown_lines_are_reported_not_dropped() -> None:
    state = parse_debug_state("Cryptographic Subsystem:\n  Crypto ISAKMP debugging is on\n  a brand new line\n")
    assert state.crypto_debugs == {"isakmp"} and state.unknown_lines == ("a brand new line",)


def test_platform_condition_is_not_a_crypto_peer() -> None:
    text = ("IOSXE Conditional Debug Configs:\n\nConditional Debug Global State: Start\n\n"
            "ipv4 192.0.2.1/32 both\n")
    state = parse_debug_state(text)
    assert state.condition_peers == frozenset() and not state.any_crypto
    assert [c.kind for c in state.conditions] == ["platform"]


def test_never_raises() -> None:
    for junk in ("", "\x00\x01", ":" * 5000, "1.2.3.4.5.6 ::::1 999.1.1.1"):
        assert isinstance(parse_debug_state(junk, junk), DebugState)
