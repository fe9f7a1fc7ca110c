"""EEM applets: stored from config mode, countdowns really run their CLI actions."""

from __future__ import annotations

from test_model_helpers import INV_SPI, build, configure, priv, step

DEADMAN = [
    "event manager applet COLLECTOR_DEADMAN_1A2B3C4D",
    " event timer countdown time 120 maxrun 120",
    ' action 001 cli command "enable"',
    ' action 002 cli command "undebug all"',
    ' action 003 cli command "debug crypto condition reset"',
    ' action 004 cli command "configure terminal"',
    ' action 005 cli command "logging console informational"',
    ' action 006 cli command "no event manager applet COLLECTOR_DEADMAN_1A2B3C4D"',
    ' action 007 cli command "end"',
    ' action 008 syslog msg "dead-man fired"',
]


def test_applet_is_stored_and_shown_in_running_config() -> None:
    fleet = build()
    r = fleet.routers["spoke3"]
    s = priv(r)
    s.execute("configure terminal")
    for line in DEADMAN:
        assert s.execute(line) == "", line
    assert s.prompt == "spoke3(config-applet)#"
    s.execute("end")
    section = s.execute("show running-config | section event manager")
    assert section.splitlines() == [line for line in DEADMAN]
    assert "COLLECTOR_DEADMAN_1A2B3C4D" in s.execute("show event manager policy registered")


def test_countdown_fires_and_runs_its_cli_actions_in_order() -> None:
    fleet = build()
    r = fleet.routers["hub1"]
    s = priv(r)
    s.execute("debug crypto condition peer ipv4 192.0.2.3")
    s.execute("debug crypto isakmp")
    s.execute("debug crypto ipsec")
    configure(r, "no logging console", *DEADMAN)
    step(fleet, 119)
    assert "Crypto ISAKMP debugging is on" in s.execute("show debugging")
    step(fleet, 2)
    assert "debugging is on" not in s.execute("show debugging")
    assert "turned OFF" in s.execute("show crypto debug-condition")
    running = s.execute("show running-config")
    assert "logging console informational" in running
    assert "event manager applet" not in running  # it removed itself
    log = r.log.lines()
    assert any(
        "%SYS-5-CONFIG_I: Configured from console by  on vty0 (EEM:COLLECTOR_DEADMAN_1A2B3C4D)" in ln for ln in log
    )
    assert any(ln.endswith("%HA_EM-6-LOG: COLLECTOR_DEADMAN_1A2B3C4D: dead-man fired") for ln in log)


def test_actions_run_in_label_string_order() -> None:
    fleet = build()
    r = fleet.routers["spoke1"]
    configure(
        r,
        "event manager applet ORDER",
        " event timer countdown time 10",
        ' action 10.0 syslog msg "ten"',
        ' action 2.0 syslog msg "two"',
        ' action 1.0 syslog msg "one"',
        "exit",
    )
    step(fleet, 11)
    msgs = [ln.rsplit(": ", 1)[1] for ln in r.log.lines() if "%HA_EM-6-LOG: ORDER" in ln]
    assert msgs == ["one", "ten", "two"]  # EEM compares labels as strings


def test_countdown_does_not_fire_when_the_applet_is_removed_first() -> None:
    fleet = build()
    r = fleet.routers["spoke2"]
    configure(r, "event manager applet GONE", " event timer countdown time 30", ' action 1 syslog msg "x"')
    configure(r, "no event manager applet GONE")
    step(fleet, 60)
    assert not any("%HA_EM-6-LOG: GONE" in ln for ln in r.log.lines())


