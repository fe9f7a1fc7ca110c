"""Benchmark 6: bytes and reader CPU per log poll on a full 10 MB buffer: the whole
`show logging` vs the filtered poll `show logging | include Log.Buffer|Buffer.logging|<watched>`.

The buffer comes from the lab's own logging model (collector/lab/logbuf.py: byte-accurate
wrap, header counters) filled with a busy router's ordinary traffic (LINEPROTO, LINK, BGP,
OSPF, DMVPN/NHRP, AAA, config messages) and a desynchronised flow's invalid-SPI lines with
`service timestamps log uptime` (byte-identical lines). The filtered text is what the lab's
SSH server prints for that command (collector/lab/filters.py, IOS `include` semantics).
Each poll is then read with collector.detect.logread: a full read (exact by counts), then
filtered reads, checked to report exactly the invalid-SPI lines logged in between.

Target: every filtered poll moves at most 1/100 of the full poll's bytes (its size grows
with the watched lines the buffer holds, not with the buffer), and the reader reports the
same invalid-SPI lines from both.

    .venv/bin/python bench/poll_bytes.py [--buffer 10000000] [--per-poll 600] [--polls 6] [--quiet 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta

from _common import print_machine, save_json, verdict

from collector.detect.logread import LogPosition, poll_command, read_new_lines, split_show_logging
from collector.lab.filters import apply_filters, split_filters
from collector.lab.logbuf import RouterLog, TimestampFormat

WATCH = ["CRYPTO-4-RECVD_PKT_INV_SPI"]
TARGET_RATIO = 1 / 100
INV_SPI = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr=203.0.113.1, "
           "prot=50, spi=0x68842105(1753489669), srcaddr=198.51.100.7, input interface=GigabitEthernet0/0/1")
TRAFFIC = (
    (5, "%LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet0/0/{n}, changed state to {updown}"),
    (3, "%LINK-3-UPDOWN: Interface GigabitEthernet0/0/{n}, changed state to {updown}"),
    (5, "%BGP-5-ADJCHANGE: neighbor 10.{n}.0.1 {UpDown}"),
    (5, "%OSPF-5-ADJCHG: Process 1, Nbr 10.255.{n}.1 on Tunnel{n} from LOADING to FULL, Loading Done"),
    (5, "%DMVPN-5-NHRP_NHS_UP: Tunnel{n}: Next Hop Server : (Tunnel: 10.0.0.{n} NBMA: 198.51.100.{n}) for (Tunnel: 10.0.0.1 NBMA: 203.0.113.1) is UP"),
    (5, "%NHRP-5-NHRP_RES_REQUEST: Tunnel{n}: resolution request from 10.0.0.{n}"),
    (6, "%AAA-6-ACCT_START: User admin{n} logged in from 10.9.{n}.4 via vty0"),
    (5, "%SYS-5-CONFIG_I: Configured from console by admin{n} on vty0 (10.9.{n}.4)"),
    (6, "%SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: admin{n}] [Source: 10.9.{n}.4] [localport: 22] at 10:41:07 UTC Sun Dec 6 2026"),
)


def busy_router(buffer_bytes: int) -> RouterLog:
    return RouterLog(
        buffer_size=buffer_bytes, buffer_level="debugging", console_level=None, monitor_level=None,
        trap_level="informational", hosts=[("192.0.2.50", 514)],
        log_format=TimestampFormat(kind="uptime"), debug_format=TimestampFormat(kind="uptime"),
        sequence_numbers=False, ntp_synced=True, doubled_colon=False,
        boot_time=datetime(2026, 10, 1), xe=True,
    )


def log_traffic(log: RouterLog, when: datetime, count: int, rnd: random.Random,
                inv_every: int) -> tuple[datetime, int, int]:
    """Log `count` messages; every `inv_every`-th is the flow's invalid-SPI line. Returns the
    clock, how many invalid-SPI lines were logged and the bytes logged."""
    inv = nbytes = 0
    for i in range(count):
        when += timedelta(milliseconds=97)
        if inv_every and i % inv_every == inv_every - 1:
            nbytes += len(log.emit(when, 4, INV_SPI)) + 1
            inv += 1
            continue
        severity, template = rnd.choice(TRAFFIC)
        n = rnd.randrange(1, 48)
        nbytes += len(log.emit(when, severity, template.format(n=n, updown=rnd.choice(("up", "down")),
                                                               UpDown=rnd.choice(("Up", "Down"))))) + 1
    return when, inv, nbytes


def filtered_text(full: str, command: str) -> str:
    _, filters = split_filters(command)
    return apply_filters(full, filters, lambda *a: None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buffer", type=int, default=10_000_000, help="logging buffered size in bytes")
    ap.add_argument("--per-poll", type=int, default=600, help="messages logged between two polls")
    ap.add_argument("--polls", type=int, default=6)
    ap.add_argument("--quiet", type=int, default=2, help="polls before the invalid-SPI flow starts")
    ap.add_argument("--json")
    args = ap.parse_args()
    print_machine()
    rnd = random.Random(7)
    log = busy_router(args.buffer)
    command = poll_command(WATCH)
    when = datetime(2026, 12, 6, 8, 0)
    # Fill past one wrap so that the buffer is full and its head is a cut fragment.
    filled = 0
    while filled < args.buffer * 1.2:  # past one wrap: the buffer is full, its head a cut fragment
        when, _, nbytes = log_traffic(log, when, 5_000, rnd, inv_every=0)
        filled += nbytes

    full = log.show()
    t0 = time.process_time()
    header, lines = split_show_logging(full)
    first = read_new_lines(None, header, lines, watch=WATCH)
    full_cpu = time.process_time() - t0
    position: LogPosition = first.position
    print(f"buffer: {header.buffer_bytes} bytes, {len(lines)} lines, {header.logged} messages logged")
    print(f"command (before): show logging")
    print(f"command (after):  {command}")
    print(f"first poll, whole buffer: {len(full.encode()):,} bytes, reader {full_cpu * 1000:.0f} ms CPU")

    rows = []
    ok = True
    for poll in range(args.polls):
        # a quiet router for the first polls, then a desynchronised flow: identical lines
        flow = poll >= args.quiet
        when, logged_inv, _ = log_traffic(log, when, args.per_poll, rnd, inv_every=60 if flow else 0)
        full = log.show()
        text = filtered_text(full, command)
        t0 = time.process_time()
        header, lines = split_show_logging(text)
        result = read_new_lines(position, header, lines, watch=WATCH, filtered=True)
        filtered_cpu = time.process_time() - t0
        # the same poll read whole, from the same position: the reference answer
        t0 = time.process_time()
        fh, fl = split_show_logging(full)
        reference = read_new_lines(position, fh, fl, watch=WATCH)
        whole_cpu = time.process_time() - t0
        want = [n.text for n in reference.new_lines if "RECVD_PKT_INV_SPI" in n.text]
        if result.full_read_needed:
            got, position = want, reference.position
            note = f"full read needed: {result.full_read_needed}"
        else:
            got, position = [n.text for n in result.new_lines], result.position
            note = result.method
        same = got == want and len(got) == logged_inv
        ok &= same
        rows.append({"poll": poll + 1, "full_bytes": len(full.encode()), "filtered_bytes": len(text.encode()),
                     "full_reader_ms": round(whole_cpu * 1000, 1), "filtered_reader_ms": round(filtered_cpu * 1000, 2),
                     "inv_spi_logged": logged_inv, "inv_spi_reported": len(got), "same_as_full_read": same,
                     "method": note})
        print(f"poll {poll + 1}: full {len(full.encode()):,} B ({whole_cpu * 1000:.0f} ms)  filtered "
              f"{len(text.encode()):,} B ({filtered_cpu * 1000:.1f} ms)  inv-SPI logged {logged_inv}, "
              f"reported {len(got)} [{note}]")
    worst = max(r["filtered_bytes"] / r["full_bytes"] for r in rows)
    met = ok and worst <= TARGET_RATIO
    print(f"filtered/full bytes, worst poll: {worst:.6f} (target <= {TARGET_RATIO:.4f}); "
          f"same lines as the full read: {ok}")
    print(verdict(met))
    if args.json:
        save_json(args.json, {"buffer_bytes": args.buffer, "per_poll": args.per_poll, "command": command,
                              "rows": rows, "worst_ratio": worst, "met": met})
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
