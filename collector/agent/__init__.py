"""The watch agent: reading (reader.py), deciding (collector.core.decide), acting (dispatch.py
runs the router work of worker.py in turn; records.py writes each action to the store;
sealing.py writes the bundle), tied together by the loop (loop.py); startup.py takes over
what an earlier run left. See docs/architecture in the README's design section."""

from __future__ import annotations

import signal
import threading

from collector.agent.lock import AgentBusy, StateLock
from collector.agent.loop import Agent

__all__ = ["Agent", "AgentBusy", "StateLock", "install_signal_handlers"]


def install_signal_handlers(stop: threading.Event) -> dict[int, int]:
    """SIGTERM/SIGINT set `stop`; returns {signal: count} so the caller can exit 143/130."""
    seen: dict[int, int] = {}

    def handler(signum, _frame):
        seen[signum] = seen.get(signum, 0) + 1
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return seen
