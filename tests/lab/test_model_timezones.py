"""Routers outside UTC (realism "timezones", issue 14 item 8), as IOS shows them: UTC inside,
`show clock` in local wall time with the zone's name (the summer name in summer), log and
debug stamps in UTC unless `localtime`, naming their zone only with `show-timezone`."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from test_model_helpers import priv

from collector.lab.clock import ZONES, local_clock_text
from collector.lab.fleet import Fleet

IANA = {"CET": "Europe/Berlin", "EST": "America/New_York", "AEST": "Australia/Sydney", "JST": "Asia/Tokyo"}
WINTER = datetime(2026, 12, 6, 10, 0, 0)  # northern winter, southern summer (UTC)
SUMMER = datetime(2026, 7, 6, 10, 0, 0)


@pytest.mark.parametrize("name", sorted(ZONES))
def test_lab_zones_agree_with_the_iana_rules_over_ten_years(name):
    zone, rng = ZONES[name], random.Random(name)
    for _ in range(3000):
        utc = datetime(2020, 1, 1) + timedelta(seconds=rng.randrange(10 * 366 * 86400))
        local, shown = zone.local(utc)
        expected = utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(IANA[name]))
        assert (local, shown) == (expected.replace(tzinfo=None), expected.tzname()), utc


def fleet_at(start: datetime) -> Fleet:
    return Fleet.build(6, ["desync"], time_scale=0.0, start=start, realism="-timestamps-harsh,-big-buffers")


def newest_stamp(router, mnemonic: str) -> str:
    lines = [ln for ln in priv(router).execute("show logging").splitlines() if mnemonic in ln]
    return lines[-1]


@pytest.mark.parametrize("start, hub_zone, spoke_zone, spoke_offset", [
    (WINTER, "CET", "EST", -5), (SUMMER, "CEST", "EDT", -4)])
def test_show_clock_is_local_and_stamps_follow_localtime_and_show_timezone(start, hub_zone, spoke_zone, spoke_offset):
    fleet = fleet_at(start)
    hub, spoke, jst = fleet.routers["hub1"], fleet.routers["spoke1"], fleet.routers["spoke3"]
    hub_local = start + timedelta(hours=2 if hub_zone == "CEST" else 1)
    assert priv(hub).execute("show clock").strip() == "*" * (not hub.spec.ntp_synced) + local_clock_text(
        hub.spec.zone, start, msec=True)
    assert f" {hub_zone} " in priv(hub).execute("show clock") and f"{hub_local:%H:%M:%S}" in priv(hub).execute("show clock")
    config = priv(hub).execute("show running-config")
    assert "\nclock timezone CET 1 0\nclock summer-time CEST recurring last Sun Mar 2:00 last Sun Oct 3:00\n" in config
    assert "\nclock timezone EST -5 0\nclock summer-time EDT recurring\n" in priv(spoke).execute("show running-config")
    assert "\nclock timezone JST 9 0\n" in priv(jst).execute("show running-config")
    # a config change: the hub (show-timezone without localtime) stamps it in UTC, zone printed
    s = priv(hub)
    for line in ("configure terminal", "interface Loopback9", "description tz", "end"):
        s.execute(line)
    assert re.search(rf"{start:%b} {start.day:2d} {start:%H:%M:%S}\.\d{{3}} UTC: ", newest_stamp(hub, "%SYS-5-CONFIG_I"))
    # the spoke: `localtime` without `show-timezone`: its own wall time and no zone
    s = priv(spoke)
    for line in ("configure terminal", "interface Loopback9", "description tz", "end"):
        s.execute(line)
    local = start + timedelta(hours=spoke_offset)
    stamp = newest_stamp(spoke, "%SYS-5-CONFIG_I")
    assert re.search(rf"(^|\s|\*){local:%b} {local.day:2d} {local:%H:%M:%S}\.\d{{3}}: %SYS-5-CONFIG_I", stamp), stamp
    assert spoke_zone in priv(spoke).execute("show clock")
    # the JST spoke keeps UTC stamps without zone while its clock shows JST
    s = priv(jst)
    for line in ("configure terminal", "interface Loopback9", "description tz", "end"):
        s.execute(line)
    assert re.search(rf"{start:%b} {start.day:2d} {start:%H:%M:%S}\.\d{{3}}: %SYS-5-CONFIG_I",
                     newest_stamp(jst, "%SYS-5-CONFIG_I"))
    assert " JST " in priv(jst).execute("show clock")
