"""`collector worker --syslog`: each site's worker receives its own routers' syslog over
real UDP and forwards the invalid-SPI hints to the correlator, which detects the flow
from them (its log polls are too slow to) and arms, captures and disarms through the sites."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from collector.demo import demo_playbook
from collector.detect.syslog_receiver import SyslogHint
from collector.inventory import load_inventory
from collector.scaleout.syslog_relay import HINTS, SyslogForwarder, SyslogRelay
from collector.watch import WatchOptions, run_daemon
from tests.e2e.test_agent_lab import bundles, router_leftovers
from tests.scaleout.sites import WorkerProcess, site_labs, wait_for_workers
from tests.scaleout.test_scaleout_sites import LabClock, cursors

INVENTORY = """\
defaults: {username: lab, password: lab-pw}
hosts:
  hub1: {hostname: 127.0.0.1, port: 9, platform: cisco_ios, site: east, addresses: [127.20.0.1]}
  spoke1: {hostname: 127.0.0.1, port: 10, platform: cisco_ios, site: west, addresses: [127.20.0.3]}
"""
LINE = (b"<131>12: *Nov 27 10:41:07.123: %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has "
        b"invalid spi for destaddr=198.51.100.1, prot=50, spi=0x1A2B3C4D(439041101), srcaddr=192.0.2.3")


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def syslog_events(state: Path) -> list[tuple[str, str]]:
    """(router, raw line) of the events the correlator recorded from syslog."""
    conn = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT router, raw FROM events WHERE source = 'syslog'").fetchall()
    finally:
        conn.close()


def test_the_correlator_takes_only_hints_a_router_of_the_forwarding_site_could_have_sent(tmp_path, redis_url):
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    inventory = load_inventory(path)
    client = redis.Redis.from_url(redis_url)
    taken: list[SyslogHint] = []
    east = SyslogForwarder(client, "east")
    east(SyslogHint("hub1", "127.20.0.1", LINE))  # its own router
    east(SyslogHint("spoke1", "127.20.0.3", LINE))  # a router of another site
    east(SyslogHint("hub1", "127.20.0.3", LINE))  # an address that is not hub1's
    east(SyslogHint("hub1", "127.20.0.1", b"<189>%SYS-5-CONFIG_I: Configured"))  # not invalid-SPI
    client.rpush(HINTS, b"not json")
    relay = SyslogRelay(redis_url, inventory, taken.append).start()
    try:
        deadline = time.monotonic() + 10
        while relay.stats.delivered + relay.stats.refused < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        relay.stop()
        client.close()
    assert taken == [SyslogHint("hub1", "127.20.0.1", LINE)]
    assert (relay.stats.delivered, relay.stats.refused, east.stats.forwarded) == (1, 4, 4)


def test_forwarded_message_carries_the_datagram_byte_for_byte(redis_url):
    client = redis.Redis.from_url(redis_url)
    try:
        SyslogForwarder(client, "east")(SyslogHint("hub1", "127.20.0.1", LINE + b"\xff"))
        message = json.loads(client.lpop(HINTS))
    finally:
        client.close()
    assert base64.b64decode(message["data"]) == LINE + b"\xff"
    assert (message["site"], message["router"], message["source"]) == ("east", "hub1", "127.20.0.1")


@pytest.mark.e2e
def test_desync_detected_from_syslog_received_by_the_site_workers(tmp_path, redis_url):
    ports = {"east": udp_port(), "west": udp_port()}
    book = demo_playbook()  # log polls every 10 minutes: only the forwarded syslog can find the flow in time
    sources = book.sources.model_copy(update={
        "poll": book.sources.poll.model_copy(update={"interval": timedelta(minutes=10)}),
        "qfp": book.sources.qfp.model_copy(update={"enabled": False}),
    })
    book = book.model_copy(update={"sources": sources})
    out, state = tmp_path / "bundles", tmp_path / "state"
    messages: list[str] = []
    stop = threading.Event()
    syslog = {site: f"127.0.0.1:{port}" for site, port in ports.items()}
    with site_labs(tmp_path, routers=6, scenarios=("desync",), time_scale=0, syslog=syslog) as labs:
        workers = {site: WorkerProcess(site, redis_url, labs.inventory_path, tmp_path,
                                       extra=("--syslog", syslog[site])).start() for site in ports}
        options = WatchOptions(state_dir=state, bundle_root=out, workers=8, max_seconds=200, broker=redis_url)
        thread = threading.Thread(target=run_daemon, args=(load_inventory(labs.inventory_path), book, options,
                                                           messages.append, stop))
        clock = LabClock(labs)
        try:
            wait_for_workers(redis_url, list(workers))
            thread.start()
            deadline = time.monotonic() + 150
            while sum(len(cursors(w.state)) for w in workers.values()) < 6:  # the start-up poll
                assert time.monotonic() < deadline and thread.is_alive(), messages
                time.sleep(0.2)
            clock.start()
            while not bundles(out):
                assert time.monotonic() < deadline and thread.is_alive(), (
                    messages, workers["east"].output()[-2000:])
                time.sleep(0.5)
        finally:
            clock.stop()
            stop.set()
            if thread.ident is not None:
                thread.join(timeout=60)
            for worker in workers.values():
                worker.stop()
        [bundle] = bundles(out)
        manifest = json.loads((bundle / "manifest.json").read_text())
        receiver = manifest["flow"]["receiver"]
        assert manifest["complete"] is True, manifest["incomplete_reasons"]
        # the correlator received no UDP itself: these came from the receiver's site worker
        events = syslog_events(state)
        assert all("RECVD_PKT_INV_SPI" in raw for _router, raw in events)
        # the flow's lines came from its receiver only; other invalid-SPI lines (internet
        # scanners hitting the spokes' public addresses) were recorded under their own routers
        flow_lines = [router for router, raw in events if f"srcaddr={manifest['flow']['srcaddr']}" in raw]
        assert flow_lines and set(flow_lines) == {receiver}
        assert {router for router, _raw in events} <= set(load_inventory(labs.inventory_path).hosts)
        [taken] = [m for m in messages if m.startswith("syslog from the sites:")]
        assert not taken.startswith("syslog from the sites: 0 hints") and "0 refused" in taken, taken
        for router in {r["name"] for r in manifest["routers"]}:
            assert router_leftovers(labs, router) == []


@pytest.mark.parametrize("address, said", [
    ("nope", "--syslog wants HOST:PORT, not 'nope'"),
    ("192.0.2.1:5514", "--syslog 192.0.2.1:5514: cannot listen there"),  # not an address of this machine
])
def test_a_worker_syslog_address_it_cannot_use_is_one_line_and_exit_2(tmp_path, redis_url, address, said):
    from click.testing import CliRunner

    from collector.cli import cli

    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    result = CliRunner().invoke(cli, ["worker", "-i", str(path), "--site", "east", "--broker", redis_url,
                                      "--state", str(tmp_path / "site"), "--syslog", address])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("collector: error:") and said in lines[0], result.output
