"""Issue 14 item 8 on the lab: a desync between two routers outside UTC, over real SSH.

In the realistic lab (realism "timezones") the desync's ends are hub1, whose `show clock`
says CET/CEST while its log and debug stamps are UTC (zone printed), and spoke1, whose
`show clock` says EST/EDT and whose stamps are its local wall time with no zone at all.
The lab runs at time scale 1, so each router's clock agrees with the agent's: the bundle
must say so (offset near 0, not 1 or 5 hours), and put every line at its true instant,
in the right order against "armed" and "captured".

The true instant of each line is worked out here from the lab's zone through the IANA
database (zoneinfo), neither through the lab's own zone code nor the agent's.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from collector.demo import demo_playbook
from collector.detect.logline import parse_log_line
from collector.inventory import load_inventory
from collector.lab.runner import running_lab
from tests.e2e.test_agent_lab import bundles, router_leftovers, run_agent_until_bundles

pytestmark = pytest.mark.e2e

UTC = timezone.utc
LATE = timedelta(seconds=1)  # the lab's sender chatter is stamped 0.8 s after it is written (ipsec.py)
IANA = {"CET": "Europe/Berlin", "EST": "America/New_York", "AEST": "Australia/Sydney", "JST": "Asia/Tokyo"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def true_instant(line: str, spec, year: int) -> datetime | None:
    """When the lab logged `line`, from its stamp and the router's zone and stamp format."""
    record = parse_log_line(line, year=year)
    if record is None or record.timestamp is None or record.timestamp_text is None or ":" not in record.timestamp_text:
        return None  # no stamp, or an uptime stamp
    stamp = record.timestamp.replace(tzinfo=None)
    fmt = spec.debug_format if record.mnemonic is None else spec.log_format
    if record.tz == "UTC" or not fmt.localtime:
        return stamp.replace(tzinfo=UTC)
    return stamp.replace(tzinfo=ZoneInfo(IANA[spec.zone.name])).astimezone(UTC)


def test_a_desync_between_a_cet_hub_and_an_est_spoke_is_timed_right(tmp_path):
    # -timestamps-harsh: the spoke's debug lines carry its local stamps too (harsh: none)
    with running_lab(routers=6, scenarios=["desync"], time_scale=1, state_dir=tmp_path / "lab",
                     realism="-timestamps-harsh") as lab:
        specs = {name: router.spec for name, router in lab.fleet.routers.items()}
        messages = run_agent_until_bundles(load_inventory(lab.inventory_path), demo_playbook(), tmp_path, seconds=150)
        found = bundles(tmp_path / "bundles")
        assert found, messages
        bundle = found[0]
        manifest = json.loads((bundle / "manifest.json").read_text())
        roles = {r["role"]: r for r in manifest["routers"]}
        names = {roles["receiver"]["name"], roles["sender"]["name"]}
        assert names == {"hub1", "spoke1"}, names
        # the two kinds of local-time router this test is about
        assert specs["hub1"].zone.name == "CET" and not specs["hub1"].log_format.localtime
        assert specs["spoke1"].zone.name == "EST" and specs["spoke1"].log_format.localtime
        assert not specs["spoke1"].log_format.show_timezone and specs["spoke1"].debug_format.localtime
        for name in names:
            show_clock = next(c for c in manifest["commands"] if c["router"] == name and c["command"] == "show clock")
            text = (bundle / show_clock["raw"]).read_text()
            assert any(z in text for z in ("CET", "CEST", "EST", "EDT")), text  # local, not UTC
        assert manifest["complete"] is True, manifest["incomplete_reasons"]
        assert manifest["armed_before_repeat"] is True

        # the clock offsets: the lab's clocks run with the agent's (scale 1), so near 0 s
        for role in ("receiver", "sender"):
            assert abs(roles[role]["clock_offset_seconds"]) < 2.0, roles[role]
        assert abs(manifest["clock_skew_seconds"]) < 2.0
        report = (bundle / "report.md").read_text()
        # no zone's offset taken for a skew (digits of a longer number, a time's microseconds, are not one)
        assert not re.search(r"(?<![\d.])(3600|18000|14400)(?![\d])", report), report

        armed, captured = at(manifest["armed_at"]), at(manifest["captured_at"])
        read_ends = {c["router"]: at(c["ended"]) for c in manifest["commands"] if c["command"] == "show logging"}
        pre_arm = {r["router"]: at(r["read_at"]) for r in manifest["pre_arm_reads"]}
        rows = [json.loads(line) for line in (bundle / "timeline.jsonl").read_text().splitlines()]
        year = captured.year

        # every stamped line of both ends at its true instant (within the lab's tick and rounding)
        checked = {name: 0 for name in names}
        for row in rows:
            if row["router"] not in names or row["agent_time"] is None or row["time_inferred"]:
                continue
            truth = true_instant(row["line"], specs[row["router"]], year)
            if truth is None:
                continue
            assert abs((at(row["agent_time"]) - truth).total_seconds()) < 2.0, row
            checked[row["router"]] += 1
        assert all(count > 20 for count in checked.values()), checked
        # the timeline is in time order
        times = [at(r["agent_time"]) for r in rows if r["agent_time"]]
        assert times == sorted(times)

        # the flow's invalid-SPI lines: the first before arming, the repeat after it, both before the capture
        receiver = roles["receiver"]["name"]
        flow = [r for r in rows if r["router"] == receiver and "RECVD_PKT_INV_SPI" in r["line"]
                and f"srcaddr={manifest['flow']['srcaddr']}" in r["line"]]
        assert len(flow) >= 2, [r["line"] for r in flow]
        assert at(flow[0]["agent_time"]) < armed < at(flow[-1]["agent_time"]) <= read_ends[receiver]
        # each end's crypto debug lines printed since its pre-arm read: after that read, and
        # not after the capture's read of that router (the lab writes a sender's debug chatter
        # for a packet when the packet arrives, stamped 0.8 s later: LATE of slack), and some
        # between "armed" and "captured"
        for name in names:
            new_debug = [r for r in rows if r["router"] == name and r["mnemonic"] is None and r["seen_in"] == ["capture"]
                         and ("ISAKMP" in r["line"] or "IPSEC" in r["line"] or "IKEv2" in r["line"])]
            assert new_debug, name
            for r in new_debug:
                assert pre_arm[name] <= at(r["agent_time"]) <= read_ends[name] + LATE, r
            assert any(armed < at(r["agent_time"]) < captured for r in new_debug), name
        for name in names:
            assert router_leftovers(lab, name) == []
