"""Benchmark: opening a router session against the SSH handshake floor (issue 15.1).

On the same lab routers (in their own process), in one run, alternated round by round:
  - the floor: paramiko's SSHClient.connect alone (TCP, key exchange, password auth), on a
    socket with Nagle off as the sessions' own (with paramiko's default socket, Nagle on,
    printed for comparison, the handshake waits for the router's delayed acknowledgements)
  - collector: DeviceSession.open() (the same handshake, shell, prompt learned, terminal
    width/length, enable with the secret), through the lean reader
  - for comparison: netmiko's ConnectHandler (fast_cli) with its session preparation
then the login cases on the lab: enable with a secret, wrong password (one try, never
retried), all vty lines busy (through the pool, on a router it reached before), a slow
router. The lab's routers carry device hostnames of real shape, 20 to 63 characters
(IOS's limit), longer than netmiko's 16: every open above learns one, and the run prints
their lengths. Login banners and a Return-only first prompt are cases the lab cannot show:
tests/e2e/test_session_reader.py covers them against a small IOS-like server.

Target: median DeviceSession.open() at most 1.5 times the median floor.

    .venv/bin/python bench/login.py [--rounds 40] [--netmiko-rounds 10 (also the Nagle-on floor's)] [--json FILE]
"""

from __future__ import annotations

import argparse
import socket
import time

from _common import (LabProcess, OtherLoad, isolate_state, known_hosts_path, median, pct, print_machine, quiet_logs,
                     save_json, seed_known_hosts, verdict)

