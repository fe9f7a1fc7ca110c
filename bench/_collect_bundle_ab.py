"""`collector collect` as a process, with or without its bundle (bench/bundle_write.py's A/B).

    python bench/_collect_bundle_ab.py bundle|none collect -i INV -c ... --json --out DIR

`bundle`: the command as shipped. `none`: the same command with `CollectionBundle` replaced
by one that writes nothing: same start-up, collection and output; the --json lines then do
the redaction the bundle would have done for them (its memo starts empty), so the
difference between the two is what the bundle adds to the command, no more. Both variants
start through this file, so the start-up is the same.
"""

from __future__ import annotations

import sys
from pathlib import Path


class _NoBundle:
    def __init__(self, out_root, inventory, started=None):
        self.redaction_memo: dict[str, str] = {}

    def add(self, outcome) -> None:
        pass

    def seal(self, run) -> Path:
        return Path("(not written: bench/_collect_bundle_ab.py none)")

    def abandon(self) -> None:
        pass


if __name__ == "__main__":
    mode = sys.argv.pop(1)
    if mode not in ("bundle", "none"):
        raise SystemExit(f"usage: {sys.argv[0]} bundle|none collect ...")
    import collector.collect  # in both variants, so both import the same things in the same order

    if mode == "none":
        collector.collect.CollectionBundle = _NoBundle  # cli/collect.py imports it when the command runs
    from collector.cli import main

    main()
