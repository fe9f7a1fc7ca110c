"""Crypto debugs: arming, conditions, the lines they produce, and where those lines go."""

from __future__ import annotations

from test_model_helpers import INV_SPI, build, configure, priv, step

from collector.lab.ipsec import SOFT_LIFETIME


def _desync_fleet():
    fleet = build(scenarios=["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    return fleet, info


def test_arming_echoes_and_show_debugging_lists_it() -> None:
    fleet, info = _desync_fleet()
    s = priv(fleet.routers["hub1"])
    assert s.execute(f"debug crypto condition peer ipv4 {info.sender_addr}") == ""
    assert s.execute("debug crypto isakmp") == "Crypto ISAKMP debugging is on\n"
    assert s.execute("deb cry ips") == "Crypto IPSEC debugging is on\n"
    shown = s.execute("show debugging")
    assert "Cryptographic Subsystem:" in shown
    assert "  Crypto ISAKMP debugging is on" in shown and "  Crypto IPSEC debugging is on" in shown
    cond = s.execute("show crypto debug-condition")
    assert "Crypto conditional debug currently is turned ON" in cond
    assert cond.rstrip().endswith(info.sender_addr)


def test_undebug_all_turns_debugs_off_but_leaves_conditions() -> None:
    fleet, info = _desync_fleet()
    s = priv(fleet.routers["hub1"])
    s.execute(f"debug crypto condition peer ipv4 {info.sender_addr}")
    s.execute("debug crypto isakmp")
    assert s.execute("undebug all") == "All possible debugging has been turned off\n"
    assert "Crypto ISAKMP debugging is on" not in s.execute("show debugging")
    assert info.sender_addr in s.execute("show crypto debug-condition")
    s.execute("debug crypto isakmp")
    assert s.execute("no debug all") == "All possible debugging has been turned off\n"
    s.execute("debug crypto condition reset")
    assert "turned OFF" in s.execute("show crypto debug-condition")
    s.execute(f"debug crypto condition peer ipv4 {info.sender_addr}")
    s.execute(f"no debug crypto condition peer ipv4 {info.sender_addr}")
    assert info.sender_addr not in s.execute("show crypto debug-condition")


def test_receiver_prints_no_isakmp_sa_right_after_each_invalid_spi_line() -> None:
    fleet, info = _desync_fleet()
    rx = fleet.routers[info.receiver]
    configure(rx, "logging buffered 512000 debugging")
    s = priv(rx)
    s.execute(f"debug crypto condition peer ipv4 {info.sender_addr}")
    s.execute("debug crypto isakmp")
    step(fleet, 120)
    lines = rx.log.lines()
    idx = [i for i, line in enumerate(lines) if INV_SPI in line]
    assert len(idx) == 2
    ignoring = [ln for ln in lines if "ignoring request to send delete notify" in ln]
    assert len(ignoring) == 5  # right after each syslog line (+30 s, +90 s) and every 20 s between
    for i in idx:
        spi = lines[i].split("spi=")[1].split("(")[0]
        follow = lines[i + 1]
        assert follow.endswith(
            f"ISAKMP-ERROR: (0):ignoring request to send delete notify (no ISAKMP sa) "
            f"src {info.receiver_addr} dst {info.sender_addr} for SPI {spi}"
        )
        assert follow.startswith("*Nov 27 10:4")  # `service timestamps debug datetime msec`


def test_debug_lines_only_for_the_conditioned_peer() -> None:
    fleet = build()
    hub1 = fleet.routers["hub1"]
    configure(hub1, "logging buffered 512000 debugging")
    hub_peers = {p.id: p for p in fleet.pairs() if "hub1" in (p.a, p.b)}
    spoke_link = hub_peers["t3"]  # spoke3 <-> hub1 FlexVPN
    hub_link = hub_peers["t5"]  # hub1 <-> hub2 GRE
    s = priv(hub1)
    s.execute(f"debug crypto condition peer ipv4 {hub_link.b_addr}")
    for kind in ("isakmp", "ikev2", "ipsec"):
        s.execute(f"debug crypto {kind}")
    # run past the next rekey of both tunnels
    due = max(
        fleet.tunnel(t).ends[0].sa.established + SOFT_LIFETIME * fleet.tunnel(t).ends[0].sa.lifetime
        for t in ("t3", "t5")
    )
    step(fleet, due + 5)
    debug_lines = [ln for ln in hub1.log.lines() if "ISAKMP" in ln or "IKEv2" in ln or "IPSEC(" in ln]
    assert any(
        f"sending packet to {hub_link.b_addr}" in ln or f"received packet from {hub_link.b_addr}" in ln
        for ln in debug_lines
    )
    assert any("Successfully installed IPSEC SA" in ln for ln in debug_lines)
    assert not any(spoke_link.a_addr in ln for ln in hub1.log.lines())
    assert not any(ln.split(": ", 1)[-1].startswith("IKEv2") for ln in debug_lines)

    # with the condition removed every peer is debugged
    s.execute("debug crypto condition reset")
    t3 = fleet.tunnel("t3")
    gen = t3.ends[0].sa
    step(fleet, gen.established + SOFT_LIFETIME * gen.lifetime - fleet.clock.elapsed() + 5)
    assert any("IKEv2:(SESSION ID = " in ln for ln in hub1.log.lines())


def test_sender_with_debugs_armed_prints_lines_about_its_stale_sa() -> None:
    fleet, info = _desync_fleet()
    tx = fleet.routers[info.sender]
    configure(tx, "logging buffered 512000 debugging")
    s = priv(tx)
    s.execute(f"debug crypto condition peer ipv4 {info.receiver_addr}")
    s.execute("debug crypto isakmp")
    s.execute("debug crypto ipsec")
    stale = fleet.tunnel(info.id).ends[fleet.tunnel(info.id).sender].sa.spi_in[fleet.tunnel(info.id).receiver]
    step(fleet, 181)
    aging = [ln for ln in tx.log.lines() if "IPSEC(sa_aging): outbound SA" in ln]
    minutes = {ln.split()[2][:5] for ln in aging}  # HH:MM of each line
    assert minutes == {"10:40", "10:41", "10:42"}  # lines in every lab minute of the desync
    assert len(aging) == 8  # at +30.8 s, then every 20 s
    assert all(f"0x{stale:08X}" in ln and info.receiver_addr in ln for ln in aging)


def test_debug_lines_stay_out_of_a_buffer_below_debugging() -> None:
    fleet, info = _desync_fleet()
    rx = fleet.routers[info.receiver]
    configure(rx, "logging buffered 64000 informational")
    s = priv(rx)
    s.execute("debug crypto isakmp")
    step(fleet, 120)
    lines = rx.log.lines()
    assert sum(INV_SPI in ln for ln in lines) == 2
    assert not any("ignoring request to send delete notify" in ln for ln in lines)
    assert "Buffer logging:  level informational" in s.execute("show logging")


def test_debug_to_syslog_only_with_trap_debugging() -> None:
    fleet, info = _desync_fleet()
    rx = fleet.routers[info.receiver]
    configure(rx, "logging trap informational", "logging host 127.0.0.1")
    rx.drain_syslog()
    s = priv(rx)
    s.execute("debug crypto isakmp")
    step(fleet, 60)
    sent = rx.drain_syslog()
    assert any(INV_SPI in line for line in sent)
    assert not any("ignoring request" in line for line in sent)
    configure(rx, "logging trap debugging")
    step(fleet, 60)
    assert any("ignoring request to send delete notify" in line for line in rx.drain_syslog())
