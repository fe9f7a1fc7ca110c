"""Benchmark 1: per-command round trip on a kept-open session, on loopback.

Same lab router (in its own process), same kind of kept-open session:
  - collector's DeviceSession.run (lean prompt reader on netmiko's channel)
  - netmiko send_command: default, with expect_string, with expect_string + cmd_verify=False
  - the floor: an empty line answered by the prompt, through the same reader
then a long output (`show logging` of a filled buffer, ~1 MB) through each, and a
correctness check on a tiny emulator whose output holds prompt-looking lines.

Target: DeviceSession.run at most 15 ms a command (median), robust to long outputs.

    .venv/bin/python bench/roundtrip.py [--n 200] [--netmiko-n 40] [--long-kib 1024] [--json FILE]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from _common import (OtherLoad, LabCpu, LabProcess, isolate_state, median, pct, print_machine, quiet_logs, save_json,
                     verdict)

TARGET_MS = 15.0
COMMAND = "show version"


def timed(fn, n: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, out


def row(label: str, times: list[float]) -> dict:
    figure = {"label": label, "n": len(times), "median_ms": round(median(times), 3), "p95_ms": round(pct(times, 95), 3)}
    print(f"  {label:<46} median {figure['median_ms']:9.3f} ms   p95 {figure['p95_ms']:9.3f} ms   (n={len(times)})")
    return figure


def fill_log(lab: LabProcess, router: str, session, want_bytes: int) -> int:
    """Debugs on, a big buffer, then lab days pass: rekey debug output fills the log."""
    control = lab.control()
    control.config(router, ["logging buffered 20000000 debugging"])
    for command in ("debug crypto isakmp", "debug crypto ipsec"):
        session.run(command, check=False)
    size = 0
    for _ in range(40):
        control.step(86400)
        size = len(session.run("show logging", read_timeout=120).text)
        if size >= want_bytes:
            break
    session.run("undebug all", check=False)
    control.close()
    return size


def normalise(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r", "").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def correctness(results: dict) -> bool:
    """Outputs holding `trap#` lines inside, on an emulator that prints them."""
    from _trap_router import TrapRouter, expected_lines
    from netmiko import ConnectHandler

    from collector.hostkeys import KnownHosts
    from collector.inventory import load_inventory
    from collector.sessions import DeviceSession

    print("\ncorrectness: output with prompt-looking lines inside (`trap#`, `trap#show version`)")
    want = expected_lines()
    checks = {}
    with TrapRouter() as trap:
        folder = Path(tempfile.mkdtemp(prefix="collector-bench-trap-"))
        inv_file = folder / "inventory.yaml"
        inv_file.write_text(
            "defaults: {username: bench, password: bench, connection_options: {host_key_policy: tofu}}\n"
            f"hosts:\n  trap: {{hostname: 127.0.0.1, port: {trap.port}, platform: cisco_ios}}\n")
        host = load_inventory(inv_file).hosts["trap"]
        session = DeviceSession(host, KnownHosts.default())
        session.open()
        for command, label in (("show inside", "in one stream"), ("show pause", "with a 0.3 s pause after a `trap#` line")):
            text = session.run(command).text
            got = len(normalise(text))
            follow = session.run("show inside").text  # the channel must be clean for the next command
            ok = got == want and len(normalise(follow)) == want
            checks[f"DeviceSession.run {label}"] = {"lines": got, "expected": want, "next_command_clean": len(normalise(follow)) == want, "ok": ok}
            print(f"  DeviceSession.run {label:<40} {got:5d} of {want} lines, next command clean: "
                  f"{len(normalise(follow)) == want}  -> {'whole' if ok else 'CUT SHORT'}")
        session.close()
        conn = ConnectHandler(device_type="cisco_ios", host="127.0.0.1", port=trap.port, username="bench",
                              password="bench", fast_cli=True, allow_agent=False, use_keys=False)
        for command, label in (("show inside", "in one stream"), ("show pause", "with a 0.3 s pause after a `trap#` line")):
            try:
                text = conn.send_command(command, read_timeout=10)
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                text = f"{type(exc).__name__}"
            got = len(normalise(text))
            conn.clear_buffer()
            checks[f"netmiko send_command {label}"] = {"lines": got, "expected": want, "ok": got == want}
            print(f"  netmiko send_command {label:<37} {got:5d} of {want} lines (for comparison)")
        conn.disconnect()
    results["correctness"] = checks
    return all(v["ok"] for k, v in checks.items() if k.startswith("DeviceSession") and "pause" not in k)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="commands timed per DeviceSession figure")
    parser.add_argument("--netmiko-n", type=int, default=40, help="commands timed per netmiko figure")
    parser.add_argument("--long-n", type=int, default=10, help="long outputs timed per method")
    parser.add_argument("--long-kib", type=int, default=1024, help="size of the long `show logging` output")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    load = OtherLoad()
    isolate_state()
    quiet_logs()
    from netmiko import ConnectHandler

    from collector.hostkeys import KnownHosts
    from collector.inventory import load_inventory
    from collector.sessions import DeviceSession

    results: dict = {"benchmark": "roundtrip", "machine": print_machine(), "target_ms": TARGET_MS}
    with LabProcess(routers=2) as lab:
        router = "hub1"
        host = load_inventory(lab.inventory_path).hosts[router]
        print(f"lab: 2 routers in pid {lab.pid}; router {router} on 127.0.0.1:{host.port}")
        session = DeviceSession(host, KnownHosts.default())
        session.open()
        netmiko = ConnectHandler(device_type=host.platform, host="127.0.0.1", port=host.port,
                                 username=host.username, password=host.password.reveal(),
                                 secret=host.secret.reveal(), fast_cli=True, allow_agent=False, use_keys=False)
        netmiko.enable()
        netmiko.send_command("terminal length 0")
        prompt = netmiko.find_prompt()
        expect = re.escape(prompt)  # the prompt as netmiko found it, e.g. `hub1#`
        for _ in range(5):  # warm both paths
            session.run(COMMAND)
            netmiko.send_command(COMMAND, expect_string=expect)

        print(f"\nshort output: `{COMMAND}` ({len(session.run(COMMAND).text)} bytes), kept-open session")
        figures = []
        lab_cpu = LabCpu([lab])
        t, _ = timed(lambda: session.run(COMMAND), args.n)
        figures.append(row("DeviceSession.run", t))
        lean_lab_ms = lab_cpu.seconds() * 1000 / args.n
        t, _ = timed(lambda: session.run(""), args.n)
        figures.append(row("floor: empty line -> prompt (same reader)", t))
        lab_cpu = LabCpu([lab])
        t, _ = timed(lambda: netmiko.send_command(COMMAND), args.netmiko_n)
        figures.append(row("netmiko send_command (default)", t))
        t, _ = timed(lambda: netmiko.send_command(COMMAND, expect_string=expect), args.netmiko_n)
        figures.append(row("netmiko send_command expect_string", t))
        t, _ = timed(lambda: netmiko.send_command(COMMAND, expect_string=expect, cmd_verify=False), args.netmiko_n)
        figures.append(row("netmiko send_command expect_string, no cmd_verify", t))
        print(f"  lab CPU per command: {lean_lab_ms:.3f} ms (DeviceSession run, lab process)")
        results["short"] = figures
        results["lab_cpu_ms_per_command"] = round(lean_lab_ms, 3)

        size = fill_log(lab, router, session, args.long_kib * 1024)
        print(f"\nlong output: `show logging` of {size / 1024:.0f} KiB "
              f"({session.run('show logging').text.count(chr(10))} lines)")
        long_figures = []
        t, out_lean = timed(lambda: session.run("show logging", read_timeout=120).text, args.long_n)
        long_figures.append(row("DeviceSession.run", t))
        t, out_default = timed(lambda: netmiko.send_command("show logging", read_timeout=120), max(3, args.long_n // 2))
        long_figures.append(row("netmiko send_command (default)", t))
        t, out_expect = timed(lambda: netmiko.send_command("show logging", expect_string=expect, read_timeout=120),
                              max(3, args.long_n // 2))
        long_figures.append(row("netmiko send_command expect_string", t))
        t, out_nv = timed(lambda: netmiko.send_command("show logging", expect_string=expect, cmd_verify=False,
                                                       read_timeout=120), max(3, args.long_n // 2))
        long_figures.append(row("netmiko send_command expect_string, no cmd_verify", t))
        # The buffer is static now (no lab time passes: debugs are off), so every method must agree.
        same = normalise(out_lean) == normalise(out_default) == normalise(out_expect)
        print(f"  same text from DeviceSession and netmiko (default, expect_string): {same}")
        results["long"] = {"bytes": size, "figures": long_figures, "same_text_as_netmiko": same}
        session.close()
        netmiko.disconnect()

    whole = correctness(results)
    lean = results["short"][0]["median_ms"]
    ok = lean <= TARGET_MS and whole and results["long"]["same_text_as_netmiko"]
    default = results["short"][2]["median_ms"]
    print(f"\nresult: DeviceSession.run median {lean:.2f} ms a command vs netmiko default {default:.1f} ms "
          f"({default / lean:.0f}x); target <= {TARGET_MS:.0f} ms, long output whole, prompt inside kept whole "
          f"-> {verdict(ok)}")
    results["verdict"] = verdict(ok)
    results["other_load"] = load.report()
    save_json(args.json, results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
