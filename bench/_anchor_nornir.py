"""Nornir 3 + nornir-netmiko as a whole process, for bench/anchors.py.

ThreadedRunner(num_workers=N), `netmiko_send_command(enable=True, use_textfsm=True)` per
command (ntc-templates parses what it has a template for), connections closed at the end;
prints one JSON line per router and command (the parsed records or the raw text) and exits.

    python bench/_anchor_nornir.py NORNIR_CONFIG_FOLDER --workers 20 -c CMD ...
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("-c", "--command", dest="commands", action="append", required=True)
    args = parser.parse_args()
    from nornir import InitNornir
    from nornir.core.task import Result, Task
    from nornir_netmiko.tasks import netmiko_send_command

    def commands(task: Task) -> Result:
        for command in args.commands:
            task.run(netmiko_send_command, command_string=command, enable=True, use_textfsm=True,
                     name=command, read_timeout=60)
        return Result(host=task.host)

    nr = InitNornir(runner={"plugin": "threaded", "options": {"num_workers": args.workers}},
                    inventory={"plugin": "SimpleInventory", "options": {
                        "host_file": f"{args.folder}/hosts.yaml", "group_file": f"{args.folder}/groups.yaml",
                        "defaults_file": f"{args.folder}/defaults.yaml"}},
                    logging={"enabled": False})
    agg = nr.run(task=commands)
    nr.close_connections()
    for name, multi in agg.items():
        if multi.failed and len(multi) < len(args.commands) + 1:
            sys.stdout.write(json.dumps({"host": name, "command": None, "raw": None,
                                         "error": repr(multi.exception)}) + "\n")
        for r in multi[1:]:
            parsed = r.result if isinstance(r.result, list) else None
            raw = r.result if isinstance(r.result, str) else None
            sys.stdout.write(json.dumps({"host": name, "command": r.name, "raw": raw, "parsed": parsed,
                                         "error": None if not r.failed else repr(r.exception)}, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
