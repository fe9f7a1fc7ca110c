"""Sessions worth keeping open because an arming of their router may be near.

A router's session costs a handshake and a login to open (0.3-0.5 s of a busy jump host,
most of it CPU). At a long poll interval the pool keeps only the sessions of routers in
an open incident; a router whose log just showed a line from another inventory router,
or that a syslog hint names as such a line's sender, is about to be in one, and its
arming should not wait for the handshake, nor for the facts its arming reads first.
"""

from __future__ import annotations

import logging
import threading
import time

from collector.inventory import Host
from collector.sessions import SessionError, SessionSource

log = logging.getLogger(__name__)

SESSION_WANTED_FOR = 60.0  # seconds a router's session is kept once an arming of it may be near


class SessionWants:
    """Which routers may be armed any moment. Threads: any; one lock over one dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: dict[str, float] = {}  # router -> monotonic time it was last wanted

    def want(self, router: str) -> None:
        with self._lock:
            self._at[router] = time.monotonic()

    def wanted(self, router: str) -> bool:
        """Wanted in the last SESSION_WANTED_FOR seconds."""
        with self._lock:
            at = self._at.get(router)
        return at is not None and time.monotonic() - at < SESSION_WANTED_FOR


def warm(sessions: SessionSource, host: Host, responder=None) -> None:
    """Open `host`'s session now (the pool keeps it while it is wanted), and have
    `responder` read the facts an arming starts with (version, config, addresses: cached
    for the run). A router that cannot be reached is left to the arming to report."""
    try:
        with sessions.session(host):
            pass
        if responder is not None:
            responder.profile(host)
    except SessionError as exc:
        log.debug("%s: not readied ahead of arming: %s", host.name, exc.reason)
