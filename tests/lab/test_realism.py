"""The default lab is a production-like fleet (issue 11 items 1-7): each trait is asserted here.

The other model tests build plain routers (realism "none") to test one mechanism each;
these build the fleet `collector lab up`, `demo` and the e2e tests get by default, which
has every trait of topology.REALISM_FEATURES on.
"""

from __future__ import annotations

import ipaddress
import re

from test_model_helpers import INV_SPI, START, configure, flow_of, priv, step

from collector.lab.fleet import Fleet
from collector.lab.logbuf import BLOCK_BYTES
from collector.lab.topology import DEFAULT_REALISM, REALISM_FEATURES, UNDER_WAY_SECONDS, parse_realism

MESSAGE = re.compile(r"%[A-Z][A-Z0-9_+]*-\d-[A-Z0-9_]+:")


def default_fleet(scenarios: list[str] | None = None, routers: int = 6, realism: str | None = None) -> Fleet:
    return Fleet.build(routers, scenarios or [], time_scale=0.0, start=START, realism=realism)


def fleet_addresses(fleet: Fleet) -> set[str]:
    return {a for r in fleet.routers.values() for a in r.addresses}


def test_which_traits_are_on_by_default_and_that_each_can_be_chosen() -> None:
    assert DEFAULT_REALISM == {"hostnames", "timestamps", "timestamps-harsh", "big-buffers", "discriminator",
                               "operator-debug", "nat-t-receivers", "scanners", "background", "timezones"}
    assert parse_realism("all") == set(REALISM_FEATURES) == DEFAULT_REALISM
    assert parse_realism(None) == DEFAULT_REALISM
    assert parse_realism("none") == frozenset()
    assert parse_realism("-big-buffers") == DEFAULT_REALISM - {"big-buffers"}
    assert parse_realism("-scanners,-operator-debug") == DEFAULT_REALISM - {"scanners", "operator-debug"}
    assert parse_realism("hostnames,scanners") == {"hostnames", "scanners"}
    try:
        parse_realism("hostnamez")
    except ValueError as exc:
        assert "hostnamez" in str(exc)
    else:
        raise AssertionError("an unknown trait must be refused")


def test_the_default_six_router_fleet_has_every_production_trait() -> None:
    routers = list(default_fleet().routers.values())  # `collector lab up`'s default size
    assert all(len(r.state.hostname) > 16 for r in routers)
    assert any(r.state.log_format.kind == "uptime" for r in routers)
    assert any(r.state.debug_format.kind == "none" for r in routers)
    assert any(r.spec.logging.buffered_size >= 10_000_000 for r in routers)
    assert any(r.spec.logging.discriminator for r in routers)
    assert any(r.debug.flags for r in routers) and any(r.debug.peers for r in routers)
    plain = list(default_fleet(realism="none").routers.values())
    natted = [r.name for r in routers if r.spec.nat_t and r.spec.wan_ip != r.spec.public_ip]
    assert len(natted) > sum(r.spec.nat_t for r in plain)  # a receiver behind NAT beside the EzVPN client
    assert any(r.spec.scanned for r in routers) and all(r.spec.background for r in routers)
    assert not any(r.spec.scanned or r.debug.flags or r.debug.peers for r in plain)


def test_hostnames_have_real_shapes_up_to_63_characters() -> None:
    fleet = default_fleet()
    names = {r.name: r.state.hostname for r in fleet.routers.values()}
    assert all(host != name and len(host) > 16 for name, host in names.items())  # netmiko cuts at 16
    assert 63 in {len(h) for h in names.values()}
    assert sum(len(h) >= 30 for h in names.values()) >= 3
    assert any("." in h and "-" in h for h in names.values())
    assert all(re.fullmatch(r"[a-z][a-z0-9.-]*[a-z0-9]", h) for h in names.values())
    assert len(set(names.values())) == len(names)
    for r in fleet.routers.values():
        s = priv(r)
        assert f"\nhostname {r.state.hostname}\n" in s.execute("show running-config")
        assert f"{r.state.hostname} uptime is " in s.execute("show version")
    # inventory keys stay the short names
    assert list(fleet.inventory_data(base_port=10022)) == list(names)


