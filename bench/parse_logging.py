"""Benchmark 5: `show logging` of 100,000 lines (~10 MB, debug output included) into events
and timeline, vs ntc-templates' `parse_output` on the same text.

The text comes from the lab's own model (no SSH needed): the receiving hub of a `desync`
tunnel in a 200-router lab (~50 tunnels) with a big debugging buffer and crypto debugs
on, its clock stepped an hour at a time until the buffer holds the wanted number of lines
(rekey debugs, invalid-SPI lines, continuation lines of multi-line debugs).

collector side, what the agent and the bundle writer do with such a capture:
  - events: every `RECVD_PKT_INV_SPI` line validated into an InvalidSpiEvent
    (the poll path: substring pre-filter, then `parse_invalid_spi`)
  - timeline: `build_timeline` (every record via `iter_log_records`, year fixing,
    clock-offset shift, time order)
ntc side: `ntc_templates.parse.parse_output(platform="cisco_ios", command="show logging")`.

Target: at least 10 times ntc-templates' throughput (lines a second).

    .venv/bin/python bench/parse_logging.py [--lines 100000] [--repeat 5] [--ntc-repeat 2] [--sparse] [--json FILE]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

from _common import OtherLoad, median, print_machine, save_json, verdict

TARGET_FACTOR = 10.0


def lab_show_logging(lines_wanted: int, sparse: bool = False) -> tuple[str, str]:
    """(router name, `show logging` text) with at least `lines_wanted` buffer lines.

    `sparse`: a hub of a 6-router lab, a lab day per step: the buffer spans ~10 weeks and
    crosses New Year, which sends the parser through its year roll-over path."""
    from collector.lab.fleet import Fleet

    # A hub of a 200-router lab terminates ~50 tunnels: its debug output fills 10 MB within
    # lab days, as a busy hub's does, rather than over months (no year roll-over in the text).
    # A fixed start keeps the text the same whatever the date (the newest records are this year).
    this_year = datetime.now(timezone.utc).year
    start = datetime(this_year - 1, 11, 27, 8, 0) if sparse else datetime(this_year, 3, 2, 8, 0)
    fleet = Fleet.build(6 if sparse else 200, ["desync"], time_scale=0.0, start=start)
    tunnel = next(p for p in fleet.pairs() if p.scenario == "desync")
    router = fleet.routers[tunnel.receiver]
    cli = router.open_session()
    cli.execute("enable")
    if cli.prompt.rstrip().endswith("Password:"):
        cli.execute(router.enable_secret)
    for line in ("configure terminal", "logging buffered 100000000 debugging", "end",
                 "debug crypto isakmp", "debug crypto ipsec"):
        cli.execute(line)
    text = ""
    for _ in range(400):
        fleet.clock.step(86400 if sparse else 3600)
        fleet.tick()
        text = cli.execute("show logging")
        body = text.split("Log Buffer (", 1)[-1]
        if body.count("\n") >= lines_wanted:
            break
    return router.name, text


def ours(text: str, router: str, year: int) -> dict:
    from collector.detect.logline import parse_invalid_spi
    from collector.command_results import CommandResult
    from collector.evidence import RouterCapture, build_timeline

    t0 = time.perf_counter()
    now = datetime.now(timezone.utc)
    events = []
    for line in text.splitlines():
        if "RECVD_PKT_INV_SPI" in line:
            event = parse_invalid_spi(line, router=router, source="poll", received_at=now, year=year)
            if event is not None:
                events.append(event)
    t1 = time.perf_counter()
    record = CommandResult(router, "show logging", text, now, now)
    capture = RouterCapture(router, "receiver", "cisco_ios", "192.0.2.1", (record,), clock_offset=0.5)
    timeline = build_timeline((capture,), year=year)
    t2 = time.perf_counter()
    return {"events": len(events), "timeline_rows": len(timeline), "events_s": t1 - t0, "timeline_s": t2 - t1,
            "total_s": t2 - t0}


def ntc(text: str) -> dict:
    from ntc_templates.parse import parse_output

    t0 = time.perf_counter()
    rows = parse_output(platform="cisco_ios", command="show logging", data=text)
    return {"rows": len(rows), "total_s": time.perf_counter() - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of the collector side")
    parser.add_argument("--ntc-repeat", type=int, default=2, help="timed runs of ntc-templates")
    parser.add_argument("--sparse", action="store_true",
                        help="a buffer spanning ~10 weeks across New Year (year roll-over path)")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    load = OtherLoad()
    results: dict = {"benchmark": "parse_logging", "machine": print_machine(), "target_factor": TARGET_FACTOR}

    t0 = time.perf_counter()
    router, text = lab_show_logging(args.lines, args.sparse)
    lines = text.count("\n")
    inv_spi = text.count("RECVD_PKT_INV_SPI")
    debug = sum(1 for line in text.splitlines() if "ISAKMP" in line or "IPSEC" in line)
    print(f"input: `show logging` of {router} from the lab model: {lines} lines, {len(text) / 2**20:.1f} MiB, "
          f"{inv_spi} invalid-SPI lines, {debug} debug lines (built in {time.perf_counter() - t0:.0f} s)")
    year = datetime.now(timezone.utc).year

    runs = [ours(text, router, year) for _ in range(args.repeat)]
    best = runs[0]
    ours_s = median([r["total_s"] for r in runs])
    print(f"  collector: {ours_s:.3f} s median of {args.repeat} (events {median([r['events_s'] for r in runs]):.3f} s, "
          f"timeline {median([r['timeline_s'] for r in runs]):.3f} s) -> {lines / ours_s:,.0f} lines/s; "
          f"{best['events']} events, {best['timeline_rows']} timeline records")
    ntc_runs = [ntc(text) for _ in range(args.ntc_repeat)]
    ntc_s = median([r["total_s"] for r in ntc_runs])
    print(f"  ntc-templates parse_output: {ntc_s:.3f} s median of {args.ntc_repeat} -> {lines / ntc_s:,.0f} lines/s; "
          f"{ntc_runs[0]['rows']} rows")
    factor = ntc_s / ours_s
    events_ok = best["events"] == inv_spi
    ok = factor >= TARGET_FACTOR and events_ok
    print(f"\nresult: {lines / ours_s:,.0f} vs {lines / ntc_s:,.0f} lines/s = {factor:.1f}x ntc-templates "
          f"(target >= {TARGET_FACTOR:.0f}x); every invalid-SPI line an event: {events_ok} -> {verdict(ok)}")
    results.update(lines=lines, bytes=len(text), invalid_spi_lines=inv_spi, collector=runs, ntc=ntc_runs,
                   collector_s=ours_s, ntc_s=ntc_s, collector_lines_per_s=lines / ours_s,
                   ntc_lines_per_s=lines / ntc_s, factor=factor, verdict=verdict(ok))
    results["other_load"] = load.report()
    save_json(args.json, results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
