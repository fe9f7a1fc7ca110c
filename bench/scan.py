"""`collector scan` over a day-like syslog archive, side by side with `grep -c`.

Generates a realistic rsyslog archive (traditional format, 2,000 routers, mostly other
messages: interface and line-protocol changes, ACL logs, config, BGP, DHCP, SSH, with a
few invalid-SPI flows among them: repeated, transient and still going), then times the
whole command as a process, `collector scan FILE --json > /dev/null`, against
`grep -c RECVD_PKT_INV_SPI FILE` on the same file (best of --repeat runs each, file in the
page cache). The gzip-compressed copy is timed too (for information; the target is for the
plain file).

Target: at least 2,000,000 lines a second for the plain file. Prints MET or MISSED; exit 0
only when met.

    .venv/bin/python bench/scan.py [--lines 4000000] [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_LINES_PER_SECOND = 2_000_000

_INV = ("%CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi for destaddr={dst}, "
        "prot=50, spi=0x{spi:08X}({spi}), srcaddr={src}, input interface=GigabitEthernet0/0/0")
_OTHER = (
    "%LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet0/0/{n}, changed state to up",
    "%LINK-3-UPDOWN: Interface GigabitEthernet0/0/{n}, changed state to down",
    "%SEC-6-IPACCESSLOGP: list OUTSIDE-IN denied tcp 198.51.100.{n}(4{n}12) -> 203.0.113.5(22), 1 packet",
    "%SEC-6-IPACCESSLOGP: list OUTSIDE-IN denied udp 192.0.2.{n}(5{n}3) -> 203.0.113.5(161), 3 packets",
    "%SYS-5-CONFIG_I: Configured from console by netops on vty0 (10.255.0.{n})",
    "%BGP-5-ADJCHANGE: neighbor 10.200.{n}.1 Up",
    "%DHCPD-4-PING_CONFLICT: DHCP address conflict:  server pinged 10.1.{n}.77.",
    "%SSH-5-SSH2_SESSION: SSH2 Session request from 10.255.0.{n} (tty = 0) using crypto cipher 'aes256-ctr', "
    "hmac 'hmac-sha2-256' Succeeded",
    "%SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: netops] [Source: 10.255.0.{n}] [localport: 22] at "
    "08:14:07 UTC Sun Dec 6 2026",
    "%CRYPTO-5-SESSION_STATUS: Crypto tunnel is UP  .  Peer 10.9.{n}.2:500       Id: 10.9.{n}.2",
    "%OSPF-5-ADJCHG: Process 1, Nbr 10.0.{n}.1 on Tunnel{n} from LOADING to FULL, Loading Done",
)


def generate(path: Path, lines: int, seed: int = 7) -> int:
    """Write the archive; returns how many invalid-SPI lines it holds."""
    rnd = random.Random(seed)
    start = datetime(2026, 12, 6, 0, 0, 0)
    step = timedelta(days=1) / lines
    hosts = [f"rtr{n:04d}" for n in range(2000)]
    # Invalid-SPI flows: (host, src, dst, spi, first line index, count, every N lines)
    per_minute = max(1, int(lines / (24 * 60)))
    flows = []
    for k in range(40):
        count = 1 if k % 3 == 0 else rnd.randint(2, 60)  # a third transient (rekey)
        first = rnd.randint(0, lines - 1 - count * per_minute)
        flows.append((hosts[k * 7], f"10.{k}.0.2", f"10.{k}.0.1", 0x1000 + k, first, count))
    flows.append((hosts[999], "10.99.0.2", "10.99.0.1", 0xDEAD, lines - 30 * per_minute, 29))  # still going
    inv_at: dict[int, str] = {}
    for host, src, dst, spi, first, count in flows:
        for c in range(count):
            inv_at[first + c * per_minute] = host + "\x00" + _INV.format(dst=dst, src=src, spi=spi)
    others = [o.replace("{n}", str(n)) for o in _OTHER for n in range(1, 30)]
    written_inv = 0
    with open(path, "w", encoding="ascii", buffering=1 << 22) as out:
        seq = 0
        batch: list[str] = []
        for i in range(lines):
            t = start + step * i
            stamp = f"{t:%b} {t.day:2d} {t:%H:%M:%S}"
            special = inv_at.get(i)
            if special is not None:
                host, body = special.split("\x00")
                written_inv += 1
            else:
                host, body = hosts[rnd.randrange(2000)], others[rnd.randrange(len(others))]
            seq += 1
            batch.append(f"{stamp} {host} {seq}: *{stamp}.{i % 1000:03d}: {body}\n")
            if len(batch) >= 10000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
    return written_inv


def best_of(argv: list[str], repeat: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if done.returncode not in (0, 1):  # grep -c exits 1 when it counts 0
            sys.exit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        if elapsed < best:
            best, out = elapsed, done.stdout
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="Also write the figures here.")
    args = ap.parse_args()
    grep = shutil.which("grep")
    folder = Path(tempfile.mkdtemp(prefix="collector-bench-scan-"))
    try:
        plain = folder / "syslog"
        t0 = time.perf_counter()
        inv_lines = generate(plain, args.lines)
        gz = folder / "syslog.1.gz"
        with open(plain, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        size = plain.stat().st_size
        print(f"archive: {args.lines:,} lines, {size / 1e6:.0f} MB ({gz.stat().st_size / 1e6:.0f} MB gzip), "
              f"{inv_lines} invalid-SPI lines; generated in {time.perf_counter() - t0:.1f} s")

        collector = [sys.executable, "-m", "collector", "scan", "--json"]
        scan_s, scan_out = best_of([*collector, str(plain)], args.repeat)
        gz_s, gz_out = best_of([*collector, str(gz)], args.repeat)
        grep_s, grep_out = best_of([grep, "-c", "RECVD_PKT_INV_SPI", str(plain)], args.repeat)
        rows = [json.loads(line) for line in scan_out.splitlines()]
        found = sum(r["count"] for r in rows)
        same_gz = gz_out.replace(str(gz), str(plain)) == scan_out
        verdicts = {v: sum(1 for r in rows if r["verdict"] == v) for v in ("transient", "repeated", "still going")}

        rate, gz_rate, grep_rate = args.lines / scan_s, args.lines / gz_s, args.lines / grep_s
        print(f"collector scan (plain): {scan_s:6.2f} s  {rate / 1e6:6.2f} M lines/s  {size / scan_s / 1e6:6.0f} MB/s")
        print(f"collector scan (.gz):   {gz_s:6.2f} s  {gz_rate / 1e6:6.2f} M lines/s")
        print(f"grep -c (plain):        {grep_s:6.2f} s  {grep_rate / 1e6:6.2f} M lines/s"
              f"  -> collector takes {scan_s / grep_s:.1f}x grep's time")
        print(f"flows: {len(rows)} ({verdicts}); lines counted {found}, grep counted {grep_out.strip()}, "
              f"written {inv_lines}; .gz gives the same flows: {same_gz}")
        correct = found == inv_lines == int(grep_out.strip()) and same_gz and verdicts["still going"] >= 1
        met = rate >= TARGET_LINES_PER_SECOND and correct
        print(f"target >= {TARGET_LINES_PER_SECOND / 1e6:.0f} M lines/s (plain), every line counted: "
              f"{'MET' if met else 'MISSED'}")
        if args.json:
            args.json.write_text(json.dumps({
                "lines": args.lines, "bytes": size, "invalid_spi_lines": inv_lines,
                "scan_seconds": scan_s, "scan_gz_seconds": gz_s, "grep_seconds": grep_s,
                "scan_lines_per_second": rate, "scan_gz_lines_per_second": gz_rate,
                "grep_lines_per_second": grep_rate, "flows": len(rows), "verdicts": verdicts, "met": met,
            }, indent=2))
        return 0 if met else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