def test_each_timestamp_style_is_somewhere_in_the_fleet() -> None:
    fleet = default_fleet()
    configs = {r.name: priv(r).execute("show running-config") for r in fleet.routers.values()}
    wanted = (
        "service timestamps log datetime msec localtime show-timezone year",
        "service timestamps log datetime msec\n",
        "service timestamps log uptime",
        "no service timestamps debug uptime",
        "service timestamps debug datetime msec localtime show-timezone year",
        "service sequence-numbers",
    )
    for line in wanted:
        assert any(line in text for text in configs.values()), line
    assert any("service sequence-numbers" not in text for text in configs.values())
    # and the buffers carry those forms
    firsts = {
        n: [ln for ln in r.log.lines() if MESSAGE.search(ln)][-1] for n, r in fleet.routers.items()
    }
    forms = {
        "year": r"^(\d{6}: )?\*?\w{3} [ \d]\d \d{4} \d\d:\d\d:\d\d\.\d{3} UTC: ",
        "no year": r"^(\d{6}: )?\*?\w{3} [ \d]\d \d\d:\d\d:\d\d\.\d{3}: %",
        "uptime": r"^(\d{6}: )?(\d+w\d+d|\d+d\d\dh|\d\d:\d\d:\d\d|\d+y\d+w): %",
        "sequence": r"^\d{6}: ",
    }
    for label, pattern in forms.items():
        assert any(re.match(pattern, ln) for ln in firsts.values()), (label, firsts)
    assert any(not re.match(r"^\d{6}: ", ln) for ln in firsts.values())


def test_the_default_fleet_has_uptime_stamps_and_unstamped_debugs_and_without_harsh_stamps_every_line() -> None:
    fleet = default_fleet()
    formats = {r.state.log_format for r in fleet.routers.values()}
    assert {f.kind for f in formats} == {"datetime", "uptime"}
    assert any(r.state.debug_format.kind == "none" for r in fleet.routers.values())
    mild = default_fleet(realism="-timestamps-harsh")
    formats = {r.state.log_format for r in mild.routers.values()}
    assert {f.year for f in formats} == {True, False} and {f.show_timezone for f in formats} == {True, False}
    assert {r.state.sequence_numbers for r in mild.routers.values()} == {True, False}
    assert all(r.state.debug_format == r.state.log_format for r in mild.routers.values())
    assert all(f.kind == "datetime" for f in formats)


