"""`collector lab up --serve PATTERN`: one site's routers per lab process. Only the served
routers listen, are in the written inventory and send syslog; the others are modelled
(the far ends of their tunnels) but unreachable."""

from __future__ import annotations

import re
import socket
import time

import pytest
import yaml

from collector.lab.runner import running_lab
from collector.lab.settings import LabError


def received(sock: socket.socket, lab, seconds: float) -> list[tuple[str, bytes]]:
    """(source address, datagram) sent while the lab clock runs 120 lab seconds."""
    got = []
    deadline = time.monotonic() + seconds
    lab.control.step(120)
    while time.monotonic() < deadline:
        try:
            data, peer = sock.recvfrom(8192)
        except socket.timeout:
            continue
        got.append((peer[0], data))
    return got


@pytest.mark.parametrize("serve, sends_the_desync_lines", [("hub*", True), ("spoke*", False)])
def test_a_lab_process_serves_and_sends_syslog_for_its_routers_only(tmp_path, serve, sends_the_desync_lines):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    try:
        with running_lab(routers=6, scenarios=["desync"], time_scale=0, state_dir=tmp_path / "lab",
                         syslog_to=("127.0.0.1", sock.getsockname()[1]), serve=[serve]) as lab:
            served = [name for name in lab.fleet.routers if name.startswith(serve[:-1])]
            assert sorted(lab.ports) == sorted(served) and len(served) < 6
            assert sorted(yaml.safe_load(lab.inventory_path.read_text())["hosts"]) == sorted(served)
            sources = {lab.fleet.routers[name].syslog_source: name for name in lab.fleet.routers}
            peers = {lab.fleet.routers[name].spec.wan_ip for name in lab.fleet.routers}
            got = received(sock, lab, 3.0)
    finally:
        sock.close()
    senders = {sources.get(source) for source, _data in got}
    assert senders <= set(served), senders
    # the desync's receiver is hub1: its invalid-SPI lines (from a peer's address, unlike an
    # internet scanner's) leave the hubs' process only
    desync = [data for _s, data in got if b"RECVD_PKT_INV_SPI" in data
              and re.search(rb"srcaddr=([\d.]+)", data)[1].decode() in peers]
    assert bool(desync) is sends_the_desync_lines


def test_a_serve_pattern_that_matches_no_router_is_refused(tmp_path):
    with pytest.raises(LabError, match="--serve core\\*: matches no router"):
        with running_lab(routers=6, time_scale=0, state_dir=tmp_path / "lab", serve=["core*"]):
            pass