def test_syslog_pattern_applet_counts_occurrences() -> None:
    fleet = build(scenarios=["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    r = fleet.routers[info.receiver]
    configure(
        r,
        "event manager applet INV_SPI_RX",
        ' event syslog pattern "%CRYPTO-4-RECVD_PKT_INV_SPI" occurs 2 period 300',
        ' action 1.0 syslog msg "INV_SPI seen twice"',
    )
    step(fleet, 60)
    assert sum(INV_SPI in ln for ln in r.log.lines()) == 1
    assert not any("INV_SPI seen twice" in ln for ln in r.log.lines())
    step(fleet, 60)
    assert any("%HA_EM-6-LOG: INV_SPI_RX: INV_SPI seen twice" in ln for ln in r.log.lines())


def test_bad_applet_lines_are_invalid_input() -> None:
    fleet = build()
    s = priv(fleet.routers["hub2"])
    s.execute("configure terminal")
    s.execute("event manager applet BAD")
    out = s.execute(" event frobnicate 1")
    assert "% Invalid input detected at '^' marker." in out
    assert out.splitlines()[0].index("^") == len("hub2(config-applet)# event ")
    assert "% Invalid input" in s.execute(' action 1 launch "x"')
    s.execute("end")


def test_an_applets_own_messages_do_not_trigger_syslog_applets() -> None:
    fleet = build()
    r = fleet.routers["spoke2"]
    configure(r, "logging buffered 64000 informational")
    configure(
        r,
        "event manager applet LOOP",
        ' event syslog pattern "HA_EM|CONFIG_I"',
        ' action 1.0 syslog msg "again"',
        "exit",
    )  # leaving config mode logs CONFIG_I, which fires the applet once
    step(fleet, 1)
    assert sum("%HA_EM-6-LOG: LOOP: again" in ln for ln in r.log.lines()) == 1


# -- EEM under AAA command authorization --------------------------------------------------

DENIED = "Command authorization failed.\n\n"


def _armed_hub_under_aaa(policy: dict) -> tuple:
    fleet = build()
    r = fleet.routers["hub1"]
    s = priv(r)
    s.execute("debug crypto condition peer ipv4 192.0.2.3")
    s.execute("debug crypto isakmp")
    configure(r, "aaa new-model", "aaa authorization commands 15 default group tacacs+")
    r.faults.tacacs = policy
    return fleet, r, s


def _deadman(header: str = "event manager applet COLLECTOR_DEADMAN_1A2B3C4D") -> list[str]:
    return [header, *DEADMAN[1:5], ' action 009 syslog msg "dead-man fired"']


def test_applet_without_bypass_or_username_is_refused_and_changes_nothing() -> None:
    fleet, r, s = _armed_hub_under_aaa({r_user: {} for r_user in ("lab", "admin")})
    configure(r, *_deadman())
    step(fleet, 121)
    assert "Crypto ISAKMP debugging is on" in s.execute("show debugging")
    assert "192.0.2.3" in s.execute("show crypto debug-condition")
    run = r.eem_runs[-1]
    assert run["applet"] == "COLLECTOR_DEADMAN_1A2B3C4D"
    outputs = {a["cli"]: a["output"] for a in run["actions"] if "cli" in a}
    assert outputs == {"enable": "", "undebug all": DENIED, "debug crypto condition reset": DENIED}


def test_authorization_bypass_lets_the_applet_run() -> None:
    fleet, r, s = _armed_hub_under_aaa({"lab": {}})
    configure(r, *_deadman("event manager applet COLLECTOR_DEADMAN_1A2B3C4D authorization bypass"))
    assert "event manager applet COLLECTOR_DEADMAN_1A2B3C4D authorization bypass" in s.execute(
        "show running-config | include event manager"
    )
    step(fleet, 121)
    assert "debugging is on" not in s.execute("show debugging")
    assert "192.0.2.3" not in s.execute("show crypto debug-condition")


def test_session_cli_username_is_authorized_by_its_policy() -> None:
    fleet, r, s = _armed_hub_under_aaa({"eem-svc": {"permit": ["undebug all"]}, "lab": {}})
    configure(r, "event manager session cli username eem-svc", *_deadman())
    step(fleet, 121)
    assert "debugging is on" not in s.execute("show debugging")  # `undebug all` permitted
    assert "192.0.2.3" in s.execute("show crypto debug-condition")  # the reset was refused
    outputs = {a["cli"]: a["output"] for a in r.eem_runs[-1]["actions"] if "cli" in a}
    assert outputs["debug crypto condition reset"] == DENIED
    # a user the server does not know is refused everything
    r.faults.tacacs = {"lab": {}}
    s.execute("debug crypto isakmp")
    configure(r, *_deadman())
    step(fleet, 121)
    assert "Crypto ISAKMP debugging is on" in s.execute("show debugging")


def test_applet_session_starts_in_user_exec() -> None:
    fleet = build()
    r = fleet.routers["spoke1"]
    s = priv(r)
    s.execute("debug crypto ipsec")
    configure(
        r,
        "event manager applet NOENABLE",
        " event timer countdown time 10",
        ' action 1 cli command "undebug all"',
    )
    step(fleet, 11)
    assert "Crypto IPSEC debugging is on" in s.execute("show debugging")
    output = r.eem_runs[-1]["actions"][0]["output"]
    assert "% Invalid input detected at '^' marker." in output


# -- EEM and the vty pool -----------------------------------------------------------------


def _countdown_applet(name: str) -> list[str]:
    return [
        f"event manager applet {name}",
        " event timer countdown time 30",
        ' action 1.0 cli command "enable"',
        ' action 2.0 cli command "undebug all"',
        ' action 3.0 syslog msg "cleanup done"',
    ]


def test_applet_cli_fails_when_every_vty_line_is_held() -> None:
    fleet = build()
    r = fleet.routers["hub2"]
    s = priv(r)
    s.execute("debug crypto ipsec")
    configure(r, *_countdown_applet("CLEANUP"))
    r.faults.vty_held = 5  # other people's sessions on vty 0-4
    step(fleet, 31)
    assert "Crypto IPSEC debugging is on" in s.execute("show debugging")
    assert r.eem_runs[-1]["error"] == "no vty line free" and r.eem_runs[-1]["actions"] == []
    log = "\n".join(r.log.lines())
    assert "%HA_EM-3-FMPD_CLI_CONNECT: Unable to establish CLI session: no tty lines available" in log
    assert "%HA_EM-3-FMPD_ERROR: Error executing applet CLEANUP statement 1.0" in log
    assert "cleanup done" not in log  # the applet stopped at its first cli action
    # one line free again: the next run takes it, runs, and gives it back
    r.faults.vty_held = 4
    configure(r, *_countdown_applet("CLEANUP"))
    step(fleet, 31)
    assert "debugging is on" not in s.execute("show debugging")
    assert r.eem_runs[-1]["error"] is None
    assert r.eem_runs[-1]["vty_line"] == 4  # the one line the held sessions left
    assert r.vty_free() == 1


def test_line_vty_range_sets_the_pool_and_shows_in_running_config() -> None:
    fleet = build()
    r = fleet.routers["spoke2"]
    s = priv(r)
    assert "\nline vty 0 4\n" in s.execute("show running-config")
    assert r.vty_free() == 5
    configure(r, "line vty 0 15", " transport input ssh")
    assert "\nline vty 0 15\n" in s.execute("show running-config")
    r.faults.vty_held = 5
    assert r.vty_free() == 11
    configure(r, *_countdown_applet("CLEANUP"))
    s.execute("debug crypto ipsec")
    step(fleet, 31)
    assert "debugging is on" not in s.execute("show debugging")


def test_show_users_lists_held_lines_in_the_ios_layout() -> None:
    from ntc_templates.parse import parse_output

    r = build().routers["spoke1"]
    r.faults.vty_held = 2
    line = r.vty_take("ssh")
    session = r.open_session(user="lab", source="127.0.0.1", vty_line=line)
    session.execute("enable")
    session.execute(r.enable_secret)
    text = session.execute("show users")
    lines = text.splitlines()
    assert lines[0] == "    Line       User       Host(s)              Idle       Location"
    assert lines[3] == "*  4 vty 2     lab        idle                 00:00:00 127.0.0.1"
    assert lines[5] == "  Interface    User               Mode         Idle     Peer Address"
    rows = parse_output(platform="cisco_ios", command="show users", data=text)
    assert [(row["line"], row["user"]) for row in rows] == [
        ("2 vty 0", "noc"),
        ("3 vty 1", "noc"),
        ("*  4 vty 2", "lab"),
    ]
    r.vty_release(line)
    assert r.vty_free() == 3


# -- on-box capture: syslog trigger, `| append flash:`, variables, dir/more --------------

CAPTURE = [
    "event manager applet INV_SPI_RX",
    ' event syslog pattern "%CRYPTO-4-RECVD_PKT_INV_SPI" occurs 2 period 300',
    ' action 1.0 cli command "enable"',
    ' action 1.1 regexp "srcaddr=([0-9.]+)" "$_syslog_msg" found peer',
    ' action 2.0 cli command "show clock | append flash:inv_spi_rx.txt"',
    ' action 2.1 cli command "show crypto ipsec sa peer $peer | append flash:inv_spi_rx.txt"',
    ' action 2.2 cli command "show logging | include RECVD_PKT_INV_SPI | append flash:inv_spi_rx.txt"',
    ' action 4.0 syslog msg "INV_SPI data collected for peer $peer"',
]


def test_capture_applet_appends_show_output_to_flash() -> None:
    fleet = build(scenarios=["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    r = fleet.routers[info.receiver]
    configure(r, *CAPTURE)
    s = priv(r)
    assert "inv_spi_rx.txt" not in s.execute("dir flash:")
    step(fleet, 120)
    log = "\n".join(r.log.lines())
    assert f"%HA_EM-6-LOG: INV_SPI_RX: INV_SPI data collected for peer {info.sender_addr}" in log
    text = s.execute("more flash:inv_spi_rx.txt")
    ran = [a["cli"] for a in r.eem_runs[-1]["actions"] if "cli" in a]
    assert f"show crypto ipsec sa peer {info.sender_addr} | append flash:inv_spi_rx.txt" in ran  # $peer filled in
    assert text.startswith("*10:42:00.000 UTC ")  # show clock first
    assert sum("RECVD_PKT_INV_SPI" in ln for ln in text.splitlines()) == 2
    assert text == r.flash["flash:inv_spi_rx.txt"]
    listing = s.execute("dir flash:").splitlines()
    assert listing[0] == "Directory of flash:/"
    assert listing[2].split()[-1] == "inv_spi_rx.txt"
    assert int(listing[2].split()[2]) == len(text.encode())
    assert listing[-1].endswith("bytes free)")
    # a second trigger appends below the first capture
    step(fleet, 120)
    again = s.execute("more flash:/inv_spi_rx.txt")
    assert again.startswith(text) and sum("RECVD_PKT_INV_SPI" in ln for ln in again.splitlines()) > 2
    s.execute("delete /force flash:inv_spi_rx.txt")
    assert s.execute("more flash:inv_spi_rx.txt") == "%Error opening flash:inv_spi_rx.txt (File not found)\n"


def test_capture_applet_under_aaa_writes_only_what_was_authorized() -> None:
    fleet = build(scenarios=["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    r = fleet.routers[info.receiver]
    configure(r, "aaa new-model", "aaa authorization commands 15 default group tacacs+", *CAPTURE)
    r.faults.tacacs = {"lab": {}}
    step(fleet, 120)
    # `show clock` is a level-1 command, not sent for authorization under `commands 15`
    assert list(r.flash) == ["flash:inv_spi_rx.txt"]
    assert r.flash["flash:inv_spi_rx.txt"].splitlines() == ["*10:42:00.000 UTC Fri Nov 27 2026"]
    outputs = [a["output"] for a in r.eem_runs[-1]["actions"] if "cli" in a]
    assert outputs[2:] == ["Command authorization failed.\n\n"] * 2


def test_delete_asks_twice_like_ios() -> None:
    r = build().routers["hub1"]
    s = priv(r)
    s.execute("show clock | append flash:x.txt")
    assert s.execute("delete flash:x.txt") == ""
    assert s.prompt == "Delete filename [x.txt]? "
    s.execute("")
    assert s.prompt == "Delete flash:/x.txt? [confirm]"
    s.execute("")
    assert r.flash == {} and s.prompt == "hub1#"


def test_eem_30_image_has_no_authorization_bypass() -> None:
    fleet = build()
    old = next(r for r in fleet.routers.values() if r.spec.platform.version.startswith("12.4"))
    s = priv(old)
    s.execute("configure terminal")
    out = s.execute("event manager applet DEADMAN authorization bypass")
    prompt = f"{old.hostname}(config)#"
    assert out == " " * len(prompt + "event manager applet DEADMAN ") + "^\n% Invalid input detected at '^' marker.\n\n"
    assert s.prompt == prompt and "DEADMAN" not in old.state.applets
    assert s.execute("event manager session cli username eem-svc") == ""  # the way left on EEM 3.0
    new = fleet.routers["spoke1"]
    s = priv(new)
    s.execute("configure terminal")
    assert s.execute("event manager applet DEADMAN authorization bypass") == ""


def _eem_version_fields(text: str) -> dict:
    """The fields of `show event manager version`: version, components, detector rows."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip() and not ln.rstrip().endswith("version")]
    components = lines[lines.index("Component Versions:") + 1:lines.index("Event Detectors:")]
    table = lines[lines.index("Event Detectors:") + 1:]
    return {"version": lines[0], "components": [c.split(": ", 1) for c in components],
            "header": table[0].split(), "detectors": [row.split() for row in table[1:]]}


def test_show_event_manager_version_reads_like_the_real_capture_per_family() -> None:
    from pathlib import Path

    from collector.respond.facts import parse_eem_version

    real = _eem_version_fields((Path(__file__).parents[1] / "fixtures" / "real" / "show_event_manager_version"
                                / "ios15_c3750x.txt").read_text())
    fleet = build(6, realism="none")
    seen = set()
    for router in fleet.routers.values():
        text = priv(router).execute("show event manager version")
        fields = _eem_version_fields(text)
        assert fields["header"] == real["header"] == ["Name", "Version", "Node", "Type"]
        assert [len(row) for row in fields["detectors"]] == [len(row) for row in real["detectors"]]
        assert all(len(pair) == 2 and pair[1].startswith("(") for pair in fields["components"])
        family = router.spec.platform.family
        wanted = 3.0 if family == "ios124" else 4.0
        assert parse_eem_version(text) == wanted, router.name
        if family == "ios15":
            assert fields == real
        seen.add(family)
    assert seen == {"xe", "ios15", "ios124"}