def test_debug_lines_carry_no_timestamp_where_the_router_says_so() -> None:
    fleet = default_fleet(["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    bare = [r for r in fleet.routers.values() if r.state.debug_format.kind == "none"]
    assert bare
    for router in bare:
        s = priv(router)
        s.execute("debug crypto isakmp")
        s.execute("debug crypto ikev2")
        s.execute("debug crypto ipsec")
    # every router of the fleet with no debug timestamps that has a tunnel rekeys or chatters
    step(fleet, 3 * 3600)
    printed = 0
    for router in bare:
        debug_lines = [ln for ln in router.log.lines() if ln.startswith(("ISAKMP", "IKEv2", "IPSEC"))]
        printed += len(debug_lines)
        # log messages keep their stamp
        logs = [ln for ln in router.log.lines()[-200:] if "%SYS-5-CONFIG_I" in ln or "%LINEPROTO" in ln]
        assert all(not ln.startswith("%") for ln in logs)
    assert printed > 0, info


def test_header_counts_every_buffered_message_and_the_discriminator_drops() -> None:
    fleet = default_fleet()
    for r in fleet.routers.values():
        if not r.state.sequence_numbers or r.log.used_bytes >= r.log.buffer_size - 200:
            continue
        text = priv(r).execute("show logging")
        logged = int(re.search(r"Buffer logging:  level debugging, (\d+) messages logged", text).group(1))
        body = text.split(f"Log Buffer ({r.log.buffer_size} bytes):", 1)[1]
        seqs = [int(m.group(1)) for m in re.finditer(r"^(\d{6}): ", body, re.M)]
        assert logged == len(seqs)
        # sequence numbers count every message; the discriminator's drops make the gaps
        assert seqs[-1] == len(seqs) + r.log.dropped_by_md
        if r.state.discriminator:
            assert r.log.dropped_by_md > 0
        return
    raise AssertionError("no router with sequence numbers and an unwrapped buffer")


def test_a_large_buffer_full_of_a_busy_routers_traffic() -> None:
    fleet = default_fleet()
    big = [r for r in fleet.routers.values() if r.log.buffer_size >= 10_000_000]
    assert big
    hub = max(big, key=lambda r: r.log.used_bytes)
    assert hub.log.used_bytes == hub.log.buffer_size  # full and wrapped
    assert len(hub.log._blocks) * BLOCK_BYTES <= hub.log.buffer_size + 2 * BLOCK_BYTES  # blocks, not lines
    s = priv(hub)
    assert f"\nlogging buffered {hub.log.buffer_size}\n" in s.execute("show running-config")
    text = s.execute("show logging")
    assert "Log Buffer (10000000 bytes):" in text
    body = text.split("Log Buffer (10000000 bytes):\n\n", 1)[1]
    assert 9_900_000 < len(body) <= 10_000_001
    for facility in ("%LINK-3-UPDOWN", "%LINEPROTO-5-UPDOWN", "%SYS-5-CONFIG_I", "%BGP-5-ADJCHANGE", "%OSPF-5-ADJCHG"):
        assert facility in body, facility
    for facility in ("%SEC_LOGIN-5-LOGIN_SUCCESS", "%SEC_LOGIN-4-LOGIN_FAILED", "%SSH-5-SSH2_SESSION"):
        assert facility in body, facility
    assert any("%DMVPN-5-CRYPTO_SS" in r.log.buffer_text() for r in fleet.routers.values())
    # kept busy while the lab runs
    before = hub.log.sequence
    step(fleet, 600)
    assert hub.log.sequence - before >= 10
    # a new size reallocates (empties) the buffer, as IOS does
    configure(hub, "logging buffered 20000000")
    lines = [ln for ln in hub.log.lines() if ln]
    assert len(lines) == 1 and "%SYS-5-CONFIG_I" in lines[0]


def test_a_discriminator_on_the_buffer() -> None:
    fleet = default_fleet()
    with_md = [r for r in fleet.routers.values() if r.state.discriminator]
    assert with_md
    r = with_md[0]
    s = priv(r)
    config = s.execute("show running-config")
    assert f"logging discriminator {r.state.discriminator} mnemonics drops UPDOWN" in config
    assert re.search(rf"\nlogging buffered discriminator {r.state.discriminator} \d+", config)
    text = s.execute("show logging")
    assert "Active Message Discriminator:" in text and r.state.discriminator in text
    assert "UPDOWN" not in text.split("Log Buffer", 1)[1]
    # restoring the size without the keyword drops the filter (the line is replaced whole)
    configure(r, f"logging buffered {r.log.buffer_size}")
    assert "discriminator" not in s.execute("show running-config")


def test_an_operators_own_debug_and_condition_are_on_at_start() -> None:
    assert not any(r.debug.flags or r.debug.peers for r in default_fleet(realism="-operator-debug").routers.values())
    fleet = default_fleet()
    debugged = [r for r in fleet.routers.values() if r.debug.flags]
    conditioned = [r for r in fleet.routers.values() if r.debug.peers]
    assert debugged and conditioned
    r = debugged[0]
    s = priv(r)
    shown = s.execute("show debugging")
    assert "Crypto IPSEC debugging is on" in shown
    peer = r.debug.peers[0]
    assert peer in s.execute("show crypto debug-condition")
    assert peer in fleet_addresses(fleet)


def test_real_debug_banners_and_headings() -> None:
    fleet = default_fleet()
    xe = fleet.routers["hub1"]
    ios = next(r for r in fleet.routers.values() if r.spec.platform.family == "ios15")
    s = priv(xe)
    assert s.execute("debug crypto ikev2") == "IKEv2 default debugging is on\n"
    assert "Cryptographic Subsystem:\n" in s.execute("show debugging")
    assert s.execute("undebug all") == "All possible debugging has been turned off\n"
    xe.debug_set(s, "ikev2-error", True)
    assert "IKEv2 error debugging is on" in s.execute("show debugging")
    t = priv(ios)
    t.execute("debug crypto isakmp")
    assert "Cryptographic subsystems:\n  Crypto ISAKMP debugging is on" in t.execute("show debugging")


def test_invalid_spi_debug_lines_in_their_real_forms() -> None:
    fleet = default_fleet(["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    rx = fleet.routers[info.receiver]
    s = priv(rx)
    s.execute("debug crypto isakmp")
    step(fleet, 120)
    lines = [ln for ln in rx.log.lines() if "ignoring request to send delete notify" in ln]
    assert lines
    if rx.is_xe:
        assert all(re.search(r"ISAKMP-ERROR: \(0\):ignoring request to send delete notify \(no ISAKMP sa\) src \S+ dst \S+ for SPI 0x[0-9A-F]{8}$", ln) for ln in lines)
    else:
        assert all(re.search(r"ISAKMP: ignoring request to send delete notify \(no ISAKMP sa\) src", ln) for ln in lines)


def test_a_receiver_behind_nat_logs_its_inside_address() -> None:
    fleet = default_fleet(["desync-nat-t"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync-nat-t")
    rx, tx = fleet.routers[info.receiver], fleet.routers[info.sender]
    assert rx.spec.wan_ip != rx.spec.public_ip and ipaddress.ip_address(rx.spec.wan_ip).is_private
    step(fleet, 31)  # just after the first line (recovery or DPD may renew the SAs later)
    src, dst, spi = flow_of([ln for ln in rx.log.lines() if INV_SPI in ln and "srcaddr=" + info.sender_addr in ln][0])
    assert dst == rx.spec.wan_ip
    sa = priv(tx).execute(f"show crypto ipsec sa peer {rx.spec.public_ip}")
    assert f"current_peer {rx.spec.public_ip} port 4500" in sa
    assert f"current outbound spi: {spi}" in sa
    assert rx.spec.wan_ip not in sa


def test_a_desync_behind_nat_repeats_as_a_desync_does() -> None:
    # The only receiver behind NAT in a 6-router fleet has invalid-spi-recovery drawn on and
    # a static NHRP mapping, where recovery applies: the first line would resync the tunnel.
    # The scenario is a flow that repeats: its receiver is one without recovery configured.
    fleet = default_fleet(["desync-nat-t"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync-nat-t")
    rx = fleet.routers[info.receiver]
    assert info.recovery is False and "invalid-spi-recovery" not in priv(rx).execute("show running-config")
    step(fleet, 95)  # lines at 30 s and 90 s (one a minute per flow); the sender's DPD gives up later
    assert sum(INV_SPI in ln and "srcaddr=" + info.sender_addr in ln for ln in rx.log.lines()) == 2


def test_scanners_hit_public_addresses_from_sources_that_are_no_peer() -> None:
    fleet = default_fleet()
    step(fleet, 4 * 3600)
    known = fleet_addresses(fleet)
    scans = [
        (name, flow_of(ln))
        for name, r in fleet.routers.items()
        for ln in r.log.lines()
        if INV_SPI in ln
    ]
    assert scans
    for name, (src, dst, _spi) in scans:
        assert src not in known and ipaddress.ip_address(src).is_global
        assert dst == fleet.routers[name].spec.public_ip


def test_a_desync_already_under_way_at_start() -> None:
    fleet = default_fleet(["desync-under-way"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync-under-way")
    rx = fleet.routers[info.receiver]
    flow = [ln for ln in rx.log.lines() if INV_SPI in ln and f"srcaddr={info.sender_addr}" in ln]
    assert len(flow) >= 3  # several lines of the flow before anyone looks
    assert len(flow) == int(UNDER_WAY_SECONDS // 60)
    step(fleet, 30)  # the flow keeps its once-a-minute cadence after start
    assert len([ln for ln in rx.log.lines() if INV_SPI in ln and f"srcaddr={info.sender_addr}" in ln]) == len(flow) + 1


def test_several_broken_spokes_on_one_hub_with_ikev1_and_ikev2() -> None:
    fleet = default_fleet(["desync-hub"])
    broken = [p for p in fleet.pairs() if p.scenario == "desync-hub"]
    assert len(broken) >= 2 and len({p.receiver for p in broken}) == 1
    assert {p.ike_version for p in broken} == {1, 2}
    step(fleet, 40)
    rx = fleet.routers[broken[0].receiver]
    sources = {flow_of(ln)[0] for ln in rx.log.lines() if INV_SPI in ln}
    assert {p.sender_addr for p in broken} <= sources


def test_a_flow_stops_when_the_senders_sa_expires() -> None:
    fleet = default_fleet(["desync-expiring"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync-expiring")
    rx = fleet.routers[info.receiver]

    def count() -> int:
        return sum(INV_SPI in ln and f"srcaddr={info.sender_addr}" in ln for ln in rx.log.lines())

    step(fleet, 200)
    assert count() >= 3
    step(fleet, 600)
    stopped = count()
    step(fleet, 600)
    assert count() == stopped
    assert fleet.tunnel(info.id).recoveries[-1][1] == "sender SA lifetime expired"
