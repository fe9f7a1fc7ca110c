"""scrapli on its own as a whole process, for bench/anchors.py: one Cli per router, N threads.

scrapli 2026.10 (libscrapli) with its system-ssh transport ("bin": the OpenSSH client under
a pty, StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null) or libssh2 ("ssh2"). It reads
the collector-format inventory YAML itself (plain yaml, nothing from collector), runs the
commands, prints one JSON line per router and command (raw text, no parsing) and exits.

    python bench/_anchor_scrapli.py INVENTORY.yaml --workers 20 --transport bin -c CMD ...
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import yaml
from scrapli import AuthOptions, Cli
from scrapli.auth import LookupKeyValue
from scrapli.transport import BinOptions, Ssh2Options


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("inventory")
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--transport", choices=("bin", "ssh2"), default="bin")
    parser.add_argument("-c", "--command", dest="commands", action="append", required=True)
    args = parser.parse_args()
    data = yaml.safe_load(open(args.inventory))
    defaults = data.get("defaults") or {}

    def one(item):
        name, host = item
        auth = AuthOptions(username=host.get("username", defaults.get("username")),
                           password=host.get("password", defaults.get("password")),
                           lookups=[LookupKeyValue(key="enable", value=host.get("secret", defaults.get("secret")))])
        transport = BinOptions(enable_strict_key=False) if args.transport == "bin" else Ssh2Options()
        rows = []
        try:
            with Cli(host["hostname"], port=host["port"], definition_file_or_name="cisco_iosxe",
                     auth_options=auth, transport_options=transport) as conn:
                for command in args.commands:
                    result = conn.send_input(input_=command)
                    rows.append({"host": name, "command": command, "raw": result.result, "error": None})
        except Exception as exc:  # noqa: BLE001 - a benchmark counts failures, it does not stop
            rows.append({"host": name, "command": None, "raw": None, "error": repr(exc)})
        return rows

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for rows in pool.map(one, data["hosts"].items()):
            for row in rows:
                sys.stdout.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