TARGET_RATIO = 1.5


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--netmiko-rounds", type=int, default=10)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    isolate_state()
    quiet_logs()
    machine = print_machine()
    load = OtherLoad()

    import paramiko
    from netmiko import ConnectHandler

    from collector.hostkeys import KnownHosts
    from collector.inventory import load_inventory
    from collector.sessions import AuthenticationFailed, ConnectFailed, DeviceSession, LinesBusy, SessionPool

    figures: dict = {"machine": machine, "target_ratio": TARGET_RATIO}
    with LabProcess(routers=4) as lab:
        hosts = list(load_inventory(lab.inventory_path).hosts.values())
        seed_known_hosts(((h.hostname, h.port) for h in hosts), known_hosts_path())
        known = KnownHosts.default()

        def floor(host, nagle: bool = False) -> float:
            # The floor with Nagle off, as the sessions have it (device.py): with paramiko's
            # default (Nagle on) the handshake waits for delayed acknowledgements.
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            t0 = time.perf_counter()
            sock = socket.create_connection((host.hostname, host.port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0 if nagle else 1)
            client.connect(host.hostname, host.port, host.username, host.password.reveal(), look_for_keys=False,
                           allow_agent=False, timeout=10, sock=sock)
            took = time.perf_counter() - t0
            client.close()
            return took

        prompt_names: set[str] = set()

        def ours(host) -> float:
            session = DeviceSession(host, known)
            t0 = time.perf_counter()
            session.open()
            took = time.perf_counter() - t0
            assert session.prompt == f"{session.prompt_name}#", session.prompt
            prompt_names.add(session.prompt_name)
            session.close()
            return took

        def netmiko(host) -> float:
            t0 = time.perf_counter()
            conn = ConnectHandler(device_type=host.platform, host=host.hostname, port=host.port,
                                  username=host.username, password=host.password.reveal(),
                                  secret=host.secret.reveal() if host.secret else "", fast_cli=True)
            conn.enable()
            took = time.perf_counter() - t0
            conn.disconnect()
            return took

        for host in hosts:  # warm-up: imports, first key exchange code paths
            floor(host), ours(host)
        floor_s: list[float] = []
        ours_s: list[float] = []
        for i in range(args.rounds):
            host = hosts[i % len(hosts)]
            pair = (floor, ours) if i % 2 == 0 else (ours, floor)
            for fn in pair:
                (floor_s if fn is floor else ours_s).append(fn(host))
        netmiko_s = [netmiko(hosts[i % len(hosts)]) for i in range(args.netmiko_rounds)]
        nagle_s = [floor(hosts[i % len(hosts)], nagle=True) for i in range(args.netmiko_rounds)]

        f_med, o_med = median(floor_s), median(ours_s)
        ratio = o_med / f_med
        print(f"handshake + auth floor (paramiko, Nagle off) median {f_med * 1000:7.1f} ms  p95 {pct(floor_s, 95) * 1000:7.1f} ms"
              f"  (n={len(floor_s)})")
        print(f"DeviceSession.open()                         median {o_med * 1000:7.1f} ms  p95 {pct(ours_s, 95) * 1000:7.1f} ms"
              f"  (n={len(ours_s)})")
        if netmiko_s:
            print(f"netmiko ConnectHandler + enable              median {median(netmiko_s) * 1000:7.1f} ms"
                  f"  (n={len(netmiko_s)}, comparison)")
        if nagle_s:
            print(f"the floor with paramiko's default (Nagle on) median {median(nagle_s) * 1000:7.1f} ms"
                  f"  (n={len(nagle_s)}, comparison)")
        lengths = sorted(len(name) for name in prompt_names)
        print(f"hostnames learned at login: {len(lengths)}, of {', '.join(map(str, lengths))} characters")
        print(f"{verdict(ratio <= TARGET_RATIO)}: open / floor = {ratio:.2f} (target <= {TARGET_RATIO})")
        figures.update(floor_ms=ms(f_med), floor_p95_ms=ms(pct(floor_s, 95)), open_ms=ms(o_med),
                       open_p95_ms=ms(pct(ours_s, 95)), ratio=round(ratio, 3),
                       netmiko_ms=ms(median(netmiko_s)) if netmiko_s else None,
                       floor_nagle_on_ms=ms(median(nagle_s)) if nagle_s else None, met=ratio <= TARGET_RATIO,
                       hostname_lengths=lengths)

        # -- login cases on the lab ------------------------------------------------------
        control = lab.control()
        cases: dict[str, bool] = {}
        target = hosts[0]
        try:
            control.fault(target.name, wrong_password=True)
            t0 = time.perf_counter()
            try:
                DeviceSession(target, known).open()
                cases["wrong password -> AuthenticationFailed, not retried"] = False
            except AuthenticationFailed as exc:
                # The host's retries would add at least 0.5 s of backoff per try.
                cases["wrong password -> AuthenticationFailed, not retried"] = time.perf_counter() - t0 < 0.5
                print(f"  wrong password: {exc}")
            control.fault(target.name, wrong_password=False)

            with SessionPool(known, keep_open=False) as pool:
                with pool.session(target):  # reached once: a refusal afterwards means busy lines
                    pass
                control.fault(target.name, vty_limit=0)
                try:
                    with pool.session(target):
                        pass
                    cases["all vty lines busy -> LinesBusy"] = False
                except LinesBusy as exc:
                    cases["all vty lines busy -> LinesBusy"] = True
                    print(f"  vty busy: {exc}")
                except ConnectFailed as exc:
                    cases["all vty lines busy -> LinesBusy"] = False
                    print(f"  vty busy: {exc}")
            control.fault(target.name, vty_limit=5)

            control.fault(target.name, slow_seconds=0.3)
            session = DeviceSession(target, known)
            t0 = time.perf_counter()
            session.open()
            took = time.perf_counter() - t0
            out = session.run("show clock").text
            session.close()
            cases["slow router (0.3 s a command): login and command right"] = bool(out.strip()) and took >= 0.6
            print(f"  slow router: open {took:.2f} s, then `show clock` -> {out.strip()!r}")
            control.fault(target.name, slow_seconds=0.0)
        finally:
            control.close()
        session = DeviceSession(hosts[1], known)
        session.open()
        cases["enable with secret: privileged prompt"] = session.prompt.endswith("#")
        session.close()
        for name, ok in cases.items():
            print(f"  {verdict(ok)}: {name}")
        figures["cases"] = cases
    figures["other_load"] = load.report()
    save_json(args.json, figures)
    return 0 if figures["met"] and all(cases.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
