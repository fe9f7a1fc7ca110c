"""The reader against the lab's own CLI, in process (no SSH): the filtered poll command is
accepted by the lab's `| include`, and on a desynchronised flow with uptime stamps (every
line byte-identical) the filtered reads report exactly what a full read from the same
position reports."""

from __future__ import annotations

from datetime import datetime

import pytest

from collector.detect.logread import poll_command, read_new_lines, split_show_logging
from collector.lab.fleet import Fleet

WATCH = ["CRYPTO-4-RECVD_PKT_INV_SPI"]


@pytest.mark.parametrize("settings", [
    ("service timestamps log uptime", "no service sequence-numbers"),
    ("no service timestamps log", "no service sequence-numbers"),
    ("service timestamps log uptime", "service sequence-numbers"),
])
def test_filtered_polls_match_full_reads_on_the_lab(settings):
    fleet = Fleet.build(2, ["desync"], time_scale=0.0, start=datetime(2026, 3, 2, 8, 0), realism="-scanners")  # one flow only
    tunnel = next(p for p in fleet.pairs() if p.scenario == "desync")
    router = fleet.routers[tunnel.receiver]
    cli = router.open_session()
    cli.execute("enable")
    if cli.prompt.rstrip().endswith("Password:"):
        cli.execute(router.enable_secret)
    for line in ("configure terminal", *settings, "end"):
        cli.execute(line)
    fleet.clock.step(600)
    fleet.tick()
    header, lines = split_show_logging(cli.execute("show logging"))
    position = read_new_lines(None, header, lines, watch=WATCH).position
    reported = 0
    texts = set()
    for _ in range(4):
        fleet.clock.step(180)
        fleet.tick()
        out = cli.execute(poll_command(WATCH))
        assert "Invalid input" not in out and "Log Buffer (" in out
        header, lines = split_show_logging(out)
        result = read_new_lines(position, header, lines, watch=WATCH, filtered=True)
        full_header, full_lines = split_show_logging(cli.execute("show logging"))
        reference = read_new_lines(position, full_header, full_lines, watch=WATCH)
        want = [n.text for n in reference.new_lines if "RECVD_PKT_INV_SPI" in n.text]
        assert result.full_read_needed is None
        assert [n.text for n in result.new_lines] == want
        reported += len(want)
        texts.update(n.text.split(": ", 1)[-1] if settings[1].startswith("service") else n.text for n in result.new_lines)
        position = result.position
    assert reported >= 4  # one a minute per flow: the flow logged during the polls
    assert len(texts) == 1  # ...and every one of its lines was the same text
