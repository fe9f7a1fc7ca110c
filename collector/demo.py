"""The demo: the main job end to end on the built-in lab, in under a minute.

Starts the default lab (2 hubs, 4 spokes) with one `desync` tunnel and a lab clock ten
times faster than wall time, then runs the real agent (the shipped invalid-spi playbook,
polling every second instead of every minute) until it has armed both ends on the first
invalid-SPI line, captured them on the repeat, disarmed and written the bundle.
`collector demo` (collector/cli/demo.py) is its face.

`demo="dmvpn"` shows the per-flow DMVPN verdict instead: the same six routers (lab seed 1)
with two desynchronised flows into one spoke's Tunnel0, one from its hub over a static NHRP
map and one from another spoke over a phase-3 shortcut (a dynamic mapping); it waits for
both bundles, whose reports give the two flows different invalid-spi-recovery verdicts.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from collector.inventory import load_inventory
from collector.playbook import load_playbook
from collector.resources import playbooks_dir
from collector.watch import WatchOptions, run_daemon

TIME_SCALE = 10.0  # a lab minute (the message's rate limit) takes six wall seconds

# name -> (lab scenarios, lab seed, bundles to wait for)
DEMOS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "desync": (("desync",), 0, 1),
    "dmvpn": (("desync-dmvpn-static", "desync-dmvpn-dynamic"), 1, 2),
}


def demo_playbook():
    """The flagship playbook, with polls fast enough for the accelerated lab clock."""
    book = load_playbook(playbooks_dir() / "invalid-spi.yaml")
    sources = book.sources.model_copy(update={
        "poll": book.sources.poll.model_copy(update={"interval": timedelta(seconds=1)}),
        "qfp": book.sources.qfp.model_copy(update={"interval": timedelta(seconds=5)}),
    })
    return book.model_copy(update={"sources": sources})


def run_demo(out: Path, timeout: float, say: Callable[[str], None], demo: str = "desync") -> list[Path]:
    """Run the lab and the agent until the demo's bundles appear under `out` (or `timeout`
    seconds pass); return the bundles written by this run, oldest first (empty: none)."""
    from collector.lab.runner import running_lab

    scenarios, seed, wanted = DEMOS[demo]
    work = Path(tempfile.mkdtemp(prefix="collector-demo-"))
    say(f"starting the lab: 6 routers, scenario {', '.join(scenarios)}, lab clock x10")
    with running_lab(routers=6, scenarios=list(scenarios), seed=seed, time_scale=TIME_SCALE,
                     state_dir=work / "lab") as lab:
        inventory = load_inventory(lab.inventory_path)
        options = WatchOptions(state_dir=work / "state", bundle_root=out, workers=8, max_seconds=timeout)
        stop = threading.Event()

        def watch() -> None:
            run_daemon(inventory, demo_playbook(), options, say, stop)

        before = set(_bundles(out))
        thread = threading.Thread(target=watch, name="demo-agent", daemon=True)
        thread.start()
        started = time.monotonic()
        while thread.is_alive() and time.monotonic() - started < timeout:
            if len(set(_bundles(out)) - before) >= wanted:
                break
            time.sleep(0.5)
        stop.set()  # the agent disarms whatever is still armed on its way out
        thread.join(timeout=60)
    return sorted(set(_bundles(out)) - before)


def _bundles(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*_invalid-spi_*") if p.is_dir() and not p.name.startswith("."))
