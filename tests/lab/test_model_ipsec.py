"""The SA model: SPIs agree between peers, rekeys, and the fault scenarios."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from test_model_helpers import build, configure, flow_of, inv_spi_lines, priv, step

from collector.lab.ipsec import LINGER_SECONDS, SOFT_LIFETIME


def _spis(text: str) -> tuple[list[str], list[str], str]:
    """(inbound SPIs, outbound SPIs, current outbound) from show crypto ipsec sa output."""
    inbound: list[str] = []
    outbound: list[str] = []
    target = None
    for line in text.splitlines():
        if "inbound esp sas:" in line:
            target = inbound
        elif "outbound esp sas:" in line:
            target = outbound
        elif re.search(r"(inbound|outbound) (ah|pcp) sas:", line):
            target = None
        m = re.match(r"\s+spi: (0x[0-9A-F]+)\(\d+\)", line)
        if m and target is not None:
            target.append(m.group(1))
    current = re.search(r"current outbound spi: (0x[0-9A-F]+)", text)
    return inbound, outbound, current.group(1) if current else ""


def _sa_view(fleet, router: str, peer: str) -> tuple[list[str], list[str], str]:
    return _spis(priv(fleet.routers[router]).execute(f"show crypto ipsec sa peer {peer}"))


def test_spis_agree_between_the_two_ends_of_every_tunnel() -> None:
    fleet = build()
    for info in fleet.pairs():
        a_in, a_out, a_cur = _sa_view(fleet, info.a, info.b_addr)
        b_in, b_out, b_cur = _sa_view(fleet, info.b, info.a_addr)
        assert a_in and b_in, info.id
        assert a_in == b_out and b_in == a_out, info.id
        assert a_cur == b_in[-1] and b_cur == a_in[-1], info.id


def test_rekey_creates_new_spis_and_the_old_sa_lingers_briefly() -> None:
    fleet = build()
    info = fleet.pairs()[1]
    tunnel = fleet.tunnel(info.id)
    gen = tunnel.ends[0].sa
    rekey_at = gen.established + SOFT_LIFETIME * gen.lifetime
    before_in, _, _ = _sa_view(fleet, info.a, info.b_addr)
    step(fleet, rekey_at + 1)
    a_in, a_out, a_cur = _sa_view(fleet, info.a, info.b_addr)
    b_in, b_out, b_cur = _sa_view(fleet, info.b, info.a_addr)
    assert a_in[0] == before_in[0] and len(a_in) == 2  # old first, then the new one
    assert a_in == b_out and b_in == a_out
    assert a_cur == b_in[-1] and a_cur != before_in[0]
    step(fleet, LINGER_SECONDS)
    a_in2, _, _ = _sa_view(fleet, info.a, info.b_addr)
    assert a_in2 == [a_in[-1]]


def test_lifetimes_count_down_with_the_lab_clock() -> None:
    fleet = build()
    s = priv(fleet.routers["spoke1"])

    def remaining() -> int:
        text = s.execute("show crypto ipsec sa")
        return int(re.search(r"remaining key lifetime \(k/sec\): \(\d+/(\d+)\)", text).group(1))

    first = remaining()
    step(fleet, 100)
    assert remaining() == first - 100


def test_desync_logs_the_same_flow_once_per_lab_minute() -> None:
    fleet = build(scenarios=["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    assert info.persistent and info.recovery is False and not info.sender_dpd
    receiver = fleet.routers[info.receiver]
    sender_out = _sa_view(fleet, info.sender, info.receiver_addr)[2]
    step(fleet, 29)
    assert inv_spi_lines(receiver) == []
    step(fleet, 91)  # lab start + 120 s
    lines = inv_spi_lines(receiver)
    assert len(lines) == 2
    assert {flow_of(line) for line in lines} == {(info.sender_addr, info.receiver_addr, sender_out)}
    assert "10:40:30" in lines[0] and "10:41:30" in lines[1]
    step(fleet, 30)
    assert len(inv_spi_lines(receiver)) == 2  # rate limited: nothing new within the minute
    step(fleet, 30)
    assert len(inv_spi_lines(receiver)) == 3
    # the sender keeps its SA and keeps encrypting; the receiver has none for the flow
    assert _sa_view(fleet, info.sender, info.receiver_addr)[2] == sender_out


def test_desync_ends_when_the_senders_sa_reaches_its_lifetime() -> None:
    fleet = build(scenarios=["desync"])
    info = next(p for p in fleet.pairs() if p.scenario == "desync")
    tunnel = fleet.tunnel(info.id)
    gen = tunnel.ends[tunnel.sender].sa
    step(fleet, gen.established + SOFT_LIFETIME * gen.lifetime + 5)
    count = len(inv_spi_lines(fleet.routers[info.receiver]))
    assert tunnel.fault is None and tunnel.recoveries[-1][1] == "sender SA lifetime expired"
    step(fleet, 600)
    assert len(inv_spi_lines(fleet.routers[info.receiver])) == count
    a_in, a_out, _ = _sa_view(fleet, info.a, info.b_addr)
    b_in, b_out, _ = _sa_view(fleet, info.b, info.a_addr)
    assert a_in == b_out and b_in == a_out


def _lines_per_flow(fleet, router: str) -> Counter:
    return Counter(flow_of(line)[:2] for line in inv_spi_lines(fleet.routers[router]))


def test_recovery_follows_the_115801_table() -> None:
    fleet = build(scenarios=["desync:7"])  # every tunnel of the six routers
    infos = {p.id: p for p in fleet.pairs()}
    # seed 0: the plan's view of each receiver
    assert [infos[t].recovery for t in ("t1", "t2", "t3", "t4", "t5")] == [False, False, None, False, True]
    # configuring the command where it does not apply changes nothing
    configure(fleet.routers["hub1"], "crypto isakmp invalid-spi-recovery")
    step(fleet, 300)
    per_flow = Counter()
    for name in ("hub1", "hub2"):
        per_flow.update(_lines_per_flow(fleet, name))

    def lines(tid: str) -> int:
        p = infos[tid]
        return per_flow[(p.sender_addr, p.receiver_addr)]

    assert lines("t1") == 5  # dynamic crypto map receiver: never recovers
    assert lines("t2") == 5  # DMVPN hub (dynamic NHRP): recovery configured but does not apply
    assert lines("t3") == 5  # IKEv2: not applicable
    assert lines("t5") == 1  # GRE P2P with recovery: one line, then new SAs
    assert fleet.tunnel("t5").recoveries[0][1] == "invalid-spi-recovery"
    assert lines("t4") == 3  # EzVPN server side: no recovery, the sender's DPD (30 s x 5) ends it
    assert fleet.tunnel("t4").recoveries[0][1] == "DPD"
    for tid in ("t4", "t5"):
        p = infos[tid]
        a_in, a_out, _ = _sa_view(fleet, p.a, p.b_addr)
        b_in, b_out, _ = _sa_view(fleet, p.b, p.a_addr)
        assert a_in and a_in == b_out and b_in == a_out


def test_removing_recovery_and_dpd_from_the_cli_makes_a_desync_persist() -> None:
    fleet = build(scenarios=["desync:7"])  # every tunnel of the six routers
    p = next(i for i in fleet.pairs() if i.id == "t5")
    configure(fleet.routers[p.receiver], "no crypto isakmp invalid-spi-recovery")
    configure(fleet.routers[p.sender], "no crypto isakmp keepalive")
    assert "crypto isakmp invalid-spi-recovery" not in priv(fleet.routers[p.receiver]).execute("show run")
    step(fleet, 300)
    assert _lines_per_flow(fleet, p.receiver)[(p.sender_addr, p.receiver_addr)] == 5
    assert fleet.tunnel("t5").fault == "desync"


def test_dpd_on_the_sender_tears_a_desync_down_after_interval_times_retries() -> None:
    fleet = build(scenarios=["desync"])
    p = next(i for i in fleet.pairs() if i.scenario == "desync")
    configure(fleet.routers[p.sender], "crypto isakmp keepalive 10 3 periodic")
    step(fleet, 300)
    assert len(inv_spi_lines(fleet.routers[p.receiver])) == 1
    when, reason = fleet.tunnel(p.id).recoveries[0]
    assert reason == "DPD" and 60 <= when <= 61  # desync at 30 s + 10 s * 3


def test_rekey_transient_logs_exactly_once() -> None:
    fleet = build(scenarios=["rekey-transient"])
    p = next(i for i in fleet.pairs() if i.scenario == "rekey-transient")
    receiver = fleet.routers[p.receiver]
    step(fleet, 89)
    assert inv_spi_lines(receiver) == []
    step(fleet, 2)
    lines = inv_spi_lines(receiver)
    assert len(lines) == 1
    src, dst, spi = flow_of(lines[0])
    assert (src, dst) == (p.sender_addr, p.receiver_addr)
    # the SPI is the new one, which the receiver has since installed
    assert spi == _sa_view(fleet, p.receiver, p.sender_addr)[0][-1]
    step(fleet, 2 * 3600 + 60)  # more rekeys follow, all clean
    assert len(inv_spi_lines(receiver)) == 1


def _qfp(session, command: str, row: str) -> int:
    text = session.execute(command)
    m = re.search(rf"^\s*(?:\d+\s+)?{row}\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def test_asr_silent_moves_only_qfp_counters() -> None:
    fleet = build(scenarios=["asr-silent"])
    p = next(i for i in fleet.pairs() if i.scenario == "asr-silent")
    receiver = fleet.routers[p.receiver]
    assert receiver.model.startswith("ASR1")
    s = priv(receiver)
    drops = "show platform hardware qfp active feature ipsec datapath drops"
    stats = "show platform hardware qfp active statistics drop"
    assert _qfp(s, drops, "IN_US_V4_PKT_SA_NOT_FOUND_SPI") == 0
    step(fleet, 120)
    first = (_qfp(s, drops, "IN_US_V4_PKT_SA_NOT_FOUND_SPI"), _qfp(s, stats, "IpsecInput"))
    step(fleet, 120)
    second = (_qfp(s, drops, "IN_US_V4_PKT_SA_NOT_FOUND_SPI"), _qfp(s, stats, "IpsecInput"))
    assert 0 < first[0] < second[0] and 0 < first[1] < second[1]
    assert first[0] == first[1]
    assert inv_spi_lines(receiver) == []
    assert "RECVD_PKT_INV_SPI" not in "".join(receiver.drain_syslog())


def test_nat_t_silent_old_ios_drops_without_logging() -> None:
    fleet = build(scenarios=["nat-t-silent"])
    p = next(i for i in fleet.pairs() if i.scenario == "nat-t-silent")
    receiver = fleet.routers[p.receiver]
    assert receiver.spec.platform.version.startswith("12.4") and p.nat_t
    s = priv(receiver)

    def invalid() -> int:
        text = s.execute(f"show crypto ipsec sa peer {p.sender_addr} detail")
        assert "port 4500" in text
        return int(re.search(r"#pkts invalid sa \(rcv\) (\d+)", text).group(1))

    assert invalid() == 0
    step(fleet, 60)
    first = invalid()
    text = s.execute("show crypto ipsec sa")
    assert "current outbound spi: 0x0(0)" in text and "#recv errors" in text
    step(fleet, 60)
    assert 0 < first < invalid()
    assert inv_spi_lines(receiver) == []


def test_clear_crypto_sa_renegotiates_with_new_spis() -> None:
    fleet = build()
    p = fleet.pairs()[0]
    before = _sa_view(fleet, p.a, p.b_addr)[0]
    priv(fleet.routers[p.a]).execute(f"clear crypto sa peer {p.b_addr}")
    step(fleet, 2)
    after_a = _sa_view(fleet, p.a, p.b_addr)
    after_b = _sa_view(fleet, p.b, p.a_addr)
    assert after_a[0] != before and after_a[0] == after_b[1]


@pytest.mark.parametrize("scenarios", [["mix"], ["desync:2", "healthy:2"]])
def test_scenario_claims_are_deterministic(scenarios) -> None:
    one = [(p.id, p.scenario, p.sender) for p in build(scenarios=scenarios).pairs()]
    two = [(p.id, p.scenario, p.sender) for p in build(scenarios=scenarios).pairs()]
    assert one == two
