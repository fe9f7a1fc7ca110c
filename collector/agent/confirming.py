"""A syslog line confirmed over SSH before it counts, and both ends of a peer's line
readied for the arming that may follow (`Agent` is the class to use; this is its part).

A UDP datagram can be forged: an invalid-SPI line heard by syslog becomes an event only
once the router's own log shows it (`_confirm`, on a confirm thread, so a poll of the
whole fleet does not hold it up). When the line's sender is another inventory router,
both ends are readied on threads of their own (a backstop poll of the whole fleet would
hold them up on a poll thread, and they would hold up confirmations on a confirm thread):
sessions opened and the facts their arming reads first read ahead (`warm`). A backstop
poll's reads wait for both, as for an arming (`RouterWork.ahead_of_polls`).
"""

from __future__ import annotations

import logging

from collector.agent.warm import warm
from collector.errors import StateStoreError
from collector.inventory import Host
from collector.sessions import SessionError

log = logging.getLogger(__name__)


class SyslogConfirmations:
    """The syslog-confirmation part of `Agent` (a mixin: its attributes are the agent's)."""

    def on_syslog_hint(self, hint) -> None:
        outcome = self.reader.syslog_hint(hint)
        if outcome.confirm is not None:
            self.work.ahead_of_polls(self._confirms, self._confirm, outcome.confirm)
        if outcome.sender is not None:  # its arming may follow: have it ready
            self.work.ahead_of_polls(self._readies, warm, self.reader.sessions, outcome.sender, self.responder)
        if outcome.uncounted is not None:  # after the confirmation: that poll reads the same peers
            self._confirms.submit(self._count_syslog_source, outcome.uncounted)

    def _count_syslog_source(self, flow) -> None:
        try:
            self.reader.count_syslog_source(flow)
        except Exception:  # noqa: BLE001 - a count must not vanish silently in the pool
            log.exception("%s: could not count the source of a syslog line", flow.router)

    def confirm_pending(self) -> None:
        self.write_hint_events()
        for host in self.reader.due_confirmations():
            self.work.ahead_of_polls(self._confirms, self._confirm, host)

    def write_hint_events(self) -> None:
        """Write the syslog lines the hints kept as evidence (a write for all of them, off
        the hint thread: a synced write per datagram bounded how many hints a second it
        took on a disk whose sync takes milliseconds). A store that refuses is said once."""
        try:
            self.reader.write_hint_events()
        except StateStoreError as exc:
            self.recorder.refused(exc)

    def _confirm(self, host: Host) -> None:
        self.write_hint_events()
        try:
            lines, _n = self.reader.poll(host)
        except SessionError as exc:
            self.observers.problem(host.name, f"could not confirm a syslog line over SSH: {exc.reason}")
            return
        for line in lines:
            self.submit(line)
        if lines and self.reader.wants.wanted(host.name):  # a peer's line: its arming may follow
            self.work.ahead_of_polls(self._readies, warm, self.reader.sessions, host, self.responder)
