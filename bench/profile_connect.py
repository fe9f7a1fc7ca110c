"""Where a DeviceSession's connect spends its wall time (supports benchmark 2's finding).

Opens N lab routers one after the other (no contention), runs the three commands of
fleet_collect.py on each, closes; prints wall and CPU per router and the time.sleep
calls by caller (cProfile), which is what netmiko's session set-up waits for.

    .venv/bin/python bench/profile_connect.py [--routers 20]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from _common import LabProcess, isolate_state, known_hosts_path, quiet_logs, seed_known_hosts, self_cpu

COMMANDS = ("show version", "show crypto session", "show crypto ipsec sa")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=20)
    args = parser.parse_args()
    isolate_state()
    quiet_logs()
    from collector.hostkeys import KnownHosts
    from collector.inventory import load_inventory
    from collector.sessions import DeviceSession

    with LabProcess(routers=args.routers) as lab:
        hosts = list(load_inventory(lab.inventory_path).hosts.values())
        seed_known_hosts(((h.hostname, h.port) for h in hosts), known_hosts_path())
        known = KnownHosts.default()
        profile = cProfile.Profile()
        opened = ran = 0.0
        t0, c0 = time.perf_counter(), self_cpu()
        profile.enable()
        for host in hosts:
            a = time.perf_counter()
            session = DeviceSession(host, known)
            session.open()
            b = time.perf_counter()
            for command in COMMANDS:
                session.run(command)
            ran += time.perf_counter() - b
            opened += b - a
            session.close()
        profile.disable()
        wall, cpu = time.perf_counter() - t0, self_cpu() - c0
    n = len(hosts)
    print(f"{n} routers one after the other: {wall / n * 1000:.0f} ms wall and {cpu / n * 1000:.1f} ms agent CPU per "
          f"router; open {opened / n * 1000:.0f} ms, 3 commands {ran / n * 1000:.1f} ms, close and the rest "
          f"{(wall - opened - ran) / n * 1000:.0f} ms")
    stats = pstats.Stats(profile)
    slept = 0.0
    print("time.sleep by caller (ms per router):")
    for func, (_cc, _nc, _tt, _ct, callers) in stats.stats.items():
        if func[2] != "<built-in method time.sleep>":
            continue
        for caller, (_c, calls, tottime, _cum) in sorted(callers.items(), key=lambda kv: -kv[1][2]):
            slept += tottime
            print(f"  {tottime / n * 1000:6.1f} ms  {calls / n:4.1f} calls  {caller[0].split('site-packages/')[-1]}:"
                  f"{caller[1]} {caller[2]}")
    print(f"  total asleep: {slept / n * 1000:.0f} ms of {wall / n * 1000:.0f} ms per router")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
