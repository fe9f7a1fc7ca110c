"""The on-box applets of `collector eem render`: the lines themselves, and the undo run on
the lab's router model (which executes applets as IOS does)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from ipaddress import ip_address

import pytest

from collector.lab.fleet import Fleet
from collector.playbook import load_playbook
from collector.resources import playbooks_dir
from collector.respond.eem_render import (
    EemOptions,
    EemRenderError,
    EemRouter,
    render_applets,
    syslog_pattern,
)
from collector.respond.plan import LoggingSettings

BOOK = load_playbook(playbooks_dir() / "invalid-spi.yaml")
RX_PEER, TX_PEER = ip_address("192.0.2.3"), ip_address("198.51.100.1")
LOGGING = LoggingSettings(console_level="informational", monitor_level="debugging", buffered_level="informational",
                          buffered_size=64000,
                          buffered_config=("logging buffered discriminator NOSPAM 64000 informational",))


def _render(book=BOOK, rx_logging=LOGGING, tx_logging=None, **options):
    receiver = EemRouter("hub1", "cisco_xe", RX_PEER, rx_logging)
    sender = EemRouter("spoke1", "cisco_ios", TX_PEER, tx_logging)
    return render_applets(book, receiver, sender, EemOptions(**options))


def _applet(lines, suffix: str) -> list[str]:
    """The lines of the applet whose name ends with `suffix`, header first, up to its `exit`."""
    start = next(i for i, ln in enumerate(lines) if ln.startswith("event manager applet") and ln.endswith(suffix))
    end = lines.index("exit", start)
    return list(lines[start:end])


def _commands(applet: list[str]) -> list[str]:
    return [re.match(r' action \d{3} cli command "(.*)"$', ln).group(1) for ln in applet[2:]]


# -- the syslog pattern ----------------------------------------------------------------

LINE = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=198.51.100.1, "
        "prot=50, spi=0xB761863E(3076621886), srcaddr=192.0.2.3")


def test_pattern_matches_the_flow_and_not_an_address_that_starts_with_it():
    pattern = syslog_pattern(RX_PEER)
    assert pattern == r"%CRYPTO-4-RECVD_PKT_INV_SPI.*srcaddr=192\.0\.2\.3([^0-9]|$)"
    assert re.search(pattern, LINE)
    assert re.search(pattern, LINE + ", input interface=GigabitEthernet0/0")
    assert not re.search(pattern, LINE.replace("srcaddr=192.0.2.3", "srcaddr=192.0.2.31"))
    assert not re.search(pattern, LINE.replace("srcaddr=192.0.2.3", "srcaddr=192.0.253"))


def test_pattern_with_an_spi_matches_only_that_spi():
    pattern = syslog_pattern(RX_PEER, 0xB761863E)
    assert "spi=0xB761863E" in pattern and re.search(pattern, LINE)
    assert not re.search(pattern, LINE.replace("0xB761863E", "0x1DB73BBB"))
    with pytest.raises(EemRenderError):
        syslog_pattern(RX_PEER, 1 << 32)


# -- the applets -------------------------------------------------------------------------


def test_receiver_gets_end_cap_arm_in_that_order_and_the_sender_no_capture_trigger():
    rx, tx = _render()
    headers = [ln for ln in rx.config_lines if ln.startswith("event manager applet")]
    assert [h.rsplit("_", 1)[1] for h in headers] == ["END", "CAP", "ARM"]
    assert [h.rsplit("_", 1)[1] for h in tx.config_lines if h.startswith("event manager applet")] == ["END", "ARM"]
    assert rx.applets[0].split("_")[2] == tx.applets[0].split("_")[2]  # one flow, one tag
    assert rx.config_lines.count("exit") == 3 and tx.config_lines.count("exit") == 2
    assert not any("?" in ln for ln in rx.config_lines + tx.config_lines)


def test_capture_applet_uses_the_playbook_occurs_and_within():
    cap = _applet(_render()[0].config_lines, "_CAP")
    assert cap[1] == (' event syslog occurs 2 pattern "%CRYPTO-4-RECVD_PKT_INV_SPI.*srcaddr=192\\.0\\.2\\.3([^0-9]|$)"'
                      " period 600 maxrun 600")
    three = BOOK.model_copy(update={"occurs": 3, "within": timedelta(minutes=5), "window": timedelta(minutes=5)})
    assert " event syslog occurs 3 pattern " in _applet(_render(three)[0].config_lines, "_CAP")[1]
    assert _applet(_render(three)[0].config_lines, "_CAP")[1].endswith(" period 300 maxrun 600")
    once = BOOK.model_copy(update={"occurs": 1})
    assert "period" not in _applet(_render(once)[0].config_lines, "_CAP")[1]


def test_arm_sets_logging_then_the_peer_conditional_debugs_of_each_end():
    rx, tx = _render(ike=("isakmp",))
    arm = _commands(_applet(rx.config_lines, "_ARM"))
    assert arm == ["enable", "configure terminal", "logging buffered 1000000 debugging", "no logging console",
                   "no logging monitor", "end", "debug crypto condition peer ipv4 192.0.2.3", "debug crypto isakmp",
                   "debug crypto ipsec"]
    assert _applet(rx.config_lines, "_ARM")[1] == " event timer countdown time 5 maxrun 60"
    # the sender conditions on the receiver as it knows it; its logging is left alone here
    assert _commands(_applet(tx.config_lines, "_ARM")) == [
        "enable", "debug crypto condition peer ipv4 198.51.100.1", "debug crypto isakmp", "debug crypto ipsec"]
    both = _commands(_applet(_render()[1].config_lines, "_ARM"))
    assert "debug crypto ikev2" in both and "debug crypto isakmp" in both


def test_captures_go_to_the_flash_file_without_secrets_or_second_modifiers():
    rx, tx = _render()
    cap = _commands(_applet(rx.config_lines, "_CAP"))
    shows = [c for c in cap if c.startswith("show ")]
    assert shows[0] == "show clock | append flash:collector-eem-hub1.txt" and rx.flash_file == "flash:collector-eem-hub1.txt"
    assert all(c.endswith(" | append flash:collector-eem-hub1.txt") and c.count("|") == 1 for c in shows)
    assert "show logging | append flash:collector-eem-hub1.txt" in shows
    assert "show crypto ipsec sa peer 192.0.2.3 detail | append flash:collector-eem-hub1.txt" in shows
    assert not any("running-config" in c for c in shows)
    assert "show processes cpu | append flash:collector-eem-hub1.txt" in shows
    assert any("qfp" in c for c in shows)  # cisco_xe receiver
    end = _commands(_applet(tx.config_lines, "_END"))
    assert not any("qfp" in c for c in end)  # cisco_ios sender
    assert end[1] == "show clock | append flash:collector-eem-spoke1.txt"  # the sender captures at its countdown
    assert any("running-config" in n and "keys" in n for n in rx.notes)
    with_fs = _render(filesystem="bootflash:")[0]
    assert with_fs.flash_file == "bootflash:collector-eem-hub1.txt"


def test_countdown_and_capture_undo_in_reverse_and_remove_the_applets_last():
    rx, tx = _render(disarm_after=timedelta(minutes=15), ike=("isakmp",))
    end = _applet(rx.config_lines, "_END")
    assert end[1] == " event timer countdown time 900 maxrun 600"
    undo = ["no debug crypto ipsec", "no debug crypto isakmp", "no debug crypto condition peer ipv4 192.0.2.3",
            "configure terminal", "logging monitor debugging", "logging console informational",
            "logging buffered discriminator NOSPAM 64000 informational"]
    name = rx.applets[0].rsplit("_", 1)[0]
    assert _commands(end) == ["enable", *undo, f"no event manager applet {name}_ARM",
                              f"no event manager applet {name}_CAP", f"no event manager applet {name}_END", "end"]
    cap = _commands(_applet(rx.config_lines, "_CAP"))
    assert cap[cap.index("no debug crypto ipsec"):] == [*undo, f"no event manager applet {name}_END",
                                                         f"no event manager applet {name}_ARM",
                                                         f"no event manager applet {name}_CAP", "end"]
    assert _commands(_applet(tx.config_lines, "_END"))[-3:] == [
        f"no event manager applet {name}_ARM", f"no event manager applet {name}_END", "end"]


def test_aaa_options_and_notes():
    rx, _ = _render()
    assert not any("authorization bypass" in ln for ln in rx.config_lines)
    assert any("event manager session cli username USER` must name a user" in n for n in rx.notes)
    assert any(n.startswith("vty: ") for n in rx.notes)
    bypass, _ = _render(authorization_bypass=True)
    headers = [ln for ln in bypass.config_lines if ln.startswith("event manager applet")]
    assert headers and all(h.endswith(" authorization bypass") for h in headers)
    named, _ = _render(cli_username="eem-ops")
    assert named.config_lines[0] == "event manager session cli username eem-ops"
    assert any("left in place by the disarm" in n for n in named.notes)


@pytest.mark.parametrize("change, message", [
    ({"receiver": EemRouter("hub 1", "cisco_xe", RX_PEER, None)}, "router name 'hub 1'"),
    ({"receiver": EemRouter("hub1", "junos", RX_PEER, None)}, "platform 'junos'"),
    ({"receiver": EemRouter("hub1", "cisco_xe", ip_address("2001:db8::1"), None)}, "not an IPv4 address"),
    ({"sender": EemRouter("hub1", "cisco_ios", TX_PEER, None)}, "both hub1"),
    ({"options": EemOptions(filesystem="flash:/x")}, "file system"),
    ({"options": EemOptions(cli_username="a b")}, "cli username"),
    ({"options": EemOptions(disarm_after=timedelta(minutes=5))}, "disarm after 5m"),
    ({"options": EemOptions(disarm_after=timedelta(days=8))}, "disarm after"),
    ({"options": EemOptions(ike=("ikev3",))}, "ike"),
])
def test_bad_values_are_refused_in_one_line(change, message):
    args = {"receiver": EemRouter("hub1", "cisco_xe", RX_PEER, None),
            "sender": EemRouter("spoke1", "cisco_ios", TX_PEER, None), "options": EemOptions(), **change}
    with pytest.raises(EemRenderError, match=re.escape(message)) as info:
        render_applets(BOOK, args["receiver"], args["sender"], args["options"])
    assert "\n" not in str(info.value)


def test_playbooks_it_cannot_render_are_refused():
    with pytest.raises(EemRenderError, match="parser: invalid-spi"):
        _render(load_playbook(playbooks_dir() / "tunnel-flap.yaml"))
    step = BOOK.arm[1].model_copy(update={"do": ('debug crypto ipsec "x"',)})
    with pytest.raises(EemRenderError, match="double quote"):
        _render(BOOK.model_copy(update={"arm": (BOOK.arm[0], step)}))


# -- on the lab's router model: what ARM changed, END puts back exactly ---------------------


def _session(router):
    s = router.open_session()
    s.execute("enable")
    s.execute(router.enable_secret)
    s.execute("terminal length 0")
    return s


def test_the_countdown_restores_logging_exactly_and_leaves_nothing_armed(tmp_path):
    from collector.cli.eem import _logging

    fleet = Fleet.build(6, [], seed=0, time_scale=0.0, start=datetime(2026, 11, 27, 10, 40), realism="none")
    router = fleet.routers["hub1"]
    s = _session(router)
    s.execute("configure terminal")
    for line in ("logging buffered 64000 informational", "logging console informational", "logging monitor debugging"):
        assert s.execute(line) == "", line
    s.execute("end")
    before = s.execute("show running-config | include ^logging")
    state = tmp_path / "hub1.state"  # what the operator saves, read as `collector eem render` reads it
    state.write_text(s.execute("show logging | include [Ll]og") + s.execute("show running-config | include ^logging buffered"))
    rx, _ = _render(rx_logging=_logging(state, False, "--receiver-state"), disarm_after=timedelta(minutes=15))
    s.execute("configure terminal")
    for line in rx.config_lines:
        assert "Invalid" not in s.execute(line), line
    s.execute("end")

    fleet.clock.step(6)
    fleet.tick()
    armed = s.execute("show running-config | include ^logging")
    assert "logging buffered 1000000\n" in armed and "logging console" not in armed  # debugging: the default level
    assert "Crypto ISAKMP debugging is on" in s.execute("show debugging")

    fleet.clock.step(15 * 60)
    fleet.tick()
    assert s.execute("show running-config | include ^logging") == before
    assert "debugging is on" not in s.execute("show debugging")
    assert "COLLECTOR_EEM_" not in s.execute("show running-config | section event manager")
    assert [r["error"] for r in router.eem_runs] == [None, None]
